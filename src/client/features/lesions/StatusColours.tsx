import { STATUS_COLOURS } from './components.js';

const rgb = (c: [number, number, number]) => `rgb(${c.join(', ')})`;

/** The "Colour by status" switch and its legend (the same colours the status layer is drawn in). */
export function StatusColours(props: { on: boolean; onChange: (on: boolean) => void; unavailable: string | null }) {
  return (
    <div className="status-colours" data-testid="status-colours">
      <label className="inline">
        <input
          type="checkbox"
          checked={props.on && !props.unavailable}
          disabled={!!props.unavailable}
          onChange={(e) => props.onChange(e.target.checked)}
        />
        Colour by status
      </label>
      {props.unavailable ? (
        <p className="hint">{props.unavailable}</p>
      ) : (
        props.on && (
          <ul className="legend" data-testid="status-legend">
            <li>
              <span className="swatch" style={{ background: rgb(STATUS_COLOURS.TP) }} /> TP: overlaps a true lesion
            </li>
            <li>
              <span className="swatch" style={{ background: rgb(STATUS_COLOURS.FP) }} /> FP: overlaps none
            </li>
            <li>
              <span className="swatch" style={{ background: rgb(STATUS_COLOURS.FN) }} /> FN: true lesion missed (from the ground truth)
            </li>
          </ul>
        )
      )}
    </div>
  );
}
