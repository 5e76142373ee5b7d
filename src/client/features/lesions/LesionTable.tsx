import type { ReactNode } from 'react';
import type { Lesion, LesionList } from '../../../shared/lesions.js';
import { ADC_UNIT_LABELS } from '../../../shared/nifti.js';
import type { LesionSort, LesionTableState } from './useLesionTable.js';

const SIDE = { left: 'L', right: 'R', midline: 'mid' } as const;

function adc(x: number | null, unit: LesionList['adcUnit']) {
  if (x === null) return '—';
  return unit === '1e-3' ? x.toFixed(3) : x.toFixed(0);
}
const ml = (x: number) => (x < 0.1 ? x.toFixed(3) : x.toFixed(2));

/**
 * One row per lesion of the mask shown (the job's result, a saved version, or the working mask):
 * status against the ground truth, size, side, centroid and the DWI/ADC inside it. A row click moves
 * the crosshair to the lesion; while editing, ✕ rejects a lesion and + adds a missed one.
 */
export function LesionTable(props: {
  list: LesionList | null;
  /** What the list is of, for the heading: "job result (adc-dwi-v2)", "version 2", "working mask". */
  of: string;
  table: LesionTableState;
  /** The list may be out of date (pen strokes since it was made). */
  stale?: boolean;
  onReject?: (l: Lesion) => void;
  onAdd?: (l: Lesion) => void;
  busy?: boolean;
  /** The "colour by status" switch and its legend, under the heading. */
  colours?: ReactNode;
}) {
  const { list, table } = props;
  if (!list) {
    return (
      <div className="panel lesions" data-testid="lesion-table">
        <h2>Lesions</h2>
        <p className="hint">
          No lesion list for the {props.of}
          {props.of === 'working mask' ? ' yet: refine with a click to get one' : ''}.
        </p>
        {props.colours}
      </div>
    );
  }
  const unit = list.adcUnit ? ADC_UNIT_LABELS[list.adcUnit] : null;
  const header = (key: LesionSort | null, label: string, title?: string) => {
    const sorted = key !== null && table.sort.key === key;
    return (
      <th
        title={title}
        aria-sort={sorted ? (table.sort.dir === 1 ? 'ascending' : 'descending') : undefined}
        className={key ? 'sortable' : undefined}
        onClick={key ? () => table.sortBy(key) : undefined}
      >
        {label}
        {sorted ? (table.sort.dir === 1 ? ' ▲' : ' ▼') : ''}
      </th>
    );
  };
  const editing = !!(props.onReject || props.onAdd);
  const c = list.counts;
  return (
    <div className="panel lesions" data-testid="lesion-table">
      <div className="row">
        <h2>
          Lesions of the {props.of}{' '}
          <span className="hint" data-testid="lesion-counts">
            ({list.items.length}
            {list.items.some((l) => l.status) ? `: ${c.tp} TP · ${c.fp} FP · ${c.fn} FN` : ''})
          </span>
        </h2>
        <span className="hint">
          <button className="link" onClick={table.previous} title="Previous lesion (P)">
            ◀ P
          </button>
          <button className="link" onClick={table.next} title="Next lesion (N)">
            N ▶
          </button>
        </span>
      </div>
      {props.colours}
      {props.stale && (
        <p className="hint">Pen strokes since this list was made: it may be out of date until the next refinement or save.</p>
      )}
      {list.items.length === 0 ? (
        <p className="hint">No lesions.</p>
      ) : (
        <div className="table-scroll">
          <table className="list lesion-list">
            <thead>
              <tr>
                {header('id', '#')}
                {header('status', 'Status', 'TP: overlaps a true lesion; FP: overlaps none; FN: a true lesion the mask misses')}
                {header('volume', 'mL')}
                {header('volume', 'Voxels')}
                {header(null, 'Side', "The patient's side of the head's midline")}
                {header('position', 'Centroid (voxel)', 'Sorts inferior to superior')}
                {header(null, 'Mean DWI')}
                {header(null, `Mean / min ADC${unit ? ` (${unit})` : ''}`)}
                {editing && <th />}
              </tr>
            </thead>
            <tbody>
              {table.rows.map((l) => (
                <tr
                  key={l.id}
                  data-testid={`lesion-row-${l.id}`}
                  data-status={l.status ?? ''}
                  aria-selected={table.selected === l.id}
                  className={table.selected === l.id ? 'selected' : undefined}
                  onClick={() => table.select(l)}
                >
                  <td>{l.id}</td>
                  <td>{l.status ? <span className={`chip ${l.status.toLowerCase()}`}>{l.status}</span> : '—'}</td>
                  <td>{ml(l.volumeMl)}</td>
                  <td>{l.voxels}</td>
                  <td title={l.hemisphere}>{SIDE[l.hemisphere]}</td>
                  <td title={`${l.centroidMm.map((x) => x.toFixed(1)).join(', ')} mm`}>
                    {l.centroidVoxel.map((x) => Math.round(x)).join(', ')}
                  </td>
                  <td>{l.meanDwi.toFixed(0)}</td>
                  <td>
                    {adc(l.meanAdc, list.adcUnit)} / {adc(l.minAdc, list.adcUnit)}
                  </td>
                  {editing && (
                    <td>
                      {l.status === 'FN'
                        ? props.onAdd && (
                            <button
                              className="link"
                              aria-label={`Add lesion ${l.id}`}
                              title="Add: refine with a click at this lesion's seed voxel"
                              disabled={props.busy}
                              onClick={(e) => {
                                e.stopPropagation();
                                props.onAdd!(l);
                              }}
                            >
                              +
                            </button>
                          )
                        : props.onReject && (
                            <button
                              className="link"
                              aria-label={`Reject lesion ${l.id}`}
                              title="Reject: remove this lesion from the working mask"
                              onClick={(e) => {
                                e.stopPropagation();
                                props.onReject!(l);
                              }}
                            >
                              ✕
                            </button>
                          )}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
