import { useEffect, useMemo, useRef, useState } from 'react';
import type { Lesion, LesionList } from '../../../shared/lesions.js';
import type { Navigator } from '../viewer/NiivueCanvas.js';

export type LesionSort = 'id' | 'status' | 'volume' | 'position';

const STATUS_ORDER = { TP: 0, FP: 1, FN: 2 } as const;
const byKey: Record<LesionSort, (a: Lesion, b: Lesion) => number> = {
  id: (a, b) => a.id - b.id,
  status: (a, b) => (a.status ? STATUS_ORDER[a.status] : 3) - (b.status ? STATUS_ORDER[b.status] : 3) || b.voxels - a.voxels,
  volume: (a, b) => a.voxels - b.voxels,
  // inferior to superior, then posterior to anterior, then right to left (world RAS+ mm)
  position: (a, b) => a.centroidMm[2] - b.centroidMm[2] || a.centroidMm[1] - b.centroidMm[1] || a.centroidMm[0] - b.centroidMm[0],
};

/**
 * Whether a key press belongs to a text field (or a select): the viewer's shortcuts leave those
 * alone. A checkbox or radio just clicked (Crosshair, Colour by status) keeps the focus but takes
 * no letters, so N / P still work after it.
 */
export function typing(e: KeyboardEvent): boolean {
  const t = e.target as HTMLElement | null;
  return !!t && (!!t.closest?.('input:not([type=checkbox]):not([type=radio]), textarea, select') || t.isContentEditable);
}

/**
 * The lesion table's state: its sort (a header click sorts by it, a second reverses), the selected
 * lesion (a row click or N / P moves the crosshair to its seed voxel in every view).
 */
export function useLesionTable(list: LesionList | null, nav: Navigator | null) {
  const [sort, setSort] = useState<{ key: LesionSort; dir: 1 | -1 }>({ key: 'id', dir: 1 });
  const [selected, setSelected] = useState<number | null>(null);
  const rows = useMemo(() => {
    const items = [...(list?.items ?? [])];
    return items.sort((a, b) => sort.dir * byKey[sort.key](a, b) || a.id - b.id);
  }, [list, sort]);

  const select = (l: Lesion) => {
    setSelected(l.id);
    nav?.goToVoxel(l.seedVoxel);
  };
  const step = (by: 1 | -1) => {
    if (rows.length === 0) return;
    const at = rows.findIndex((l) => l.id === selected);
    const next = at < 0 ? (by === 1 ? 0 : rows.length - 1) : (at + by + rows.length) % rows.length;
    select(rows[next]!);
  };
  const stepping = useRef(step);
  stepping.current = step;

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
      const k = e.key.toLowerCase();
      if (k === 'n' || k === 'p') {
        e.preventDefault();
        stepping.current(k === 'n' ? 1 : -1);
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);

  return {
    rows,
    sort,
    sortBy: (key: LesionSort) => setSort((s) => ({ key, dir: s.key === key ? (-s.dir as 1 | -1) : key === 'volume' ? -1 : 1 })),
    /** The selected row, while it is still listed. */
    selected: rows.some((l) => l.id === selected) ? selected : null,
    select,
    next: () => step(1),
    previous: () => step(-1),
  };
}

export type LesionTableState = ReturnType<typeof useLesionTable>;
