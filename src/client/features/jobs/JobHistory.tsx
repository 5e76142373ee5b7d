import type { JobView } from '../../../shared/jobs.js';

/** Every job of the case: model, status, when, time taken, Dice; open a finished one as the prediction overlay. */
export function JobHistory(props: { jobs: JobView[]; shown: string | null; onOpen: (job: JobView) => void }) {
  if (props.jobs.length === 0) return null;
  return (
    <div className="panel" data-testid="job-history">
      <h2>Job history</h2>
      <table className="list">
        <tbody>
          {props.jobs.map((j) => {
            const took = j.startedAt && j.finishedAt ? (new Date(j.finishedAt).getTime() - new Date(j.startedAt).getTime()) / 1000 : null;
            return (
              <tr key={j.id} data-testid="job-row" className={props.shown === j.id ? 'current' : ''}>
                {/* Four narrow columns (the panel is ~300 px): what ran and how it ended; when and how long; Dice; actions. */}
                <td>
                  <span className="nowrap">{j.modelIds.join(', ')}</span>
                  <div className="hint">{j.status}</div>
                  {j.status === 'failed' && j.error && <div className="error">{j.error}</div>}
                </td>
                <td className="hint">
                  {new Date(j.createdAt).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' })}
                  {took !== null && <div>{`${took.toFixed(1)} s`}</div>}
                </td>
                <td className="nowrap">{j.result?.metrics.dice == null ? '' : `Dice ${j.result.metrics.dice.toFixed(3)}`}</td>
                <td className="actions">
                  {j.result && (
                    <>
                      <button className="link" onClick={() => props.onOpen(j)} disabled={props.shown === j.id}>
                        {props.shown === j.id ? 'Shown' : 'Open'}
                      </button>
                      <a href={j.result.mask.downloadUrl} download>
                        Download
                      </a>
                    </>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
