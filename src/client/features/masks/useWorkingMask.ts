import { useEffect, useReducer, useRef, useState } from 'react';
import type { Lesion, LesionList } from '../../../shared/lesions.js';
import { trpc } from '../../trpc.js';
import { component26 } from '../lesions/components.js';
import type { Vec3 } from '../viewer/grid.js';
import { voxelIndex } from '../viewer/grid.js';
import type { DrawingControls } from '../viewer/NiivueCanvas.js';
import { type Edit, type EditKind, applyEdit, countEdits, diffMasks } from './edit-history.js';
import { decodeMask, encodeMask } from './mask-codec.js';

/** The list without one lesion, its count taken off. */
function withoutLesion(list: LesionList, id: number): LesionList {
  const gone = list.items.find((l) => l.id === id);
  const counts = { ...list.counts, total: list.counts.total - 1 };
  if (gone?.status === 'TP') counts.tp--;
  if (gone?.status === 'FP') counts.fp--;
  return { ...list, items: list.items.filter((l) => l.id !== id), counts };
}

/**
 * The mask being edited, as 0/1 voxels on the DWI grid (native order), with one undo stack for pen
 * strokes (read back from NiiVue's drawing after each one), rejected lesions (a 26-connected flood
 * fill from the lesion's seed, cleared) and refinements (`masks.refine` with the working mask and
 * one click, the answer written in place). The lesion list follows: a refinement brings a fresh one,
 * a reject drops its row, a pen stroke leaves it as it was (marked stale).
 */
export function useWorkingMask(props: { caseId: string; controls: DrawingControls | null; onEdited: () => void }) {
  const { controls, caseId } = props;
  // refs, not state: a refinement's answer arrives after other edits and must see the stack as it is then
  const mask = useRef<Uint8Array | null>(null);
  const stack = useRef<Edit[]>([]);
  const top = useRef(0);
  const initial = useRef<LesionList | null>(null);
  // bumped on every change of the mask: a refinement answered after another edit merges into it
  const generation = useRef(0);
  // bumped when an edit starts or ends: an answer for an earlier session is dropped
  const session = useRef(0);
  const inFlight = useRef(false);
  const [, rerender] = useReducer((n: number) => n + 1, 0);
  const [error, setError] = useState<string | null>(null);
  const refineCall = trpc.masks.refine.useMutation();
  const endRefine = trpc.masks.endRefine.useMutation();

  const now = () => (top.current > 0 ? stack.current[top.current - 1]! : null);
  const lesionsNow = () => {
    const c = now();
    return c ? c.lesionsAfter : initial.current;
  };
  const staleNow = () => now()?.staleAfter ?? false;
  const lesions = lesionsNow();
  const stale = staleNow();

  const push = (kind: EditKind, next: Uint8Array, lesionsAfter: LesionList | null, staleAfter: boolean): boolean => {
    const d = diffMasks(mask.current!, next);
    if (!d) return false;
    stack.current = [...stack.current.slice(0, top.current), { kind, ...d, lesionsBefore: lesionsNow(), lesionsAfter, staleAfter }];
    top.current = stack.current.length;
    mask.current = next;
    generation.current++;
    rerender();
    props.onEdited();
    return true;
  };

  const move = (direction: 'undo' | 'redo') => {
    if (!controls || !mask.current) return;
    const e = direction === 'undo' ? stack.current[top.current - 1] : stack.current[top.current];
    if (!e) return;
    const next = mask.current.slice();
    applyEdit(next, e, direction);
    mask.current = next;
    generation.current++;
    top.current += direction === 'undo' ? -1 : 1;
    controls.write(next);
    rerender();
    props.onEdited();
  };

  const end = () => {
    if (mask.current) endRefine.mutate({ caseId }, { onError: () => {} });
    session.current++;
    mask.current = null;
    stack.current = [];
    top.current = 0;
    initial.current = null;
    setError(null);
    rerender();
  };
  const ending = useRef(end);
  ending.current = end;
  // leaving the case while editing frees the server's refine session too
  useEffect(() => () => ending.current(), [caseId]);

  const reject = (seed: readonly number[], lesion?: Lesion): boolean => {
    const list = lesionsNow();
    if (!controls || !mask.current || !list) return false;
    const dims = controls.dims();
    const voxels = component26(mask.current, dims, seed);
    if (voxels.length === 0) {
      setError(
        lesion ? `Lesion ${lesion.id} is no longer in the working mask.` : 'The crosshair is not inside a lesion of the working mask.',
      );
      return false;
    }
    const next = mask.current.slice();
    for (const i of voxels) next[i] = 0;
    // every listed lesion of the mask whose seed was cleared is the one rejected (one, unless pen strokes joined two)
    let after = list;
    for (const l of list.items)
      if (l.status !== 'FN' && mask.current[voxelIndex(dims, l.seedVoxel)] && !next[voxelIndex(dims, l.seedVoxel)])
        after = withoutLesion(after, l.id);
    setError(null);
    push('reject', next, after, staleNow());
    controls.write(next);
    return true;
  };

  return {
    active: mask.current !== null,
    lesions,
    /** Pen strokes since the list was made: it may miss or misplace lesions. */
    stale,
    error,
    refining: refineCall.isPending,
    canUndo: top.current > 0,
    canRedo: top.current < stack.current.length,
    counts: countEdits(stack.current, top.current),

    /** After the drawing is loaded: its voxels are the base of the stack, `list` the lesions of what it was loaded from. */
    begin(list: LesionList | null) {
      if (!controls) return;
      session.current++;
      mask.current = controls.read();
      stack.current = [];
      top.current = 0;
      initial.current = list;
      generation.current++;
      setError(null);
      rerender();
    },
    end,

    /** NiiVue drew a stroke: what changed is the edit. */
    stroke() {
      if (!controls || !mask.current) return;
      push('pen', controls.read(), lesionsNow(), true);
    },

    rejectLesion: (l: Lesion) => reject(l.seedVoxel, l),
    /** The whole lesion under a voxel (the crosshair's: Delete). */
    rejectAt: (v: readonly number[]) => reject(v),

    async refine(voxel: Vec3, positive: boolean) {
      if (!controls || !mask.current || inFlight.current) return;
      const sent = mask.current;
      const at = generation.current;
      const of = session.current;
      inFlight.current = true;
      setError(null);
      try {
        const res = await refineCall.mutateAsync({ caseId, from: { maskGz: await encodeMask(sent) }, prompts: [{ voxel, positive }] });
        if (session.current !== of || !mask.current) return; // editing stopped meanwhile
        const answer = await decodeMask(res.maskGz, sent.length);
        // edits made while the server worked are kept: only what the refinement changed is written
        const next = mask.current.slice();
        const d = diffMasks(sent, answer);
        if (d) for (let i = 0; i < d.idx.length; i++) next[d.idx[i]!] = d.after[i]!;
        const merged = generation.current !== at;
        // the server listed the lesions of what it was sent: fresh, unless edits came in meanwhile
        if (push('refine', next, res.lesions, merged)) controls.write(next);
        else setError(positive ? 'The click added nothing: no lesion-like voxels grow from there.' : 'The click removed nothing.');
      } catch (e) {
        if (session.current === of) setError((e as Error).message);
      } finally {
        inFlight.current = false;
      }
    },

    undo: () => move('undo'),
    redo: () => move('redo'),
  };
}

export type WorkingMask = ReturnType<typeof useWorkingMask>;
