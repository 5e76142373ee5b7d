import cliProgress from 'cli-progress';
import type { JobProgress } from '../sdk/index.js';

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
