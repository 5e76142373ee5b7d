import type { MessagePort } from 'node:worker_threads';
import type { WireError } from '../errors.js';

/** ArrayBuffers that can move between threads without a copy: whole, unshared buffers (never Node's pooled slab). */
export function movableBuffers(arrays: Iterable<ArrayBufferView | undefined>): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const a of arrays) {
    if (a && a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.byteLength > 0)
      out.add(a.buffer);
  }
  return [...out];
}

/** Every byte array in a value (arrays and plain objects, a few levels deep): what a task's result can move instead of copy. */
export function byteArraysIn(value: unknown, depth = 4, out: ArrayBufferView[] = []): ArrayBufferView[] {
  if (ArrayBuffer.isView(value)) out.push(value);
  else if (depth > 0 && value && typeof value === 'object') {
    for (const v of Array.isArray(value) ? value : Object.values(value)) byteArraysIn(v, depth - 1, out);
  }
  return out;
}

/** One task for a thread: which registered function, its input, and a port when the caller follows it. */
export interface TaskMessage {
  module: string;
  name: string;
  input: unknown;
  port?: MessagePort;
}

/** A task's answer: its value, or its error as data (a DomainError crosses whole). */
export type TaskAnswer = { ok: true; value: unknown } | { ok: false; error: WireError };

/** Messages on a followed task's port. */
export type FromThread = { type: 'progress'; progress: unknown } | { type: 'checkpoint'; id: number; stage: string };
export type ToThread = { type: 'continue'; id: number } | { type: 'abort' };
