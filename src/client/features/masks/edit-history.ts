import type { LesionList } from '../../../shared/lesions.js';

// One undo stack for every kind of edit of the working mask — pen strokes, rejected lesions and
// refinements — each kept as the voxels it changed (indices with their values before and after),
// not as a copy of the whole mask: a stroke changes a few hundred voxels of a million.

export type EditKind = 'pen' | 'reject' | 'refine';

export interface Edit {
  kind: EditKind;
  idx: Uint32Array;
  before: Uint8Array;
  after: Uint8Array;
  /** The lesion list before and after (a pen stroke leaves it as it was: the server has not seen the stroke). */
  lesionsBefore: LesionList | null;
  lesionsAfter: LesionList | null;
  /** Whether the list after this edit misses pen strokes (the server lists lesions only for what it saw). */
  staleAfter: boolean;
}

/** The voxels where `next` differs from `prev`; null when none do. */
export function diffMasks(prev: Uint8Array, next: Uint8Array): Pick<Edit, 'idx' | 'before' | 'after'> | null {
  let n = 0;
  for (let i = 0; i < prev.length; i++) if (prev[i] !== next[i]) n++;
  if (n === 0) return null;
  const idx = new Uint32Array(n);
  const before = new Uint8Array(n);
  const after = new Uint8Array(n);
  for (let i = 0, w = 0; i < prev.length; i++)
    if (prev[i] !== next[i]) {
      idx[w] = i;
      before[w] = prev[i]!;
      after[w++] = next[i]!;
    }
  return { idx, before, after };
}

/** Writes an edit's values (after: redo, before: undo) into the mask. */
export function applyEdit(mask: Uint8Array, e: Edit, direction: 'redo' | 'undo'): void {
  const values = direction === 'redo' ? e.after : e.before;
  for (let i = 0; i < e.idx.length; i++) mask[e.idx[i]!] = values[i]!;
}

/** How many edits of each kind are in effect (those undone do not count): what the saved version's provenance reports. */
export function countEdits(stack: readonly Edit[], top: number): Record<EditKind, number> {
  const out: Record<EditKind, number> = { pen: 0, reject: 0, refine: 0 };
  for (const e of stack.slice(0, top)) out[e.kind]++;
  return out;
}
