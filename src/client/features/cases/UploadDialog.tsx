import { useState } from 'react';
import { VOLUME_ROLES, type VolumeRole } from '../../../shared/cases.js';
import { navigate } from '../../router.js';
import { MiB } from '../../../shared/units.js';
import { useApiUrl } from '../../api-url.js';
import { DicomUpload } from '../dicom/DicomUpload.js';
import { Dropzone } from '../../components/Dropzone.js';

/** The role a file's name suggests (editable in the dialog). */
export function guessRole(name: string): VolumeRole | '' {
  const n = name.toLowerCase();
  if (/(^|[_-])(msk|mask|seg|lesion|label|gt)([_.-]|$)/.test(n)) return 'mask';
  if (/adc/.test(n)) return 'adc';
  if (/flair/.test(n)) return 'flair';
  if (/dwi|trace|b1000/.test(n)) return 'dwi';
  return '';
}

interface Picked {
  file: File;
  role: VolumeRole | '';
}

const LABEL: Record<VolumeRole, string> = { dwi: 'DWI', adc: 'ADC', flair: 'FLAIR', mask: 'Ground truth' };
const ROLES = new Set<string>(['dwi', 'adc', 'flair', 'mask']);

/** The file the server's error is about: it names it in `data.fieldErrors` (the one error model). */
function roleOfError(fieldErrors: Record<string, string[]> | undefined): VolumeRole | null {
  return (Object.keys(fieldErrors ?? {}).find((f) => ROLES.has(f)) as VolumeRole | undefined) ?? null;
}

/**
 * Upload a case: drop DWI, ADC, optional FLAIR and ground truth (.nii/.nii.gz); roles guessed from
 * the names and editable; a name; progress while it uploads; the server's message beside the file
 * it names; the new case opens when it is stored.
 */
export function UploadDialog(props: { onClose: () => void }) {
  const apiUrl = useApiUrl();
  const [files, setFiles] = useState<Picked[]>([]);
  const [name, setName] = useState('');
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<{ message: string; role: VolumeRole | null } | null>(null);
  const [dicom, setDicom] = useState(false);

  const add = (list: FileList | null) => {
    if (!list) return;
    const picked = [...list].filter((f) => /\.nii(\.gz)?$/i.test(f.name)).map((file) => ({ file, role: guessRole(file.name) }));
    setFiles((prev) => [...prev, ...picked]);
    if (!name && picked[0]) setName(picked[0].file.name.replace(/(_|-)?(dwi|adc|flair|msk|mask|seg)?\.nii(\.gz)?$/i, '') || 'My case');
    setError(null);
  };

  const upload = () => {
    const fd = new FormData();
    fd.set('name', name);
    for (const p of files) if (p.role) fd.set(p.role, p.file);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${apiUrl}/trpc/cases.upload`);
    xhr.withCredentials = new URL(apiUrl).origin !== location.origin;
    xhr.upload.onprogress = (e) => e.lengthComputable && setProgress(Math.round((100 * e.loaded) / e.total));
    xhr.onload = () => {
      setProgress(null);
      let body: { result?: { data?: { id?: string } }; error?: { message?: string; data?: { fieldErrors?: Record<string, string[]> } } } =
        {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // a proxy's page
      }
      const id = body.result?.data?.id;
      if (xhr.status === 200 && id) {
        navigate(`/cases/${id}`);
        return;
      }
      const message = body.error?.message ?? `The upload failed (HTTP ${xhr.status})`;
      setError({ message, role: roleOfError(body.error?.data?.fieldErrors) });
    };
    xhr.onerror = () => {
      setProgress(null);
      setError({ message: 'The upload could not reach the server', role: null });
    };
    setError(null);
    setProgress(0);
    xhr.send(fd);
  };

  if (dicom) return <DicomUpload onClose={props.onClose} onNifti={() => setDicom(false)} />;
  const roles = files.map((f) => f.role);
  const missing = (['dwi', 'adc'] as const).filter((r) => !roles.includes(r));
  const duplicate = VOLUME_ROLES.find((r) => roles.filter((x) => x === r).length > 1);
  return (
    <div className="panel" data-testid="upload-dialog">
      <h2>Upload a case</h2>
      <Dropzone onDrop={(e) => add(e.dataTransfer.files)}>
        Drop DWI, ADC, FLAIR and ground-truth files here (.nii or .nii.gz), or{' '}
        <label className="inline" style={{ display: 'inline-flex' }}>
          <input type="file" multiple accept=".nii,.gz" aria-label="Choose files" onChange={(e) => add(e.target.files)} />
        </label>
      </Dropzone>
      {files.length > 0 && (
        <table className="list files">
          <tbody>
            {files.map((p, i) => (
              <tr key={`${p.file.name}-${i}`} data-testid="upload-file">
                <td>{p.file.name}</td>
                <td>{(p.file.size / MiB).toFixed(1)} MiB</td>
                <td>
                  <select
                    value={p.role}
                    aria-label={`Role of ${p.file.name}`}
                    onChange={(e) => setFiles(files.map((f, j) => (j === i ? { ...f, role: e.target.value as VolumeRole | '' } : f)))}
                  >
                    <option value="">(not uploaded)</option>
                    {VOLUME_ROLES.map((r) => (
                      <option key={r} value={r}>
                        {LABEL[r]}
                      </option>
                    ))}
                  </select>
                  {error && p.role && error.role === p.role && (
                    <div className="error" role="alert">
                      {p.file.name}: {error.message}
                    </div>
                  )}
                </td>
                <td>
                  <button className="link" onClick={() => setFiles(files.filter((_, j) => j !== i))}>
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <label>
        Case name
        <input value={name} onChange={(e) => setName(e.target.value)} aria-label="Case name" />
      </label>
      {error && !error.role && (
        <p className="error" role="alert">
          {error.message}
        </p>
      )}
      {files.length > 0 && missing.length > 0 && <p className="hint">Still needed: {missing.map((r) => LABEL[r]).join(' and ')}.</p>}
      {duplicate && <p className="error">Two files are marked {LABEL[duplicate]}.</p>}
      {progress !== null && (
        <p>
          <progress max={100} value={progress} /> Uploading… {progress}%
        </p>
      )}
      <div className="row">
        <button onClick={upload} disabled={missing.length > 0 || !!duplicate || !name.trim() || progress !== null}>
          Upload
        </button>
        <button className="secondary" onClick={() => setDicom(true)}>
          Import a DICOM study instead
        </button>
        <button className="secondary" onClick={props.onClose}>
          Cancel
        </button>
      </div>
    </div>
  );
}
