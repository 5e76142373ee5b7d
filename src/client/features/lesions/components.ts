import type { Lesion } from '../../../shared/lesions.js';
import { type Vec3, voxelIndex } from '../viewer/grid.js';

// Lesions on the client: the 26-connected component of a mask around one voxel (the server's
// lesions are 26-connected components too, segmentation/components.ts), found by a breadth-first
// flood fill of our own — NiiVue's drawFloodFill works on its RAS drawing with intensity bounds
// and its own undo buffer, and we need plain voxel indices on the native grid.

/**
 * The voxels (native indices) of the 26-connected component of `mask` holding `seed`; empty when
 * the seed is outside the mask. `seen` (all zero, the mask's length) is scratch space a caller
 * finding many components passes to every call, so each does not allocate a volume: it is zero
 * again on return.
 */
export function component26(mask: Uint8Array, dims: Vec3, seed: readonly number[], seen?: Uint8Array): Uint32Array {
  const [nx, ny, nz] = dims;
  const [si, sj, sk] = seed as Vec3;
  if (si < 0 || sj < 0 || sk < 0 || si >= nx || sj >= ny || sk >= nz) return new Uint32Array(0);
  const start = voxelIndex(dims, seed);
  if (!mask[start]) return new Uint32Array(0);
  const visited = seen ?? new Uint8Array(mask.length);
  let queue = new Uint32Array(1024);
  let head = 0;
  let tail = 0;
  queue[tail++] = start;
  visited[start] = 1;
  const plane = nx * ny;
  while (head < tail) {
    const idx = queue[head++]!;
    const k = Math.floor(idx / plane);
    const j = Math.floor((idx - k * plane) / nx);
    const i = idx - k * plane - j * nx;
    for (let dk = -1; dk <= 1; dk++) {
      const kk = k + dk;
      if (kk < 0 || kk >= nz) continue;
      for (let dj = -1; dj <= 1; dj++) {
        const jj = j + dj;
        if (jj < 0 || jj >= ny) continue;
        for (let di = -1; di <= 1; di++) {
          const ii = i + di;
          if (ii < 0 || ii >= nx) continue;
          const n = ii + nx * (jj + ny * kk);
          if (visited[n] || !mask[n]) continue;
          visited[n] = 1;
          if (tail === queue.length) {
            const grown = new Uint32Array(queue.length * 2);
            grown.set(queue);
            queue = grown;
          }
          queue[tail++] = n;
        }
      }
    }
  }
  // exactly the queued voxels were marked: clear them, the scratch is ready for the next call
  if (seen) for (let q = 0; q < tail; q++) visited[queue[q]!] = 0;
  return queue.slice(0, tail);
}

/** Label values of the status layer. */
export const STATUS_LABEL = { TP: 1, FP: 2, FN: 3 } as const;

/** Colours of the status layer and its legend: none of them the truth's green or the prediction's red. */
export const STATUS_COLOURS: Record<keyof typeof STATUS_LABEL, [number, number, number]> = {
  TP: [255, 214, 0],
  FP: [255, 40, 200],
  FN: [0, 220, 255],
};

/**
 * A label volume on the mask's grid: each listed lesion's voxels carry its status (TP, FP from the
 * mask; FN from the ground truth, since a missed lesion is not in the mask). Lesions without a
 * status (no ground truth) stay 0.
 */
export function statusLabels(mask: Uint8Array, truth: Uint8Array | null, dims: Vec3, lesions: readonly Lesion[]): Uint8Array {
  const out = new Uint8Array(mask.length);
  // one scratch volume for every lesion's flood fill (component26 leaves it zeroed), not one each
  const seen = new Uint8Array(mask.length);
  for (const l of lesions) {
    if (!l.status) continue;
    const from = l.status === 'FN' ? truth : mask;
    if (!from) continue;
    const value = STATUS_LABEL[l.status];
    for (const idx of component26(from, dims, l.seedVoxel, seen)) if (!out[idx]) out[idx] = value;
  }
  return out;
}

/** The outline's colour: white, unlike every overlay and the crosshair. */
export const OUTLINE_COLOUR: [number, number, number] = [255, 255, 255];

/**
 * A one-voxel ring around a lesion: the voxels 26-adjacent to the component but outside it, as a
 * 0/1 volume. Drawn over the image it outlines the lesion in every view without covering it.
 */
export function ringAround(component: Uint32Array, dims: Vec3): Uint8Array {
  const [nx, ny, nz] = dims;
  const inside = new Uint8Array(nx * ny * nz);
  for (const idx of component) inside[idx] = 1;
  const out = new Uint8Array(inside.length);
  const plane = nx * ny;
  for (const idx of component) {
    const k = Math.floor(idx / plane);
    const j = Math.floor((idx - k * plane) / nx);
    const i = idx - k * plane - j * nx;
    for (let kk = Math.max(0, k - 1); kk <= Math.min(nz - 1, k + 1); kk++)
      for (let jj = Math.max(0, j - 1); jj <= Math.min(ny - 1, j + 1); jj++)
        for (let ii = Math.max(0, i - 1); ii <= Math.min(nx - 1, i + 1); ii++) {
          const n = ii + nx * (jj + ny * kk);
          if (!inside[n]) out[n] = 1;
        }
  }
  return out;
}
