import type { Progress, Stage } from '../segmentation/pipeline.js';

/** ArrayBuffers that can move between threads without a copy: whole, unshared buffers (never Node's pooled slab). */
export function movableBuffers(arrays: Iterable<Uint8Array | undefined>): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const a of arrays) {
    if (a && a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.byteLength > 0)
      out.add(a.buffer);
  }
  return [...out];
}

/** Messages on a segmentation task's port. */
export type FromThread =
  | { type: 'progress'; progress: Progress }
  /** The pipeline entered a stage and waits for `continue` (or `abort`). */
  | { type: 'checkpoint'; id: number; stage: Stage };

export type ToThread = { type: 'continue'; id: number } | { type: 'abort' };
