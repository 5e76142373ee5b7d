import { describe, expect, it } from 'vitest';
import { type Edit, applyEdit, countEdits, diffMasks } from './edit-history.js';
import { decodeMask, encodeMask } from './mask-codec.js';

const edit = (kind: Edit['kind'], prev: Uint8Array, next: Uint8Array): Edit => ({
  kind,
  ...diffMasks(prev, next)!,
  lesionsBefore: null,
  lesionsAfter: null,
  staleAfter: false,
});

describe('the edit history', () => {
  it('keeps an edit as the voxels it changed, and none for no change', () => {
    const prev = Uint8Array.from([0, 1, 1, 0, 0]);
    const next = Uint8Array.from([1, 1, 0, 0, 0]);
    const d = diffMasks(prev, next)!;
    expect(Array.from(d.idx)).toEqual([0, 2]);
    expect(Array.from(d.before)).toEqual([0, 1]);
    expect(Array.from(d.after)).toEqual([1, 0]);
    expect(diffMasks(prev, prev.slice())).toBeNull();
  });

  it('undo and redo walk one stack of pen strokes, rejects and refinements back and forth to the same masks', () => {
    const m0 = new Uint8Array(10);
    const m1 = m0.slice();
    m1.set([1, 1], 2); // a pen stroke
    const m2 = m1.slice();
    m2.set([0, 0], 2); // the lesion rejected
    const m3 = m2.slice();
    m3.set([1, 1, 1], 6); // a refinement grew one
    const stack = [edit('pen', m0, m1), edit('reject', m1, m2), edit('refine', m2, m3)];
    const mask = m3.slice();
    applyEdit(mask, stack[2]!, 'undo');
    expect(mask).toEqual(m2);
    applyEdit(mask, stack[1]!, 'undo');
    expect(mask).toEqual(m1);
    applyEdit(mask, stack[0]!, 'undo');
    expect(mask).toEqual(m0);
    for (const e of stack) applyEdit(mask, e, 'redo');
    expect(mask).toEqual(m3);
    expect(countEdits(stack, 3)).toEqual({ pen: 1, reject: 1, refine: 1 });
    expect(countEdits(stack, 1), 'undone edits do not count').toEqual({ pen: 1, reject: 0, refine: 0 });
  });
});

describe('the mask codec', () => {
  it('round-trips a working mask through gzip and base64, and refuses one of another size', async () => {
    const mask = new Uint8Array(112 * 112 * 73);
    for (let i = 0; i < mask.length; i += 97) mask[i] = 1;
    const text = await encodeMask(mask);
    expect(text).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(text.length).toBeLessThan(mask.length / 4);
    expect(await decodeMask(text, mask.length)).toEqual(mask);
    await expect(decodeMask(text, 10)).rejects.toThrow(/10 of the case's grid/);
  });
});
