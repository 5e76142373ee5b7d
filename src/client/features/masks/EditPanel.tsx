import { useEffect, useRef, useState } from 'react';
import type { JobView } from '../../../shared/jobs.js';
import type { LesionList } from '../../../shared/lesions.js';
import type { MaskVersionView } from '../../../shared/masks.js';
import { trpc } from '../../trpc.js';
import { typing } from '../lesions/useLesionTable.js';
import type { DrawingControls } from '../viewer/NiivueCanvas.js';
import type { WorkingMask } from './useWorkingMask.js';

export const SHORTCUTS: [string, string][] = [
  ['D', 'draw (pen)'],
  ['E', 'eraser'],
  ['C', 'click to add (shift-click removes)'],
  ['F', 'filled pen on / off'],
  ['[ / ]', 'smaller / larger pen'],
  ['Delete', 'reject the lesion under the crosshair'],
  ['N / P', 'next / previous lesion'],
  ['Ctrl+Z', 'undo'],
  ['Ctrl+Shift+Z', 'redo'],
];

export type EditTool = 'pen' | 'eraser' | 'click';

/**
 * Edit mode: correct a mask on the DWI grid — NiiVue's pen and eraser, rejecting whole lesions,
 * and clicks a model refines around — starting from the prediction, an empty mask or a saved
 * version, with one undo stack for all of them; saved with a note as a new version.
 */
export function EditPanel(props: {
  caseId: string;
  controls: DrawingControls | null;
  prediction: JobView | null;
  versions: MaskVersionView[];
  editing: boolean;
  dirty: boolean;
  onEditing: (on: boolean) => void;
  onSaved: (v: MaskVersionView) => void;
  work: WorkingMask;
  tool: EditTool;
  onTool: (t: EditTool) => void;
  /** The crosshair's voxel on the DWI grid: Delete rejects the lesion there. */
  crosshair: readonly number[] | null;
}) {
  const { controls, work, tool } = props;
  const utils = trpc.useUtils();
  const [from, setFrom] = useState<string>('prediction');
  const [size, setSize] = useState(3);
  const [filled, setFilled] = useState(false);
  const [note, setNote] = useState('');
  const [saved, setSaved] = useState<MaskVersionView | null>(null);
  const save = trpc.masks.save.useMutation({
    onSuccess: async (v) => {
      controls?.stop();
      work.end();
      props.onEditing(false);
      setSaved(v);
      setNote('');
      await utils.masks.list.invalidate({ caseId: props.caseId });
      props.onSaved(v);
    },
  });

  useEffect(() => {
    if (!props.editing) return;
    controls?.pen({ size, filled, erase: tool === 'eraser' });
    controls?.tool(tool === 'click' ? 'click' : 'pen');
  }, [controls, props.editing, size, filled, tool]);

  const latest = useRef({ work, crosshair: props.crosshair, onTool: props.onTool });
  latest.current = { work, crosshair: props.crosshair, onTool: props.onTool };
  useEffect(() => {
    if (!props.editing) return;
    const onKey = (e: KeyboardEvent) => {
      if (typing(e)) return;
      const { work, crosshair, onTool } = latest.current;
      const k = e.key.toLowerCase();
      if ((e.ctrlKey || e.metaKey) && (k === 'z' || k === 'y')) {
        e.preventDefault();
        if (k === 'y' || e.shiftKey) work.redo();
        else work.undo();
      } else if (e.ctrlKey || e.metaKey || e.altKey) return;
      else if (e.key === 'Delete' || e.key === 'Backspace') {
        e.preventDefault();
        if (crosshair) work.rejectAt(crosshair);
      } else if (k === 'd') onTool('pen');
      else if (k === 'e') onTool('eraser');
      else if (k === 'c') onTool('click');
      else if (k === 'f') setFilled((f) => !f);
      else if (k === '[') setSize((s) => Math.max(1, s - 1));
      else if (k === ']') setSize((s) => Math.min(20, s + 1));
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [props.editing]);

  const source = (): { url: string | null; lesions: LesionList | null } => {
    if (from === 'empty') return { url: null, lesions: null };
    if (from === 'prediction')
      return { url: props.prediction?.result?.mask.url ?? null, lesions: props.prediction?.result?.lesions ?? null };
    const v = props.versions.find((x) => x.id === from);
    return { url: v?.volume.url ?? null, lesions: v?.lesions ?? null };
  };

  const start = async () => {
    if (!controls) return;
    const { url, lesions } = source();
    await controls.start(url);
    work.begin(lesions);
    setSaved(null);
    props.onTool('pen');
    props.onEditing(true);
  };

  const submit = async () => {
    if (!controls) return;
    const file = await controls.save();
    const fd = new FormData();
    fd.set('caseId', props.caseId);
    fd.set('note', note);
    if (from === 'prediction' && props.prediction) fd.set('jobId', props.prediction.id);
    fd.set('rejectedLesions', String(work.counts.reject));
    fd.set('penStrokes', String(work.counts.pen));
    fd.set('file', new File([new Uint8Array(file)], 'corrected.nii.gz'));
    save.mutate(fd);
  };

  if (!props.editing) {
    return (
      <div className="panel" data-testid="edit-panel">
        <h2>Correct the mask</h2>
        {saved && (
          <p className="notice" data-testid="provenance">
            Saved as version {saved.version}
            {saved.provenance ? `: ${saved.provenance.summary}` : '.'}
          </p>
        )}
        <label>
          Start from
          <select value={from} onChange={(e) => setFrom(e.target.value)} aria-label="Start from">
            {props.prediction?.result && <option value="prediction">the prediction ({props.prediction.modelIds.join(', ')})</option>}
            <option value="empty">an empty mask</option>
            {props.versions.map((v) => (
              <option key={v.id} value={v.id}>
                version {v.version}
              </option>
            ))}
          </select>
        </label>
        <button onClick={() => void start()} disabled={!controls}>
          Edit
        </button>
      </div>
    );
  }
  // The same controls, in the same places, as before review and refine came: the click tool, the
  // counts and the refine status are in the refine bar beside the lesion table (RefineBar.tsx).
  return (
    <div className="panel" data-testid="edit-panel">
      <h2>Editing {props.dirty ? '(unsaved changes)' : ''}</h2>
      <div className="row tools">
        <button
          className={tool === 'pen' ? '' : 'secondary'}
          onClick={() => props.onTool('pen')}
          aria-pressed={tool === 'pen'}
          title="Draw (D)"
        >
          Pen
        </button>
        <button
          className={tool === 'eraser' ? '' : 'secondary'}
          onClick={() => props.onTool('eraser')}
          aria-pressed={tool === 'eraser'}
          title="Erase (E)"
        >
          Eraser
        </button>
        <button className="secondary" onClick={work.undo} disabled={!work.canUndo} title="Undo (Ctrl+Z): strokes, rejects and refinements">
          Undo
        </button>
        <button className="secondary" onClick={work.redo} disabled={!work.canRedo} title="Redo (Ctrl+Shift+Z)">
          Redo
        </button>
      </div>
      <label>
        Pen size {size}
        <input type="range" min={1} max={20} value={size} onChange={(e) => setSize(Number(e.target.value))} aria-label="Pen size" />
      </label>
      <label className="inline">
        <input type="checkbox" checked={filled} onChange={(e) => setFilled(e.target.checked)} /> Filled pen (fills the outline you draw)
      </label>
      <label>
        Note
        <input value={note} onChange={(e) => setNote(e.target.value)} aria-label="Note" maxLength={500} />
      </label>
      <div className="row">
        <button onClick={() => void submit()} disabled={save.isPending || work.refining}>
          Save corrected mask
        </button>
        <button
          className="secondary"
          onClick={() => {
            if (props.dirty && !confirm('Discard your unsaved edits?')) return;
            controls?.stop();
            work.end();
            props.onEditing(false);
          }}
        >
          Stop editing
        </button>
      </div>
      {save.error && <p className="error">{save.error.message}</p>}
      <details className="hint">
        <summary>Keyboard shortcuts</summary>
        <ul>
          {SHORTCUTS.map(([k, what]) => (
            <li key={k}>
              <kbd>{k}</kbd> {what}
            </li>
          ))}
        </ul>
      </details>
    </div>
  );
}

/** The saved versions (author, time, mL, Dice vs prediction), each shown as an overlay or downloaded. */
export function VersionsPanel(props: { versions: MaskVersionView[]; shown: string | null; onShow: (id: string | null) => void }) {
  if (props.versions.length === 0) return null;
  return (
    <div className="panel" data-testid="versions">
      <h2>Corrected masks</h2>
      <table className="list">
        <tbody>
          {props.versions.map((v) => (
            <tr key={v.id} data-testid="version-row">
              <td>v{v.version}</td>
              <td title={v.note}>
                {v.author.email}
                <br />
                <span className="hint">{new Date(v.createdAt).toLocaleString()}</span>
                {v.provenance && (
                  <>
                    <br />
                    <span className="hint">{v.provenance.summary}</span>
                  </>
                )}
              </td>
              <td>{v.volumeMl.toFixed(2)} mL</td>
              <td title="Dice vs prediction">{v.diceVsPrediction === null ? '—' : v.diceVsPrediction.toFixed(3)}</td>
              <td>
                <button
                  className="link"
                  onClick={() => props.onShow(props.shown === v.id ? null : v.id)}
                  aria-pressed={props.shown === v.id}
                >
                  {props.shown === v.id ? 'Hide' : 'Show'}
                </button>
                <a href={v.volume.downloadUrl} download>
                  Download
                </a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
