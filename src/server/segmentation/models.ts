import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import {
  DEFAULT_MODEL_ID,
  type InteractiveManifest,
  type ModelInfo,
  type ModelManifest,
  interactiveManifestSchema,
  manifestSchema,
} from '../../shared/models.js';
import type { Env } from '../env.js';
import type { Logger } from '../logger.js';

export interface LoadedModel {
  manifest: ModelManifest;
  session: ort.InferenceSession;
  dir: string;
}

/** A click-refinement model (manifest `kind: "interactive"`): refine/ runs it, jobs never do. */
export interface LoadedInteractiveModel {
  manifest: InteractiveManifest;
  session: ort.InferenceSession;
  dir: string;
}

export interface ExecutionProviderReport {
  requested: 'cpu' | 'cuda';
  /** What the sessions run on. */
  active: 'cpu' | 'cuda';
  /** A GPU was asked for and none could be used: said plainly in /readyz. */
  gpuMissing: boolean;
  threads: number;
}

export interface ModelRegistry {
  models: Map<string, LoadedModel>;
  interactive: Map<string, LoadedInteractiveModel>;
  failed: { dir: string; error: string }[];
  provider: ExecutionProviderReport;
  list(): ModelInfo[];
  close(): Promise<void>;
}

/** models/ at the repository root (also from the compiled build, which sits deeper). */
export function builtInModelsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'models');
    if (existsSync(path.join(candidate, 'adc-core-v1', 'manifest.json'))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error('cannot find the built-in models/ folder');
}

export function toModelInfo(m: ModelManifest | InteractiveManifest): ModelInfo {
  return {
    id: m.id,
    name: m.name,
    version: m.version,
    description: m.description,
    kind: m.kind,
    method: m.kind === 'interactive' ? m.method : m.kind,
    inputs: m.inputs,
    patchSize: m.kind === 'interactive' ? null : m.patchSize,
    spacingMm: m.kind === 'interactive' ? null : m.spacingMm,
    orientation: m.kind === 'interactive' ? 'native' : m.orientation,
    classes: m.kind === 'interactive' ? 1 : (m.output.classes ?? null),
    lesionClasses: m.kind === 'interactive' ? [0] : (m.output.lesionClasses ?? [m.output.lesionClass]),
    mirroring: m.kind === 'interactive' ? [] : m.mirroring,
    card: m.kind === 'interactive' ? {} : m.card,
  };
}

export async function createSession(file: string, provider: 'cpu' | 'cuda', threads: number) {
  return ort.InferenceSession.create(file, {
    executionProviders: [provider],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
}

/**
 * Loads every model folder (manifest.json + model.onnx) under the given roots, one session per
 * model, created once. A bad manifest or model is skipped and reported, never fatal. When CUDA
 * is requested but cannot be used, the models run on CPU and the report says so.
 */
export async function loadModelRegistry(opts: {
  roots: string[];
  provider: 'cpu' | 'cuda';
  threads: number;
  log?: Logger;
}): Promise<ModelRegistry> {
  const models = new Map<string, LoadedModel>();
  const interactive = new Map<string, LoadedInteractiveModel>();
  const failed: { dir: string; error: string }[] = [];
  let active: 'cpu' | 'cuda' = opts.provider;
  for (const root of opts.roots) {
    let entries: string[] = [];
    try {
      entries = (await readdir(root, { withFileTypes: true }))
        .filter((e) => e.isDirectory())
        .map((e) => e.name)
        .sort();
    } catch (err) {
      failed.push({ dir: root, error: `cannot read the models folder: ${(err as Error).message}` });
      continue;
    }
    for (const name of entries) {
      const dir = path.join(root, name);
      if (!existsSync(path.join(dir, 'manifest.json'))) continue;
      try {
        const raw = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
        const schema = (raw as { kind?: unknown })?.kind === 'interactive' ? interactiveManifestSchema : manifestSchema;
        const parsed = schema.safeParse(raw);
        if (!parsed.success) {
          throw new Error(
            `invalid manifest: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
          );
        }
        const manifest = parsed.data;
        if (models.has(manifest.id) || interactive.has(manifest.id)) throw new Error(`a model with id ${manifest.id} is already loaded`);
        const file = path.join(dir, 'model.onnx');
        if (!existsSync(file)) throw new Error('model.onnx is missing');
        let session: ort.InferenceSession;
        if (active === 'cuda') {
          try {
            session = await createSession(file, 'cuda', opts.threads);
          } catch (err) {
            opts.log?.warn({ err: (err as Error).message }, 'CUDA requested but not usable; running models on CPU');
            active = 'cpu';
            session = await createSession(file, 'cpu', opts.threads);
          }
        } else {
          session = await createSession(file, 'cpu', opts.threads);
        }
        if (manifest.kind === 'interactive') interactive.set(manifest.id, { manifest, session, dir });
        else models.set(manifest.id, { manifest, session, dir });
        opts.log?.info({ model: manifest.id, version: manifest.version, provider: active }, 'model loaded');
      } catch (err) {
        const error = err instanceof SyntaxError ? `manifest.json is not valid JSON: ${err.message}` : (err as Error).message;
        failed.push({ dir, error });
        opts.log?.error({ dir, error }, 'model skipped');
      }
    }
  }
  return {
    models,
    interactive,
    failed,
    provider: { requested: opts.provider, active, gpuMissing: opts.provider === 'cuda' && active !== 'cuda', threads: opts.threads },
    // segmentation models first, the default one first (pickers preselect it), then by id; interactive models last
    list: () =>
      [...models.values(), ...interactive.values()]
        .map((m) => toModelInfo(m.manifest))
        .sort(
          (a, b) =>
            Number(a.kind === 'interactive') - Number(b.kind === 'interactive') ||
            Number(b.id === DEFAULT_MODEL_ID) - Number(a.id === DEFAULT_MODEL_ID) ||
            a.id.localeCompare(b.id),
        ),
    async close() {
      await Promise.all([...models.values(), ...interactive.values()].map((m) => m.session.release().catch(() => {})));
    },
  };
}

/** The models a server or worker process runs: the built-in ones plus MODELS_DIR, as configured. */
export function loadConfiguredModels(
  env: Pick<Env, 'MODELS_DIR' | 'EXECUTION_PROVIDER' | 'ORT_THREADS'>,
  log?: Logger,
): Promise<ModelRegistry> {
  return loadModelRegistry({
    roots: [builtInModelsDir(), ...(env.MODELS_DIR ? [path.resolve(env.MODELS_DIR)] : [])],
    provider: env.EXECUTION_PROVIDER,
    threads: env.ORT_THREADS || availableParallelism(),
    ...(log ? { log } : {}),
  });
}

export { ort };
