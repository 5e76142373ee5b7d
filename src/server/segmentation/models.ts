import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { DEFAULT_MODEL_ID, type InteractiveManifest, type ModelInfo, type ModelManifest } from '../../shared/models.js';
import { MiB } from '../../shared/units.js';
import type { Env } from '../env.js';
import { unprocessable } from '../errors.js';
import type { Logger } from '../logger.js';
import { DEFAULT_MODEL_MAX_MB, type ModelCheck, checkMessage, checkModelFolder } from './validate-model.js';

export interface LoadedModel {
  manifest: ModelManifest;
  session: ort.InferenceSession;
  dir: string;
  /**
   * model.onnx's identity (inode, size, mtime) at load: pool threads key their own sessions on it,
   * so a file reloaded at the same path is picked up. Absent on a model made by hand (tests).
   */
  fingerprint?: string;
  /** The output's channel count the load's dry run saw. */
  outputChannels?: number;
}

/** A click-refinement model (manifest `kind: "interactive"`): refine/ runs it, jobs never do. */
export interface LoadedInteractiveModel {
  manifest: InteractiveManifest;
  session: ort.InferenceSession;
  dir: string;
  fingerprint?: string;
}

export interface ExecutionProviderReport {
  requested: 'cpu' | 'cuda';
  /** What the sessions run on. */
  active: 'cpu' | 'cuda';
  /** A GPU was asked for and none could be used: said plainly in /readyz. */
  gpuMissing: boolean;
  threads: number;
}

export interface ModelLoadFailure {
  dir: string;
  error: string;
}

/** What `models.reload` answers. */
export interface ReloadReport {
  loaded: string[];
  interactive: string[];
  failed: ModelLoadFailure[];
}

/**
 * The models a process runs. One object for the process's life: `reload()` refills its maps and
 * lists in place, so every holder (`Services.models`, each request's `ctx.models`, the job
 * runtime) sees the new models without being handed a new object.
 */
export interface ModelRegistry {
  readonly models: Map<string, LoadedModel>;
  readonly interactive: Map<string, LoadedInteractiveModel>;
  readonly failed: ModelLoadFailure[];
  readonly provider: ExecutionProviderReport;
  list(): ModelInfo[];
  /**
   * Loads the same folders again (built-in + MODELS_DIR), each model checked as at boot. When at
   * least one segmentation model loads, the new set replaces the old in place and the old
   * main-thread sessions are released; otherwise the old set stays and this throws.
   */
  reload(): Promise<ReloadReport>;
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

/** `outputChannels`: what the graph's output has (static, or measured by the load's dry run) when the manifest does not say. */
export function toModelInfo(m: ModelManifest | InteractiveManifest, outputChannels?: number): ModelInfo {
  const interactive = m.kind === 'interactive';
  const classes = interactive ? 1 : (m.output.classes ?? outputChannels ?? null);
  return {
    id: m.id,
    name: m.name,
    version: m.version,
    description: m.description,
    kind: m.kind,
    method: interactive ? m.method : m.kind,
    inputs: m.inputs,
    patchSize: interactive ? null : m.patchSize,
    spacingMm: interactive ? null : m.spacingMm,
    orientation: interactive ? 'native' : m.orientation,
    classes,
    // As inference reads them: one output channel is the lesion probability itself, whatever lesionClass says.
    lesionClasses: interactive ? [0] : (m.output.lesionClasses ?? [classes === 1 ? 0 : m.output.lesionClass]),
    mirroring: interactive ? [] : m.mirroring,
    card: interactive ? {} : m.card,
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

/** model.onnx's identity: a file replaced or rewritten in place changes it (no hashing of gigabytes at boot). */
export async function modelFingerprint(dir: string): Promise<string> {
  const s = await stat(path.join(dir, 'model.onnx'));
  return `${s.ino}:${s.size}:${s.mtimeMs}`;
}

export interface LoadOptions {
  roots: string[];
  provider: 'cpu' | 'cuda';
  threads: number;
  log?: Logger;
  /** MODEL_MAX_MB in bytes (default 2048 MiB). */
  maxModelBytes?: number;
  /** Intra-op threads of the registry's own sessions (default `threads`); see loadConfiguredModels. */
  sessionThreads?: number;
}

interface LoadedSet {
  models: Map<string, LoadedModel>;
  interactive: Map<string, LoadedInteractiveModel>;
  failed: ModelLoadFailure[];
  active: 'cpu' | 'cuda';
}

/** Opens sessions on the provider asked for; the first time CUDA cannot be used, this and every later session run on CPU. */
function sessionOpener(provider: 'cpu' | 'cuda', threads: number, log?: Logger) {
  let active = provider;
  return {
    active: () => active,
    async open(file: string) {
      if (active !== 'cuda') return createSession(file, 'cpu', threads);
      try {
        return await createSession(file, 'cuda', threads);
      } catch (err) {
        log?.warn({ err: (err as Error).message }, 'CUDA requested but not usable; running models on CPU');
        active = 'cpu';
        return createSession(file, 'cpu', threads);
      }
    },
  };
}

async function loadSet(opts: LoadOptions): Promise<LoadedSet> {
  const models = new Map<string, LoadedModel>();
  const interactive = new Map<string, LoadedInteractiveModel>();
  const failed: ModelLoadFailure[] = [];
  const opener = sessionOpener(opts.provider, opts.sessionThreads ?? opts.threads, opts.log);
  const open = opener.open;
  const maxModelBytes = opts.maxModelBytes ?? DEFAULT_MODEL_MAX_MB * MiB;
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
      const fail = (error: string) => {
        failed.push({ dir, error });
        opts.log?.error({ dir, error }, 'model skipped');
      };
      try {
        const check = await checkModelFolder(dir, { maxModelBytes, open });
        const { manifest, session } = check;
        if (!manifest || !session) {
          fail(checkMessage(check));
          continue;
        }
        if (models.has(manifest.id) || interactive.has(manifest.id)) {
          await session.release().catch(() => {});
          fail(`model ${manifest.id}: a model with id ${manifest.id} is already loaded`);
          continue;
        }
        const fingerprint = await modelFingerprint(dir);
        const outputChannels = check.dryRun?.outputShape[1];
        if (manifest.kind === 'interactive') interactive.set(manifest.id, { manifest, session, dir, fingerprint });
        else models.set(manifest.id, { manifest, session, dir, fingerprint, ...(outputChannels ? { outputChannels } : {}) });
        opts.log?.info(
          {
            model: manifest.id,
            version: manifest.version,
            provider: opener.active(),
            dryRunMs: Math.round((check.dryRun?.ms ?? 0) * 10) / 10,
          },
          'model loaded',
        );
      } catch (err) {
        fail(`model ${name}: ${(err as Error).message}`);
      }
    }
  }
  return { models, interactive, failed, active: opener.active() };
}

const releaseAll = (ms: { session: ort.InferenceSession }[]) => Promise.all(ms.map((m) => m.session.release().catch(() => {})));

/**
 * Loads every model folder (manifest.json + model.onnx) under the given roots, one session per
 * model, created once, each checked against its manifest and dry-run (validate-model.ts). A bad
 * manifest or model is skipped and reported, never fatal. When CUDA is requested but cannot be
 * used, the models run on CPU and the report says so.
 */
export async function loadModelRegistry(opts: LoadOptions): Promise<ModelRegistry> {
  const first = await loadSet(opts);
  const { models, interactive, failed } = first;
  const provider: ExecutionProviderReport = {
    requested: opts.provider,
    active: first.active,
    gpuMissing: opts.provider === 'cuda' && first.active !== 'cuda',
    threads: opts.threads,
  };
  let reloading: Promise<ReloadReport> | undefined;
  const report = (): ReloadReport => ({ loaded: [...models.keys()], interactive: [...interactive.keys()], failed: [...failed] });
  return {
    models,
    interactive,
    failed,
    provider,
    // segmentation models first, the default one first (pickers preselect it), then by id; interactive models last
    list: () =>
      [...models.values(), ...interactive.values()]
        .map((m) => toModelInfo(m.manifest, 'outputChannels' in m ? m.outputChannels : undefined))
        .sort(
          (a, b) =>
            Number(a.kind === 'interactive') - Number(b.kind === 'interactive') ||
            Number(b.id === DEFAULT_MODEL_ID) - Number(a.id === DEFAULT_MODEL_ID) ||
            a.id.localeCompare(b.id),
        ),
    reload() {
      // Two admins at once share one reload.
      reloading ??= (async () => {
        const next = await loadSet(opts);
        if (next.models.size === 0) {
          await releaseAll([...next.interactive.values()]);
          throw unprocessable(
            `No segmentation model could be loaded, so the models already loaded stay: ${next.failed.map((f) => f.error).join('; ') || 'no model folders'}`,
          );
        }
        const old = [...models.values(), ...interactive.values()];
        // One synchronous swap: no request sees half of each set.
        models.clear();
        for (const [id, m] of next.models) models.set(id, m);
        interactive.clear();
        for (const [id, m] of next.interactive) interactive.set(id, m);
        failed.splice(0, failed.length, ...next.failed);
        provider.active = next.active;
        provider.gpuMissing = opts.provider === 'cuda' && next.active !== 'cuda';
        // Safe to release at once: jobs and clicks run in the CPU pool's threads on their own
        // sessions (cpu.ts sessionFor); these main-thread ones only served the check and tests.
        await releaseAll(old);
        return report();
      })().finally(() => {
        reloading = undefined;
      });
      return reloading;
    },
    async close() {
      await releaseAll([...models.values(), ...interactive.values()]);
    },
  };
}

/** The models a server or worker process runs: the built-in ones plus MODELS_DIR, as configured. */
export function loadConfiguredModels(
  env: Pick<Env, 'MODELS_DIR' | 'EXECUTION_PROVIDER' | 'ORT_THREADS' | 'MODEL_MAX_MB'>,
  log?: Logger,
): Promise<ModelRegistry> {
  return loadModelRegistry({
    roots: [builtInModelsDir(), ...(env.MODELS_DIR ? [path.resolve(env.MODELS_DIR)] : [])],
    provider: env.EXECUTION_PROVIDER,
    threads: env.ORT_THREADS || availableParallelism(),
    maxModelBytes: env.MODEL_MAX_MB * MiB,
    // A server's or worker's registry sessions only serve the check's dry run: jobs and clicks run
    // in the CPU pool's threads on sessions of their own with `threads` (cpu.ts). One intra-op
    // thread each builds them ≈ 50 ms sooner at boot on 2 cores (#29: 109–133 against 165–181 ms).
    sessionThreads: 1,
    ...(log ? { log } : {}),
  });
}

/**
 * `strokeview models check <folder>`: the loader's own check of one folder (manifest, size,
 * graph, dry run) with the configured provider, threads and MODEL_MAX_MB; the session is released.
 */
export async function checkConfiguredModelFolder(
  dir: string,
  env: Pick<Env, 'EXECUTION_PROVIDER' | 'ORT_THREADS' | 'MODEL_MAX_MB'>,
): Promise<ModelCheck & { provider: 'cpu' | 'cuda' }> {
  const opener = sessionOpener(env.EXECUTION_PROVIDER, env.ORT_THREADS || availableParallelism());
  const { session, ...check } = await checkModelFolder(path.resolve(dir), { maxModelBytes: env.MODEL_MAX_MB * MiB, open: opener.open });
  await session?.release().catch(() => {});
  return { ...check, provider: opener.active() };
}

export { ort };
