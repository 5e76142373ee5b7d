// @vitest-environment happy-dom
import { act, renderHook } from '@testing-library/react';
import { describe, expect, it, vi } from 'vitest';
import type { Lesion, LesionList } from '../../../shared/lesions.js';
import type { RefineInput } from '../../../shared/refine.js';
import { type Vec3, voxelIndex } from '../viewer/grid.js';
import type { DrawingControls } from '../viewer/NiivueCanvas.js';
import { decodeMask, encodeMask } from './mask-codec.js';

// The working mask's logic against a stand-in for NiiVue's drawing and for masks.refine (the server
// and the browser's drawing are covered by src/server/refine/refine.test.ts and e2e/lesions.test.ts).
const calls = vi.hoisted(() => ({ refine: [] as unknown[], ended: 0, answer: null as null | ((input: unknown) => Promise<unknown>) }));
vi.mock('../../trpc.js', () => ({
  trpc: {
    masks: {
      refine: {
        useMutation: () => ({
          isPending: false,
          mutateAsync: async (input: unknown) => {
            calls.refine.push(input);
            return calls.answer!(input);
          },
        }),
      },
      endRefine: { useMutation: () => ({ mutate: () => void calls.ended++ }) },
    },
  },
}));
const { useWorkingMask } = await import('./useWorkingMask.js');

const dims: Vec3 = [8, 8, 4];
const at = (v: Vec3) => voxelIndex(dims, v);
function fakeDrawing(initial: Uint8Array): DrawingControls & { bitmap: Uint8Array } {
  const d = {
    bitmap: initial.slice(),
    start: async () => {},
    pen: () => {},
    tool: () => {},
    dims: () => dims,
    read: () => d.bitmap.slice(),
    write: (m: Uint8Array) => void (d.bitmap = m.slice()),
    save: async () => new Uint8Array(),
    stop: () => {},
  };
  return d;
}
const lesion = (id: number, status: Lesion['status'], seedVoxel: Vec3) => ({ id, status, seedVoxel }) as unknown as Lesion;
const lesions = (...items: Lesion[]): LesionList =>
  ({
    items,
    counts: {
      tp: items.filter((l) => l.status === 'TP').length,
      fp: items.filter((l) => l.status === 'FP').length,
      fn: items.filter((l) => l.status === 'FN').length,
      total: items.length,
    },
  }) as unknown as LesionList;
const sum = (m: Uint8Array) => m.reduce((a, b) => a + b, 0);

describe('the working mask', () => {
  it('one undo / redo stack covers a pen stroke, a rejected lesion and a refinement, with the lesion list following', async () => {
    const start = new Uint8Array(8 * 8 * 4);
    start[at([1, 1, 1])] = start[at([2, 2, 2])] = 1; // an FP, corner-connected (one 26-component)
    start[at([6, 6, 1])] = 1; // a TP
    const drawing = fakeDrawing(start);
    const edited = vi.fn();
    const { result } = renderHook(() => useWorkingMask({ caseId: 'c1', controls: drawing, onEdited: edited }));
    const list = lesions(lesion(1, 'FP', [1, 1, 1]), lesion(2, 'TP', [6, 6, 1]), lesion(3, 'FN', [4, 4, 3]));
    act(() => result.current.begin(list));
    expect(result.current.lesions).toBe(list);

    // a pen stroke: NiiVue's drawing changed, the stack takes what changed; the list goes stale
    drawing.bitmap[at([0, 7, 0])] = 1;
    act(() => result.current.stroke());
    expect(result.current.stale).toBe(true);

    // reject the FP: both its voxels go, its row goes
    act(() => void result.current.rejectLesion(list.items[0]!));
    expect(drawing.bitmap[at([1, 1, 1])]).toBe(0);
    expect(drawing.bitmap[at([2, 2, 2])]).toBe(0);
    expect(result.current.lesions!.items.map((l) => l.id)).toEqual([2, 3]);
    expect(result.current.lesions!.counts).toMatchObject({ fp: 0, tp: 1, total: 2 });

    // click to add at the FN: masks.refine gets the working mask and the click, its answer is written in place
    const grown = drawing.read();
    grown[at([4, 4, 3])] = grown[at([4, 5, 3])] = 1;
    const fresh = lesions(lesion(1, 'TP', [6, 6, 1]), lesion(2, 'TP', [4, 4, 3]));
    calls.answer = async (input) => {
      const sent = await decodeMask((input as { from: { maskGz: string } }).from.maskGz, grown.length);
      expect(sum(sent), 'the server sees the stroke and the reject').toBe(2);
      return { maskGz: await encodeMask(grown), lesions: fresh };
    };
    await act(() => result.current.refine([4, 4, 3], true));
    const input = calls.refine.at(-1) as RefineInput;
    expect(input).toMatchObject({ caseId: 'c1', prompts: [{ voxel: [4, 4, 3], positive: true }] });
    expect(drawing.bitmap).toEqual(grown);
    expect(result.current.lesions).toBe(fresh);
    expect(result.current.stale).toBe(false);
    expect(result.current.counts).toEqual({ pen: 1, reject: 1, refine: 1 });

    // undo three times: the refinement, the reject, the stroke; redo brings them back in order
    act(() => result.current.undo());
    expect(sum(drawing.bitmap)).toBe(2);
    act(() => result.current.undo());
    expect(drawing.bitmap[at([2, 2, 2])]).toBe(1);
    expect(result.current.lesions!.items.map((l) => l.id)).toEqual([1, 2, 3]);
    act(() => result.current.undo());
    expect(drawing.bitmap).toEqual(start);
    expect(result.current.lesions).toBe(list);
    expect(result.current.canUndo).toBe(false);
    expect(result.current.counts).toEqual({ pen: 0, reject: 0, refine: 0 });
    act(() => result.current.redo());
    act(() => result.current.redo());
    act(() => result.current.redo());
    expect(drawing.bitmap).toEqual(grown);
    expect(result.current.canRedo).toBe(false);

    // a new edit after an undo drops the redo branch
    act(() => result.current.undo());
    drawing.bitmap[at([7, 0, 0])] = 1;
    act(() => result.current.stroke());
    expect(result.current.canRedo).toBe(false);
    expect(result.current.counts).toEqual({ pen: 2, reject: 1, refine: 0 });
    expect(edited).toHaveBeenCalled();

    // leaving frees the server's refine session
    act(() => result.current.end());
    expect(calls.ended).toBe(1);
    expect(result.current.active).toBe(false);
  });

  it('Delete outside every lesion says so and changes nothing; a click that adds nothing says so', async () => {
    const start = new Uint8Array(8 * 8 * 4);
    start[at([3, 3, 3])] = 1;
    const drawing = fakeDrawing(start);
    const { result } = renderHook(() => useWorkingMask({ caseId: 'c1', controls: drawing, onEdited: () => {} }));
    act(() => result.current.begin(lesions(lesion(1, 'FP', [3, 3, 3]))));
    act(() => void result.current.rejectAt([0, 0, 0]));
    expect(result.current.error).toMatch(/not inside a lesion/);
    expect(result.current.canUndo).toBe(false);
    act(() => void result.current.rejectAt([3, 3, 3]));
    expect(result.current.error).toBeNull();
    expect(sum(drawing.bitmap)).toBe(0);
    calls.answer = async (input) => ({ maskGz: (input as { from: { maskGz: string } }).from.maskGz, lesions: lesions() });
    await act(() => result.current.refine([0, 0, 0], true));
    expect(result.current.error).toMatch(/added nothing/);
    expect(result.current.counts).toEqual({ pen: 0, reject: 1, refine: 0 });
  });

  it("a refinement answered after a pen stroke keeps the stroke (only the refinement's change is written)", async () => {
    const drawing = fakeDrawing(new Uint8Array(8 * 8 * 4));
    const { result } = renderHook(() => useWorkingMask({ caseId: 'c1', controls: drawing, onEdited: () => {} }));
    act(() => result.current.begin(null));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    calls.answer = async (input) => {
      await gate;
      const m = await decodeMask((input as { from: { maskGz: string } }).from.maskGz, 256);
      m[at([5, 5, 2])] = 1;
      return { maskGz: await encodeMask(m), lesions: lesions() };
    };
    let pending!: Promise<void>;
    act(() => void (pending = result.current.refine([5, 5, 2], true)));
    drawing.bitmap[at([0, 0, 0])] = 1;
    act(() => result.current.stroke());
    release();
    await act(() => pending);
    expect(drawing.bitmap[at([0, 0, 0])]).toBe(1);
    expect(drawing.bitmap[at([5, 5, 2])]).toBe(1);
    expect(result.current.stale, 'the list came before the stroke reached the server').toBe(true);
  });
});
