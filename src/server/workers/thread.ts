import { readFileSync } from 'node:fs';
import { Piscina, move } from 'piscina';
import { type MessagePort, threadId } from 'node:worker_threads';
import type { VolumeRole } from '../../shared/cases.js';
import type { ModelManifest } from '../../shared/models.js';
import { CaseInputError, type PrepareLimits, type PreparedVolume, prepareCaseVolumes } from '../cases/prepare.js';
import { MaskInputError, analyzeMask } from '../masks/service.js';
import { CancelledError } from '../segmentation/inference.js';
import { type LoadedModel, createSession } from '../segmentation/models.js';
import { type PipelineResult, SegmentationInputError, type Stage, runPipeline } from '../segmentation/pipeline.js';
import { sha256Hex } from '../volumes/store.js';
import { type FromThread, type ToThread, movableBuffers } from './protocol.js';

// One worker thread of the CPU pool (pool.ts). Everything CPU-heavy runs here — NIfTI decoding,
// validation and encoding, gzip, sha256, the pipeline's pre/post-processing and metrics, and the
// sliding-window math around onnxruntime — so the main thread only moves bytes and state.

export type ThreadTask =
  | { kind: 'info' }
  /** Files as bytes, or as paths of spooled uploads (read here, off the event loop). */
  | { kind: 'prepareCase'; files: Partial<Record<VolumeRole, Uint8Array | string>>; limits: PrepareLimits }
  | { kind: 'analyzeMask'; input: Parameters<typeof analyzeMask>[0] }
  | {
      kind: 'segment';
      port: MessagePort;
      volumes: Partial<Record<VolumeRole, Uint8Array>>;
      models: { manifest: ModelManifest; dir: string }[];
      provider: 'cpu' | 'cuda';
      threads: number;
    };

/** Errors cross the thread boundary as data: their class decides how the job or upload ends. */
export type ThreadError = {
  error: { kind: 'input' | 'case-input' | 'mask-input' | 'cancelled' | 'internal'; message: string; role?: string; stack?: string };
};

export type PreparedWithHash = PreparedVolume & { sha256: string };

/** Sessions are created once per thread and model file. */
const sessions = new Map<string, Promise<LoadedModel['session']>>();
function sessionFor(dir: string, provider: 'cpu' | 'cuda', threads: number) {
  const key = `${dir}|${provider}|${threads}`;
  let s = sessions.get(key);
  if (!s) {
    s = createSession(`${dir}/model.onnx`, provider, threads).catch(async (err) => {
      if (provider === 'cuda') return createSession(`${dir}/model.onnx`, 'cpu', threads);
      throw err;
    });
    sessions.set(key, s);
  }
  return s;
}

function asThreadError(err: unknown): ThreadError {
  if (err instanceof CaseInputError)
    return { error: { kind: 'case-input', message: err.message, ...(err.role ? { role: err.role } : {}) } };
  if (err instanceof SegmentationInputError) return { error: { kind: 'input', message: err.message } };
  if (err instanceof MaskInputError) return { error: { kind: 'mask-input', message: err.message } };
  if (err instanceof CancelledError) return { error: { kind: 'cancelled', message: err.message } };
  const e = err as Error;
  return { error: { kind: 'internal', message: e?.message ?? String(err), ...(e?.stack ? { stack: e.stack } : {}) } };
}

async function segment(task: Extract<ThreadTask, { kind: 'segment' }>) {
  const { port } = task;
  const controller = new AbortController();
  let nextCheck = 0;
  const waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  port.on('message', (msg: ToThread) => {
    if (msg.type === 'abort') {
      controller.abort();
      for (const w of waiting.values()) w.reject(new CancelledError());
      waiting.clear();
    } else if (msg.type === 'continue') {
      waiting.get(msg.id)?.resolve();
      waiting.delete(msg.id);
    }
  });
  const send = (m: FromThread) => port.postMessage(m);
  try {
    const models: LoadedModel[] = [];
    for (const m of task.models)
      models.push({ manifest: m.manifest, dir: m.dir, session: await sessionFor(m.dir, task.provider, task.threads) });
    const timings: Partial<Record<Stage, number>> = {};
    const result: PipelineResult = await runPipeline({
      read: async (role) => task.volumes[role],
      models,
      signal: controller.signal,
      timings,
      onProgress: (p) => send({ type: 'progress', progress: p }),
      // The main thread owns holds and cancel checks (they read the database): ask it, and wait.
      checkpoint: (stage) =>
        new Promise<void>((resolve, reject) => {
          const id = nextCheck++;
          waiting.set(id, { resolve, reject });
          send({ type: 'checkpoint', id, stage });
        }),
    });
    // The raw voxel masks stay here: the main thread stores the encoded files only.
    return {
      ...result,
      mask: new Uint8Array(0),
      perModel: result.perModel.map((m) => ({ ...m, mask: new Uint8Array(0) })),
      timings,
      threadId,
    };
  } catch (err) {
    return asThreadError(err);
  } finally {
    port.close();
  }
}

/** A result whose whole, unshared buffers are transferred rather than copied (piscina's protocol). */
function transferring<T>(value: T, arrays: Uint8Array[]): unknown {
  const list = movableBuffers(arrays);
  return move({
    get [Piscina.transferableSymbol]() {
      return list;
    },
    get [Piscina.valueSymbol]() {
      return value;
    },
  } as never);
}

export default async function run(task: ThreadTask): Promise<unknown> {
  switch (task.kind) {
    case 'info':
      return { threadId };
    case 'prepareCase':
      try {
        const files: Partial<Record<VolumeRole, Uint8Array>> = {};
        for (const [role, f] of Object.entries(task.files)) files[role as VolumeRole] = typeof f === 'string' ? readFileSync(f) : f;
        const prepared: PreparedWithHash[] = prepareCaseVolumes(files, task.limits).map((p) => ({ ...p, sha256: sha256Hex(p.stored) }));
        // The stored bytes move back without a copy.
        return transferring(
          prepared,
          prepared.map((p) => p.stored),
        );
      } catch (err) {
        return asThreadError(err);
      }
    case 'segment':
      return segment(task);
    case 'analyzeMask':
      try {
        const analyzed = analyzeMask(task.input);
        return transferring(analyzed, [analyzed.stored]);
      } catch (err) {
        return asThreadError(err);
      }
  }
}
