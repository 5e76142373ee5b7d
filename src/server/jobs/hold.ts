import { existsSync, writeFileSync } from 'node:fs';
import { cancelled } from '../errors.js';
import type { Stage } from '../segmentation/pipeline.js';

/**
 * A test's hold on a running job: awaited by the worker at the start of each pipeline stage.
 * Tests that need "a job still running" hold it at a stage and release it when they are done,
 * instead of relying on a model that is merely slow (which a fast or busy CPU breaks). Rejects
 * with a `cancelled` DomainError when the job is aborted (cancel, timeout, shutdown) while held.
 */
export type JobHold = (at: { jobId: string; stage: Stage; signal: AbortSignal }) => Promise<void>;

function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(cancelled());
    else signal.addEventListener('abort', () => reject(cancelled()), { once: true });
  });
}

/**
 * An in-process gate: jobs reaching `stage` wait until `release()`. With `abortable: false` an
 * abort (a cancel a progress write noticed) does not end the wait: the job stays running until
 * released, and then meets its cancel at the stage's check, as a job between stages would.
 */
export function gate(stage: Stage = 'infer', opts: { abortable?: boolean } = {}) {
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  let reached!: (jobId: string) => void;
  const reachedP = new Promise<string>((r) => {
    reached = r;
  });
  const hold: JobHold = async (at) => {
    if (at.stage !== stage) return;
    reached(at.jobId);
    await (opts.abortable === false ? released : Promise.race([released, untilAborted(at.signal)]));
  };
  return { hold, reached: reachedP, release };
}

/**
 * The same across processes, for tests that spawn a server or worker:
 * `STROKEVIEW_TEST_HOLD=<stage>:<file>` holds every job at `stage` until `<file>` exists. Several
 * gates, comma-separated (`infer:<a>,postprocess:<b>`), hold a job at each stage until its own
 * file exists — a test can then act while the job is past one stage but provably not finished.
 * A job that has to wait writes `<file>.held` (`{"pid", "jobId"}`), so a test running several
 * workers knows which process holds it. Deleting `<file>` again re-arms the gate for later jobs.
 * Ignored with NODE_ENV=production.
 */
export function holdFromEnv(env: NodeJS.ProcessEnv = process.env): JobHold | undefined {
  const spec = env.STROKEVIEW_TEST_HOLD;
  if (!spec || env.NODE_ENV === 'production') return undefined;
  const gates = new Map<Stage, string>();
  for (const one of spec.split(',')) {
    const i = one.indexOf(':');
    gates.set(one.slice(0, i) as Stage, one.slice(i + 1));
  }
  return async (at) => {
    const file = gates.get(at.stage);
    if (!file) return;
    if (existsSync(file)) return;
    try {
      writeFileSync(`${file}.held`, JSON.stringify({ pid: process.pid, jobId: at.jobId }));
    } catch {
      // the marker is a convenience for the test; the hold itself is the file's absence
    }
    const aborted = untilAborted(at.signal);
    aborted.catch(() => {});
    while (!existsSync(file)) {
      await Promise.race([new Promise((r) => setTimeout(r, 50)), aborted]);
    }
  };
}
