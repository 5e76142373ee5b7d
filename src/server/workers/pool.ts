import { availableParallelism } from 'node:os';
import { MessageChannel, type TransferListItem } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { fromWire } from '../errors.js';
import { type FromThread, type TaskAnswer, type TaskMessage, type ToThread, movableBuffers } from './protocol.js';
import type { CpuTask } from './task.js';

/**
 * The CPU pool: worker threads (piscina) for everything CPU-heavy, so the event loop only moves
 * bytes and state — one upload or job never freezes every other request and progress stream. It
 * runs the tasks domains register (task.ts) and carries their DomainErrors back unchanged.
 *
 * Size: `CPU_THREADS`, or by default one thread per job a process runs (`WORKER_CONCURRENCY`)
 * plus one for uploads, at most the cores and at least 2.
 */
export function poolSize(env: { CPU_THREADS: number; WORKER_CONCURRENCY: number }, cores = availableParallelism()): number {
  if (env.CPU_THREADS > 0) return env.CPU_THREADS;
  return Math.max(2, Math.min(cores, env.WORKER_CONCURRENCY + 1));
}

export interface RunOptions<P, S extends string> {
  /** Byte arrays of the input to move to the thread without a copy (the caller gives them up). */
  transfer?: Iterable<ArrayBufferView | undefined>;
  /** Following the task (any of these opens a port to its thread). */
  signal?: AbortSignal;
  onProgress?: (p: P) => void;
  /** Answered on this thread while the task waits: holds and cancel checks read the database. */
  checkpoint?: (stage: S) => Promise<void>;
}

export class CpuPool {
  private readonly pool: Piscina;
  constructor(readonly size: number) {
    // From sources (tests, tsx) the thread and the task modules are TypeScript too: they load through tsx.
    const ts = import.meta.url.endsWith('.ts');
    this.pool = new Piscina({
      filename: new URL(ts ? './thread-from-source.mjs' : './thread.js', import.meta.url).href,
      minThreads: 1,
      maxThreads: size,
      idleTimeout: 60_000,
    });
  }

  /** The thread a task runs on (tests prove the work is off the main thread). */
  info(): Promise<{ threadId: number }> {
    return this.pool.run({ info: true }) as Promise<{ threadId: number }>;
  }

  /** Runs a registered task in a thread; its DomainError (or an internal error) is thrown here. */
  async run<I, O, P, S extends string>(task: CpuTask<I, O, P, S>, input: I, opts: RunOptions<P, S> = {}): Promise<O> {
    const transferList: TransferListItem[] = movableBuffers(opts.transfer ?? []);
    const followed = opts.signal !== undefined || opts.onProgress !== undefined || opts.checkpoint !== undefined;
    const channel = followed ? new MessageChannel() : undefined;
    const message: TaskMessage = { module: task.module, name: task.name, input };
    let onAbort: (() => void) | undefined;
    if (channel) {
      const { port1, port2 } = channel;
      message.port = port2;
      transferList.push(port2);
      const send = (m: ToThread) => port1.postMessage(m);
      onAbort = () => send({ type: 'abort' });
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      port1.on('message', (msg: FromThread) => {
        if (msg.type === 'progress') opts.onProgress?.(msg.progress as P);
        else {
          Promise.resolve(opts.checkpoint?.(msg.stage as S)).then(
            () => send(opts.signal?.aborted ? { type: 'abort' } : { type: 'continue', id: msg.id }),
            () => send({ type: 'abort' }),
          );
        }
      });
    }
    try {
      const answer = (await this.pool.run(message, { transferList: transferList as never })) as TaskAnswer;
      if (!answer.ok) throw fromWire(answer.error);
      return answer.value as O;
    } finally {
      if (onAbort) opts.signal?.removeEventListener('abort', onAbort);
      channel?.port1.close();
    }
  }

  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}

/** A byte array that came back from a thread, as the Buffer the rest of the server works with (no copy). */
export const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
