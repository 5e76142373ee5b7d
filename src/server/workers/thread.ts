import { type MessagePort, threadId } from 'node:worker_threads';
import { Piscina, move } from 'piscina';
import { cancelled, toWire } from '../errors.js';
import { type FromThread, type TaskAnswer, type TaskMessage, type ToThread, byteArraysIn, movableBuffers } from './protocol.js';
import type { TaskFunction, TaskIo } from './task.js';

// One worker thread of the CPU pool (pool.ts): it runs whatever task a domain registered
// (workers/task.ts) — NIfTI decoding and encoding, gzip, sha256, the segmentation pipeline — so
// the main thread only moves bytes and state. It imports no domain: the task names its module.

/** The io of a followed task: progress out, checkpoints answered by the caller, abort in. */
function followedIo(port: MessagePort): TaskIo<unknown, string> & { close(): void } {
  const controller = new AbortController();
  const waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  let nextCheck = 0;
  port.on('message', (msg: ToThread) => {
    if (msg.type === 'abort') {
      controller.abort();
      for (const w of waiting.values()) w.reject(cancelled());
      waiting.clear();
    } else {
      waiting.get(msg.id)?.resolve();
      waiting.delete(msg.id);
    }
  });
  const send = (m: FromThread) => port.postMessage(m);
  return {
    signal: controller.signal,
    progress: (progress) => send({ type: 'progress', progress }),
    checkpoint: (stage) =>
      new Promise<void>((resolve, reject) => {
        const id = nextCheck++;
        waiting.set(id, { resolve, reject });
        send({ type: 'checkpoint', id, stage });
      }),
    close: () => port.close(),
  };
}

const unfollowed: TaskIo<unknown, string> = {
  signal: new AbortController().signal,
  progress: () => {},
  checkpoint: async () => {},
};

/** An answer whose whole, unshared buffers are transferred rather than copied (piscina's protocol). */
function transferring(answer: TaskAnswer): unknown {
  const list = movableBuffers(byteArraysIn(answer));
  if (list.length === 0) return answer;
  return move({
    get [Piscina.transferableSymbol]() {
      return list;
    },
    get [Piscina.valueSymbol]() {
      return answer;
    },
  } as never);
}

export default async function run(task: TaskMessage | { info: true }): Promise<unknown> {
  if ('info' in task) return { threadId };
  const io = task.port ? followedIo(task.port) : undefined;
  try {
    const mod = (await import(task.module)) as Record<string, unknown>;
    const fn = mod[task.name];
    if (typeof fn !== 'function') throw new Error(`no CPU task ${task.name} in ${task.module}`);
    const value = await (fn as TaskFunction<unknown, unknown, unknown, string>)(task.input, io ?? unfollowed);
    return transferring({ ok: true, value });
  } catch (err) {
    return { ok: false, error: toWire(err) } satisfies TaskAnswer;
  } finally {
    io?.close();
  }
}
