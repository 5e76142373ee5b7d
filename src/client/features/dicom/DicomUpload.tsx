import { type DragEvent, useState } from 'react';
import type { DicomUploadResult, SeriesChoice } from '../../../shared/dicom.js';
import { MiB } from '../../../shared/units.js';
import { useApiUrl } from '../../api-url.js';
import { navigate } from '../../router.js';
import { Dropzone } from '../../components/Dropzone.js';

/** A file of the study with the name it is sent under (its path inside a dropped or picked folder). */
interface Picked {
  file: File;
  name: string;
}

/** A dropped folder's files, recursively (the drag-and-drop entries API; files dropped as they are). */
async function filesFromDrop(e: DragEvent): Promise<Picked[]> {
  const out: Picked[] = [];
  const walk = async (entry: FileSystemEntry, prefix: string): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
      out.push({ file, name: `${prefix}${file.name}` });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      // readEntries answers in batches until it answers none.
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
        if (batch.length === 0) break;
        for (const child of batch) if (!child.name.startsWith('.')) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  const entries = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry?.()).filter((x): x is FileSystemEntry => !!x);
  if (entries.length === 0) return [...e.dataTransfer.files].map((file) => ({ file, name: file.name }));
  for (const entry of entries) await walk(entry, '');
  return out;
}

type Answer = { ok: true; data: DicomUploadResult } | { ok: false; message: string };

/**
 * Import a DICOM study: drop a folder or a zip (or pick one), see which series would become the
 * DWI, the ADC and the FLAIR and why, change it if needed, then create the case. The files go up
 * twice (the check stores nothing); that keeps the server stateless between the two steps.
 */
export function DicomUpload(props: { onClose: () => void; onNifti: () => void }) {
  const apiUrl = useApiUrl();
  const [files, setFiles] = useState<Picked[]>([]);
  const [progress, setProgress] = useState<{ pct: number; what: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [report, setReport] = useState<DicomUploadResult['import'] | null>(null);
  const [choice, setChoice] = useState<Required<SeriesChoice>>({ dwi: '', adc: '', flair: '' });
  const [name, setName] = useState('');

  const pick = (list: Picked[]) => {
    setFiles(list);
    setReport(null);
    setError(null);
  };

  const send = (opts: { dryRun: boolean }) =>
    new Promise<Answer>((resolve) => {
      const fd = new FormData();
      if (opts.dryRun) fd.set('dryRun', 'true');
      else {
        if (name.trim()) fd.set('name', name.trim());
        fd.set('series', JSON.stringify(Object.fromEntries(Object.entries(choice).filter(([, v]) => v))));
      }
      for (const p of files) fd.append('files', p.file, p.name);
      const xhr = new XMLHttpRequest();
      xhr.open('POST', `${apiUrl}/trpc/cases.uploadDicom`);
      xhr.withCredentials = new URL(apiUrl).origin !== location.origin;
      const what = opts.dryRun ? 'Checking the series' : 'Creating the case';
      xhr.upload.onprogress = (e) => e.lengthComputable && setProgress({ pct: Math.round((100 * e.loaded) / e.total), what });
      xhr.upload.onload = () => setProgress({ pct: 100, what: `${what} (converting on the server)` });
      xhr.onload = () => {
        setProgress(null);
        let body: { result?: { data?: DicomUploadResult }; error?: { message?: string } } = {};
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          // a proxy's page
        }
        if (xhr.status === 200 && body.result?.data) resolve({ ok: true, data: body.result.data });
        else resolve({ ok: false, message: body.error?.message ?? `The upload failed (HTTP ${xhr.status})` });
      };
      xhr.onerror = () => {
        setProgress(null);
        resolve({ ok: false, message: 'The upload could not reach the server' });
      };
      setError(null);
      setProgress({ pct: 0, what });
      xhr.send(fd);
    });

  const check = async () => {
    const answer = await send({ dryRun: true });
    if (!answer.ok) return setError(answer.message);
    const r = answer.data.import;
    setReport(r);
    const ref = (s: { seriesNumber: number | null; seriesInstanceUid: string }) =>
      s.seriesNumber !== null ? String(s.seriesNumber) : s.seriesInstanceUid;
    setChoice({
      dwi: ref(r.roles.dwi),
      adc: r.roles.adc.how === 'computed' ? 'computed' : ref(r.roles.adc),
      flair: r.roles.flair ? ref(r.roles.flair) : 'none',
    });
    setName(r.series.find((s) => s.role === 'dwi')?.description || 'DICOM study');
  };

  const create = async () => {
    const answer = await send({ dryRun: false });
    if (!answer.ok) return setError(answer.message);
    navigate(`/cases/${answer.data.case!.id}`);
  };

  const bytes = files.reduce((n, p) => n + p.file.size, 0);
  const options = (kinds: string[]) =>
    (report?.series ?? [])
      .filter((s) => kinds.includes(s.kind))
      .map((s) => (
        <option key={s.seriesInstanceUid} value={s.seriesNumber !== null ? String(s.seriesNumber) : s.seriesInstanceUid}>
          {s.seriesNumber ?? '?'} {s.description} ({s.kind})
        </option>
      ));
  return (
    <div className="panel" data-testid="dicom-upload">
      <h2>Import a DICOM study</h2>
      <Dropzone onDrop={(e) => void filesFromDrop(e).then(pick)}>
        Drop a study folder or a .zip here, or pick a{' '}
        <label className="inline" style={{ display: 'inline-flex' }}>
          folder{' '}
          <input
            type="file"
            multiple
            aria-label="Choose a DICOM folder"
            ref={(el) => el?.setAttribute('webkitdirectory', '')}
            onChange={(e) => pick([...(e.target.files ?? [])].map((file) => ({ file, name: file.webkitRelativePath || file.name })))}
          />
        </label>{' '}
        or a{' '}
        <label className="inline" style={{ display: 'inline-flex' }}>
          zip{' '}
          <input
            type="file"
            accept=".zip,application/zip"
            aria-label="Choose a DICOM zip"
            onChange={(e) => pick([...(e.target.files ?? [])].map((file) => ({ file, name: file.name })))}
          />
        </label>
      </Dropzone>
      {files.length > 0 && (
        <p className="hint" data-testid="dicom-picked">
          {files.length} file{files.length > 1 ? 's' : ''}, {(bytes / MiB).toFixed(1)} MiB. Patient data is {''}
          handled as the server is configured (by default nothing identifying is stored).
        </p>
      )}
      {report && (
        <>
          <table className="list files" data-testid="dicom-series">
            <thead>
              <tr>
                <th>Series</th>
                <th>Description</th>
                <th>What it is</th>
                <th>Role</th>
                <th>Why</th>
              </tr>
            </thead>
            <tbody>
              {report.series.map((s) => (
                <tr key={s.seriesInstanceUid}>
                  <td>{s.seriesNumber ?? '?'}</td>
                  <td>{s.description}</td>
                  <td>
                    {s.kind}
                    {s.dims ? ` ${s.dims.join('×')}${s.volumes > 1 ? `×${s.volumes}` : ''}` : ''}
                  </td>
                  <td>{s.role ?? '—'}</td>
                  <td>{s.reason}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <div className="row">
            <label>
              DWI
              <select aria-label="DWI series" value={choice.dwi} onChange={(e) => setChoice({ ...choice, dwi: e.target.value })}>
                {options(['diffusion', 'trace'])}
              </select>
            </label>
            <label>
              ADC
              <select aria-label="ADC series" value={choice.adc} onChange={(e) => setChoice({ ...choice, adc: e.target.value })}>
                <option value="computed">computed from the diffusion series</option>
                {options(['adc'])}
              </select>
            </label>
            <label>
              FLAIR
              <select aria-label="FLAIR series" value={choice.flair} onChange={(e) => setChoice({ ...choice, flair: e.target.value })}>
                <option value="none">none</option>
                {options(['flair', 'other'])}
              </select>
            </label>
          </div>
          <p className="hint">
            DWI: {report.roles.dwi.reason}. ADC: {report.roles.adc.reason}.
          </p>
          {report.warnings.length > 0 && (
            <ul className="hint" data-testid="dicom-warnings">
              {report.warnings.map((w) => (
                <li key={w}>{w}</li>
              ))}
            </ul>
          )}
          {report.skipped.length > 0 && (
            <p className="hint">
              Skipped {report.skipped.length}:{' '}
              {report.skipped
                .slice(0, 5)
                .map((s) => `${s.file} (${s.reason})`)
                .join(', ')}
              {report.skipped.length > 5 ? ', …' : ''}
            </p>
          )}
          <label>
            Case name
            <input value={name} onChange={(e) => setName(e.target.value)} aria-label="Case name" />
          </label>
        </>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {progress && (
        <p>
          <progress max={100} value={progress.pct} /> {progress.what}… {progress.pct}%
        </p>
      )}
      <div className="row">
        {report ? (
          <button onClick={() => void create()} disabled={progress !== null || !choice.dwi}>
            Create the case
          </button>
        ) : (
          <button onClick={() => void check()} disabled={files.length === 0 || progress !== null}>
            Check the series
          </button>
        )}
        <button className="secondary" onClick={props.onNifti}>
          Upload NIfTI files instead
        </button>
        <button className="secondary" onClick={props.onClose}>
          Cancel
        </button>
      </div>
    </div>
  );
}
