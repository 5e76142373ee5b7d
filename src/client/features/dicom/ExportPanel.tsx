import { useState } from 'react';
import type { PacsPush } from '../../../shared/pacs.js';
import { useApiUrl } from '../../api-url.js';
import { trpc } from '../../trpc.js';

/** What is exported: the shown job's mask or a saved corrected version. */
export type ExportSource = { jobId: string; label: string } | { maskVersionId: string; label: string };

const DONE: PacsPush['status'][] = ['succeeded', 'failed'];

/**
 * The shown result as DICOM: "Download DICOM SEG" (`GET /api/{jobs|masks}/{id}/seg.dcm`, fetched
 * with the session so an error is shown here, not as a download of an error page) and, when the
 * server has a PACS, "Send to PACS" (a durable push job, followed until it ends). A case that came
 * as NIfTI has no DICOM source to reference, so the panel says why and offers neither.
 */
export function ExportPanel(props: { dicomCase: boolean; source: ExportSource | null }) {
  const apiUrl = useApiUrl();
  const info = trpc.system.info.useQuery(undefined, { staleTime: 60_000 });
  const [downloading, setDownloading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [pushId, setPushId] = useState<string | null>(null);
  const push = trpc.pacs.push.useMutation({ onSuccess: (p) => setPushId(p.id) });
  const pushed = trpc.pacs.pushes.byId.useQuery(
    { id: pushId ?? '' },
    { enabled: pushId !== null, refetchInterval: (q) => (q.state.data && DONE.includes(q.state.data.status) ? false : 1000) },
  );
  const { source } = props;
  if (!source) return null;

  if (!props.dicomCase) {
    return (
      <div className="panel" data-testid="export-panel">
        <h2>Export</h2>
        <p className="hint" data-testid="seg-unavailable">
          DICOM SEG and Send to PACS need a case imported from DICOM: a SEG references its source series' slices and frame of reference.
          This case came as NIfTI, so its masks download as NIfTI (the Download links).
        </p>
      </div>
    );
  }

  const idPath = 'jobId' in source ? `jobs/${source.jobId}` : `masks/${source.maskVersionId}`;
  const download = async () => {
    setDownloading(true);
    setError(null);
    try {
      const crossOrigin = new URL(apiUrl).origin !== location.origin;
      const res = await fetch(`${apiUrl}/api/${idPath}/seg.dcm`, { credentials: crossOrigin ? 'include' : 'same-origin' });
      if (!res.ok) {
        const body = (await res.json().catch(() => null)) as { message?: string } | null;
        throw new Error(body?.message ?? `The server answered ${res.status}`);
      }
      const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? 'seg.dcm';
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement('a');
      a.href = url;
      a.download = name;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (e) {
      setError(`Could not export the DICOM SEG: ${(e as Error).message}`);
    } finally {
      setDownloading(false);
    }
  };
  const sendToPacs = () => {
    setPushId(null);
    push.mutate('jobId' in source ? { jobId: source.jobId } : { maskVersionId: source.maskVersionId });
  };
  const state = pushed.data;

  return (
    <div className="panel" data-testid="export-panel">
      <h2>Export</h2>
      <p className="hint">{source.label} as a DICOM SEG, referencing the study it came from.</p>
      <div className="row">
        <button onClick={() => void download()} disabled={downloading}>
          {downloading ? 'Exporting…' : 'Download DICOM SEG'}
        </button>
        {info.data?.pacs && (
          <button className="secondary" onClick={sendToPacs} disabled={push.isPending || (!!state && !DONE.includes(state.status))}>
            Send to PACS
          </button>
        )}
      </div>
      {error && <p className="error">{error}</p>}
      {push.error && <p className="error">{push.error.message}</p>}
      {state && (
        <p className={state.status === 'failed' ? 'error' : 'hint'} data-testid="pacs-push" data-status={state.status}>
          {state.status === 'succeeded'
            ? state.adcSeriesInstanceUid
              ? 'Sent to the PACS: the SEG and the computed ADC (a derived MR series) stored in the source study.'
              : 'Sent to the PACS: stored in the source study.'
            : state.status === 'failed'
              ? `The PACS did not take it: ${state.error ?? 'no answer'}`
              : `Sending to the PACS… (${state.status}${state.attempts > 1 ? `, attempt ${state.attempts}` : ''}${state.error ? `: ${state.error}` : ''})`}
        </p>
      )}
    </div>
  );
}
