import type { EditTool } from './EditPanel.js';
import type { WorkingMask } from './useWorkingMask.js';

/**
 * While editing, beside the lesion table: the click-to-add tool (a click on a slice asks the
 * interactive model to grow a lesion there, shift-click removes the piece under the pointer), what
 * the undo stack holds, and the last refine or reject problem.
 */
export function RefineBar(props: { work: WorkingMask; tool: EditTool; onTool: (t: EditTool) => void }) {
  const { work, tool } = props;
  const n = work.counts;
  const clicking = tool === 'click';
  return (
    <div className="panel refine-bar" data-testid="refine-bar">
      <div className="row tools">
        <button
          className={clicking ? '' : 'secondary'}
          onClick={() => props.onTool(clicking ? 'pen' : 'click')}
          aria-pressed={clicking}
          title="Click a lesion to add it; shift-click removes (C)"
        >
          Click to add
        </button>
        <span className="hint" data-testid="edit-counts">
          {n.pen} strokes · {n.reject} rejected · {n.refine} refined
        </span>
        {work.refining && (
          <span className="hint" role="status">
            Refining…
          </span>
        )}
      </div>
      <p className="hint">
        {clicking
          ? 'Click inside a lesion on a slice: the interactive model grows it into the mask. Shift-click removes the piece under the pointer.'
          : 'Reject a lesion with its ✕ (or Delete with the crosshair in it); Click to add grows one from a click.'}
      </p>
      {work.error && (
        <p className="error" role="alert" data-testid="edit-error">
          {work.error}
        </p>
      )}
    </div>
  );
}
