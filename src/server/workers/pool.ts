import { availableParallelism } from 'node:os';
import { MessageChannel, type TransferListItem } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { VolumeRole } from '../../shared/cases.js';
import { CaseInputError, type PrepareLimits } from '../cases/prepare.js';
import { type AnalyzedMask, MaskInputError, type analyzeMask } from '../masks/service.js';
import { CancelledError } from '../segmentation/inference.js';
import type { LoadedModel } from '../segmentation/models.js';
import { type PipelineResult, type Progress, SegmentationInputError, type Stage } from '../segmentation/pipeline.js';
import { type FromThread, type ToThread, movableBuffers } from './protocol.js';
import type { PreparedWithHash, ThreadError, ThreadTask } from './thread.js';

/**
 * The CPU pool: worker threads (piscina) for everything CPU-heavy, so the event loop only moves
 * bytes and state — one upload or job never freezes every other request and progress stream.
 *
 * Size: `CPU_THREADS`, or by default one thread per job a process runs (`WORKER_CONCURRENCY`)
 * plus one for uploads, at most the cores and at least 2.
 */
export function poolSize(env: { CPU_THREADS: number; WORKER_CONCURRENCY: number }, cores = availableParallelism()): number {
  if (env.CPU_THREADS > 0) return env.CPU_THREADS;
  return Math.max(2, Math.min(cores, env.WORKER_CONCURRENCY + 1));
}

export interface SegmentInThreadOptions {
  volumes: Partial<Record<VolumeRole, Uint8Array>>;
  models: LoadedModel[];
  provider: 'cpu' | 'cuda';
  threads: number;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  checkpoint?: (stage: Stage) => Promise<void>;
}

export type SegmentResult = PipelineResult & { timings: Partial<Record<Stage, number>>; threadId: number };

function rethrow(e: ThreadError['error']): never {
  if (e.kind === 'case-input') throw new CaseInputError(e.message, e.role as VolumeRole | undefined);
  if (e.kind === 'input') throw new SegmentationInputError(e.message);
  if (e.kind === 'mask-input') throw new MaskInputError(e.message);
  if (e.kind === 'cancelled') throw new CancelledError();
  const err = new Error(e.message);
  if (e.stack) err.stack = e.stack;
  throw err;
}

const isThreadError = (v: unknown): v is ThreadError => typeof v === 'object' && v !== null && 'error' in v && !Array.isArray(v);

export class CpuPool {
  private readonly pool: Piscina;
  constructor(readonly size: number) {
    // From sources (tests, tsx) the thread is TypeScript too: it loads through tsx.
    const ts = import.meta.url.endsWith('.ts');
    this.pool = new Piscina({
      filename: new URL(`./thread.${ts ? 'ts' : 'js'}`, import.meta.url).href,
      minThreads: 1,
      maxThreads: size,
      idleTimeout: 60_000,
      ...(ts ? { execArgv: ['--import', 'tsx'] } : {}),
    });
  }

  private run<T>(task: ThreadTask, transferList?: TransferListItem[]): Promise<T> {
    return this.pool.run(task, transferList ? { transferList: transferList as never } : {}) as Promise<T>;
  }

  /** The thread a task runs on (tests prove the work is off the main thread). */
  info(): Promise<{ threadId: number }> {
    return this.run({ kind: 'info' });
  }

  /** Checks, gzips (when needed) and hashes a case's files (bytes, or paths of spooled uploads): `prepareCaseVolumes` in a thread. */
  async prepareCase(files: Partial<Record<VolumeRole, Uint8Array | string>>, limits: PrepareLimits): Promise<PreparedWithHash[]> {
    const out = await this.run<PreparedWithHash[] | ThreadError>({ kind: 'prepareCase', files, limits });
    if (isThreadError(out)) rethrow(out.error);
    return out.map((p) => ({ ...p, stored: Buffer.from(p.stored.buffer, p.stored.byteOffset, p.stored.byteLength) }));
  }

  /** Checks a corrected mask and computes its numbers (`analyzeMask`) in a thread. */
  async analyzeMask(input: Parameters<typeof analyzeMask>[0]): Promise<AnalyzedMask> {
    const out = await this.run<AnalyzedMask | ThreadError>({ kind: 'analyzeMask', input });
    if (isThreadError(out)) rethrow(out.error);
    return { ...out, stored: Buffer.from(out.stored.buffer, out.stored.byteOffset, out.stored.byteLength) };
  }

  /** Runs the segmentation pipeline in a thread; holds, cancel checks and progress stay here. */
  async segment(opts: SegmentInThreadOptions): Promise<SegmentResult> {
    const { port1, port2 } = new MessageChannel();
    const send = (m: ToThread) => port1.postMessage(m);
    const onAbort = () => send({ type: 'abort' });
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    port1.on('message', (msg: FromThread) => {
      if (msg.type === 'progress') opts.onProgress?.(msg.progress);
      else if (msg.type === 'checkpoint') {
        Promise.resolve(opts.checkpoint?.(msg.stage)).then(
          () => send(opts.signal?.aborted ? { type: 'abort' } : { type: 'continue', id: msg.id }),
          () => send({ type: 'abort' }),
        );
      }
    });
    try {
      const task: ThreadTask = {
        kind: 'segment',
        port: port2,
        volumes: opts.volumes,
        models: opts.models.map((m) => ({ manifest: m.manifest, dir: m.dir })),
        provider: opts.provider,
        threads: opts.threads,
      };
      // The volumes move to the thread without a copy (the caller read them for this job only).
      const out = await this.run<SegmentResult | ThreadError>(task, [port2, ...movableBuffers(Object.values(opts.volumes))]);
      if (isThreadError(out)) rethrow(out.error);
      const buf = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
      return {
        ...out,
        maskNifti: buf(out.maskNifti),
        perModel: out.perModel.map((m) => ({ ...m, maskNifti: buf(m.maskNifti) })),
      };
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      port1.close();
    }
  }

  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}
