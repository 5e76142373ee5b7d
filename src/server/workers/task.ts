/**
 * A CPU task a domain registers: the module that defines it (by its own `import.meta.url`) and
 * the exported function the pool's threads call. The pool knows nothing else about it, so
 * `workers/` imports no domain: a domain declares `cpuTask(import.meta.url, 'fn')` beside `fn`.
 *
 * I: the input (structured-cloneable), O: the output, P: progress events, S: checkpoint stages.
 */
export interface CpuTask<I, O, P = never, S extends string = never> {
  readonly module: string;
  readonly name: string;
  /** Types only: never set. */
  readonly types?: { input: I; output: O; progress: P; stage: S };
}

export function cpuTask<I, O, P = never, S extends string = never>(moduleUrl: string, name: string): CpuTask<I, O, P, S> {
  return { module: moduleUrl, name };
}

/** What a task function gets besides its input, for tasks the caller follows and steers. */
export interface TaskIo<P = never, S extends string = never> {
  /** Aborted when the caller's signal is (cancel, timeout, shutdown). */
  signal: AbortSignal;
  progress(p: P): void;
  /** Asks the caller's main thread (which owns holds and cancel checks) and waits for its answer; rejects `cancelled` on abort. */
  checkpoint(stage: S): Promise<void>;
}

export type TaskFunction<I, O, P = never, S extends string = never> = (input: I, io: TaskIo<P, S>) => O | Promise<O>;
