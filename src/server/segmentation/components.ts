/**
 * 26-connected components of a binary (0/1) mask (x fastest), by breadth-first search with a flat
 * queue: labels 1..count in an Int32Array, and each component's voxel count.
 */
export function labelComponents(
  mask: Uint8Array,
  dims: readonly [number, number, number],
): {
  labels: Int32Array;
  sizes: number[];
} {
  const [nx, ny, nz] = dims;
  const sxy = nx * ny;
  const labels = new Int32Array(mask.length);
  // Lesions are a tiny part of a volume: a small queue that grows beats a volume-sized one.
  let queue = new Int32Array(4096);
  const sizes: number[] = [0];
  let next = 0;
  // indexOf is a native scan: lesions are a tiny part of a volume, so jumping from one set voxel
  // to the next is much faster than testing every voxel in JS (measured ~3 ms → <1 ms here).
  for (let start = mask.indexOf(1); start !== -1; start = mask.indexOf(1, start + 1)) {
    if (labels[start]) continue;
    const label = ++next;
    // head/tail count this component only, so the queue restarts at 0 for each
    let head = 0;
    let tail = 0;
    queue[tail++] = start;
    labels[start] = label;
    while (head < tail) {
      const i = queue[head++]!;
      const z = Math.floor(i / sxy);
      const y = Math.floor((i - z * sxy) / nx);
      const x = i - z * sxy - y * nx;
      for (let dz = -1; dz <= 1; dz++) {
        const zz = z + dz;
        if (zz < 0 || zz >= nz) continue;
        for (let dy = -1; dy <= 1; dy++) {
          const yy = y + dy;
          if (yy < 0 || yy >= ny) continue;
          for (let dx = -1; dx <= 1; dx++) {
            const xx = x + dx;
            if (xx < 0 || xx >= nx) continue;
            const j = zz * sxy + yy * nx + xx;
            if (mask[j] && !labels[j]) {
              labels[j] = label;
              if (tail === queue.length) {
                const bigger = new Int32Array(queue.length * 2);
                bigger.set(queue);
                queue = bigger;
              }
              queue[tail++] = j;
            }
          }
        }
      }
    }
    sizes.push(tail);
  }
  return { labels, sizes };
}

export interface Labeling {
  /** Component label per voxel (0 = background). */
  labels: Int32Array;
  /** Voxel count per label; 0 for a label that was dropped. Index 0 is unused. */
  sizes: number[];
}

/** Drops components with fewer than `minVoxels` voxels; returns the new mask and its labelling. */
export function keepLargeComponents(
  mask: Uint8Array,
  dims: readonly [number, number, number],
  minVoxels: number,
): Labeling & { mask: Uint8Array } {
  const { labels, sizes } = labelComponents(mask, dims);
  const out = new Uint8Array(mask.length);
  const kept = sizes.map((n) => (n >= Math.max(1, minVoxels) ? n : 0));
  for (let i = mask.indexOf(1); i !== -1; i = mask.indexOf(1, i + 1)) {
    if (kept[labels[i]!]) out[i] = 1;
    else labels[i] = 0;
  }
  return { mask: out, labels, sizes: kept };
}

export function removeSmallComponents(mask: Uint8Array, dims: readonly [number, number, number], minVoxels: number): Uint8Array {
  return keepLargeComponents(mask, dims, minVoxels).mask;
}
