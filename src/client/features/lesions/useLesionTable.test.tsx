// @vitest-environment happy-dom
import { act, renderHook } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { Lesion, LesionList } from '../../../shared/lesions.js';
import { useLesionTable } from './useLesionTable.js';

const lesion = (id: number, status: Lesion['status'], voxels: number, z: number): Lesion =>
  ({ id, status, voxels, volumeMl: voxels / 1000, centroidMm: [0, 0, z], seedVoxel: [id, id, id] }) as unknown as Lesion;
const list = {
  items: [lesion(1, 'TP', 50, 10), lesion(2, 'FP', 200, -5), lesion(3, 'FN', 20, 30), lesion(4, 'FP', 80, 0)],
  counts: { tp: 1, fp: 2, fn: 1, total: 4 },
} as unknown as LesionList;

function setup() {
  const went: number[][] = [];
  const nav = { goToVoxel: (v: readonly number[]) => went.push([...v]) };
  const hook = renderHook(() => useLesionTable(list, nav));
  const ids = () => hook.result.current.rows.map((l) => l.id);
  return { hook, went, ids };
}
const press = (key: string) => act(() => void window.dispatchEvent(new KeyboardEvent('keydown', { key })));

describe('the lesion table', () => {
  it('sorts by volume (largest first, a second click reverses), by status and by position', () => {
    const { hook, ids } = setup();
    expect(ids()).toEqual([1, 2, 3, 4]);
    act(() => hook.result.current.sortBy('volume'));
    expect(ids()).toEqual([2, 4, 1, 3]);
    act(() => hook.result.current.sortBy('volume'));
    expect(ids()).toEqual([3, 1, 4, 2]);
    act(() => hook.result.current.sortBy('status'));
    expect(ids()).toEqual([1, 2, 4, 3]);
    act(() => hook.result.current.sortBy('position'));
    expect(ids()).toEqual([2, 4, 1, 3]); // inferior to superior
  });

  it('a row click moves the crosshair to its seed voxel; N / P step through the rows in their order, wrapping', () => {
    const { hook, went } = setup();
    act(() => hook.result.current.sortBy('volume'));
    act(() => hook.result.current.select(list.items[3]!));
    expect(hook.result.current.selected).toBe(4);
    expect(went.at(-1)).toEqual([4, 4, 4]);
    press('n');
    expect(hook.result.current.selected).toBe(1);
    press('N');
    expect(hook.result.current.selected).toBe(3);
    press('n');
    expect(hook.result.current.selected, 'wraps to the first').toBe(2);
    press('p');
    expect(hook.result.current.selected).toBe(3);
    expect(went.at(-1)).toEqual([3, 3, 3]);
  });

  it('leaves keys typed into a text field alone', () => {
    const { hook } = setup();
    const input = document.createElement('input');
    document.body.append(input);
    act(() => void input.dispatchEvent(new KeyboardEvent('keydown', { key: 'n', bubbles: true })));
    expect(hook.result.current.selected).toBeNull();
    input.remove();
  });
});
