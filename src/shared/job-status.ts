/** A job's statuses, without zod: the SDK imports this at run time and stays small. */
export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];
/** A job that may still change: waiting for a worker, or on one. */
export const ACTIVE_STATUSES: readonly JobStatus[] = ['queued', 'running'];

/** Whether a job in this status will change no more. */
export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}
