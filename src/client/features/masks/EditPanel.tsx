import { useEffect, useState } from 'react';
import type { JobView } from '../../../shared/jobs.js';
import type { MaskVersionView } from '../../../shared/masks.js';
import { trpc } from '../../trpc.js';
import type { DrawingControls } from '../viewer/NiivueCanvas.js';

export const SHORTCUTS: [string, string][] = [
  ['D', 'draw (pen)'],
  ['E', 'eraser'],
  ['F', 'filled pen on / off'],
  ['[ / ]', 'smaller / larger pen'],
  ['Ctrl+Z', 'undo'],
];

/**
 * Edit mode: correct a mask with NiiVue's drawing tools on the DWI grid, starting from the
 * prediction, an empty mask or a saved version, and save it with a note as a new version.
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
}) {
  const { controls } = props;
  const utils = trpc.useUtils();
  const [from, setFrom] = useState<string>('prediction');
  const [size, setSize] = useState(3);
  const [filled, setFilled] = useState(false);
  const [erase, setErase] = useState(false);
  const [note, setNote] = useState('');
  const save = trpc.masks.save.useMutation({
    onSuccess: async (v) => {
      controls?.stop();
      props.onEditing(false);
      await utils.masks.list.invalidate({ caseId: props.caseId });
      props.onSaved(v);
    },
  });

  useEffect(() => {
    if (props.editing) controls?.pen({ size, filled, erase });
  }, [controls, props.editing, size, filled, erase]);

  useEffect(() => {
    if (!props.editing) return;
    const onKey = (e: KeyboardEvent) => {
      if ((e.target as HTMLElement).closest('input, textarea, select')) return;
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'z') {
        e.preventDefault();
        controls?.undo();
      } else if (e.key === 'd') setErase(false);
      else if (e.key === 'e') setErase(true);
      else if (e.key === 'f') setFilled((f) => !f);
      else if (e.key === '[') setSize((s) => Math.max(1, s - 1));
      else if (e.key === ']') setSize((s) => Math.min(20, s + 1));
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [props.editing, controls]);

  const start = async () => {
    if (!controls) return;
    const url =
      from === 'empty'
        ? null
        : from === 'prediction'
          ? (props.prediction?.result?.mask.url ?? null)
          : (props.versions.find((v) => v.id === from)?.volume.url ?? null);
    await controls.start(url);
    props.onEditing(true);
  };

  const submit = async () => {
    if (!controls) return;
    const file = await controls.save();
    const fd = new FormData();
    fd.set('caseId', props.caseId);
    fd.set('note', note);
    if (from === 'prediction' && props.prediction) fd.set('jobId', props.prediction.id);
    fd.set('file', new File([new Uint8Array(file)], 'corrected.nii.gz'));
    save.mutate(fd);
  };

  if (!props.editing) {
    return (
      <div className="panel" data-testid="edit-panel">
        <h2>Correct the mask</h2>
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
  return (
    <div className="panel" data-testid="edit-panel">
      <h2>Editing {props.dirty ? '(unsaved changes)' : ''}</h2>
      <div className="row">
        <button className={erase ? 'secondary' : ''} onClick={() => setErase(false)} aria-pressed={!erase}>
          Pen
        </button>
        <button className={erase ? '' : 'secondary'} onClick={() => setErase(true)} aria-pressed={erase}>
          Eraser
        </button>
        <button className="secondary" onClick={() => controls?.undo()}>
          Undo
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
        <button onClick={() => void submit()} disabled={save.isPending}>
          Save corrected mask
        </button>
        <button
          className="secondary"
          onClick={() => {
            if (props.dirty && !confirm('Discard your unsaved edits?')) return;
            controls?.stop();
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
