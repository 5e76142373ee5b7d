import { useEffect, useState } from 'react';
import type { JobView } from '../../../shared/jobs.js';
import { jobCreateRetry, trpc } from '../../trpc.js';
import { ModelCard } from './ModelCard.js';
import { useJobProgress } from './useJobProgress.js';

/**
 * Run a model on the case: a model picker, Run → live progress from `jobs.onProgress` (polling
 * `jobs.byId` if the stream fails), Cancel, and the finished job's metrics.
 */
export function JobPanel(props: { caseId: string; signedIn: boolean; onResult: (job: JobView) => void; current: JobView | null }) {
  const utils = trpc.useUtils();
  const models = trpc.models.list.useQuery(undefined, { select: (list) => list.filter((m) => m.kind !== 'interactive') });
  const [modelId, setModelId] = useState<string>('');
  const [jobId, setJobId] = useState<string | null>(null);
  const [startedAt, setStartedAt] = useState<number | null>(null);
  const [now, setNow] = useState(Date.now());
  const create = trpc.jobs.create.useMutation(jobCreateRetry());
  const cancel = trpc.jobs.cancel.useMutation();
  const followed = useJobProgress(jobId);
  const live = followed.progress;
  const chosen = modelId || models.data?.[0]?.id || '';
  const running = jobId !== null && !followed.ended;

  useEffect(() => {
    if (!running) return;
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [running]);

  const ended = followed.job;
  useEffect(() => {
    if (!ended) return;
    void utils.jobs.list.invalidate({ caseId: props.caseId });
    props.onResult(ended);
  }, [ended]);

  const run = () => {
    // The previous job's progress goes away while the new one is queued.
    setJobId(null);
    setStartedAt(Date.now());
    // One key per click: a retried create (a waking server) returns the same job.
    create.mutate(
      { caseId: props.caseId, modelIds: [chosen], idempotencyKey: crypto.randomUUID() },
      { onSuccess: (job) => setJobId(job.id) },
    );
  };

  const shown = props.current;
  const model = models.data?.find((m) => m.id === chosen);
  return (
    <div className="panel" data-testid="job-panel">
      <h2>Segmentation</h2>
      <label>
        Model
        <select value={chosen} onChange={(e) => setModelId(e.target.value)} aria-label="Model">
          {models.data?.map((m) => (
            <option key={m.id} value={m.id}>
              {m.name}
            </option>
          ))}
        </select>
      </label>
      {model && <ModelCard model={model} />}
      {!props.signedIn ? (
        <p className="hint">Sign in (or continue as a guest) to run a model.</p>
      ) : running ? (
        <button onClick={() => jobId && cancel.mutate({ id: jobId })} disabled={cancel.isPending}>
          Cancel
        </button>
      ) : (
        <button onClick={run} disabled={!chosen || create.isPending}>
          Run
        </button>
      )}
      {create.error && <p className="error">{create.error.message}</p>}
      {jobId && live && (
        <div className="progress" data-testid="progress">
          <progress max={100} value={live.progress} />
          <span>
            {live.status === 'running' || live.status === 'queued' ? `${live.progress}% · ${live.message}` : live.status}
            {startedAt && running ? ` · ${Math.round((now - startedAt) / 1000)} s` : ''}
          </span>
          {live.error && <p className="error">{live.error}</p>}
        </div>
      )}
      {shown?.result && <Metrics job={shown} />}
    </div>
  );
}

function Metrics({ job }: { job: JobView }) {
  const m = job.result!.metrics;
  const f = (x: number | null, d: number) => (x === null ? '—' : x.toFixed(d));
  const seconds = job.startedAt && job.finishedAt ? (new Date(job.finishedAt).getTime() - new Date(job.startedAt).getTime()) / 1000 : null;
  return (
    <div className="metrics" data-testid="metrics">
      <h3>Result ({job.modelIds.join(', ')})</h3>
      <table>
        <tbody>
          <tr>
            <th>Dice</th>
            <td data-testid="dice">{f(m.dice, 3)}</td>
          </tr>
          <tr>
            <th>Predicted volume</th>
            <td>{f(m.predictedMl, 2)} mL</td>
          </tr>
          <tr>
            <th>True volume</th>
            <td>{m.trueMl === null ? '—' : `${f(m.trueMl, 2)} mL`}</td>
          </tr>
          <tr>
            <th>Abs. volume difference</th>
            <td>{m.absVolumeDiffMl === null ? '—' : `${f(m.absVolumeDiffMl, 2)} mL`}</td>
          </tr>
          <tr>
            <th>Lesions (predicted / true)</th>
            <td>
              {m.lesionCountPredicted} / {m.lesionCountTrue ?? '—'}
            </td>
          </tr>
          <tr>
            <th>Lesion-wise F1</th>
            <td>{f(m.lesionF1, 3)}</td>
          </tr>
          <tr>
            <th>Time</th>
            <td>{seconds === null ? '—' : `${seconds.toFixed(1)} s`}</td>
          </tr>
        </tbody>
      </table>
      {job.result!.notes.map((n) => (
        <p key={n} className="hint">
          {n}
        </p>
      ))}
      <p className="hint">Kept until {new Date(job.expiresAt).toLocaleDateString()}.</p>
    </div>
  );
}
