import cliProgress from 'cli-progress';
import type { JobProgress, StudyRunSummary } from '../sdk/index.js';

/**
 * Shows a job's progress: a bar with the stage and an ETA on a terminal, plain lines otherwise
 * (logs, CI, pipes) — one per change of stage or each 10 %.
 */
export function progressReporter(stream: NodeJS.WriteStream): { update(p: JobProgress): void; stop(): void } {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: '{bar} {percentage}% | {stage} | ETA {eta_formatted}', etaBuffer: 20, hideCursor: true, stream, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
    bar.start(100, 0, { stage: 'queued' });
    return {
      update: (p) => bar.update(Math.round(p.progress), { stage: p.message || p.status }),
      stop: () => bar.stop(),
    };
  }
  let last = '';
  let lastTenth = -1;
  return {
    update: (p) => {
      const tenth = Math.floor(p.progress / 10);
      const stage = `${p.status} ${p.message}`;
      if (stage === last && tenth === lastTenth) return;
      last = stage;
      lastTenth = tenth;
      stream.write(`${String(Math.round(p.progress)).padStart(3)}% ${p.status}${p.message ? `: ${p.message}` : ''}\n`);
    },
    stop: () => {},
  };
}

/**
 * Shows a study run's progress as one line: a bar of finished cases out of all, the counts and the
 * server's ETA on a terminal; plain lines otherwise, one per change of the counts.
 */
export function runReporter(stream: NodeJS.WriteStream): { update(r: StudyRunSummary): void; stop(): void } {
  const eta = (r: StudyRunSummary) => (r.etaSeconds === null ? '…' : `${Math.ceil(r.etaSeconds)} s`);
  const counts = (r: StudyRunSummary) =>
    `${r.succeeded} done, ${r.failed} failed, ${r.cancelled} cancelled, ${r.running} running, ${r.queued} queued${r.reused ? ` (${r.reused} reused)` : ''}`;
  const finished = (r: StudyRunSummary) => r.succeeded + r.failed + r.cancelled;
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: '{bar} {value}/{total} | {counts} | ETA {eta}', hideCursor: true, stream, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update: (r) => {
        if (!started) {
          bar.start(r.total, finished(r), { counts: counts(r), eta: eta(r) });
          started = true;
        } else bar.update(finished(r), { counts: counts(r), eta: eta(r) });
      },
      stop: () => (started ? bar.stop() : undefined),
    };
  }
  let last = '';
  return {
    update: (r) => {
      const line = `${finished(r)}/${r.total} ${r.status}: ${counts(r)}`;
      if (line === last) return;
      last = line;
      stream.write(`${line}; ETA ${eta(r)}\n`);
    },
    stop: () => {},
  };
}
