/** The clock a throttle reads; tests pass vitest's fake timers or a scripted one. */
export interface ThrottleClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: ThrottleClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface ProgressThrottle<T> {
  /** Reports the latest state: written now if the last write is `intervalMs` old, else at the next slot. */
  report(value: T): void;
  /** Drops a pending trailing write (the job ended; its final state is written by the caller). */
  cancel(): void;
}

/**
 * At most one write per `intervalMs`; the latest report waits for the next slot (a trailing
 * write), so a burst never exceeds the rate and the last state before a pause is never lost.
 */
export function createProgressThrottle<T>(opts: {
  intervalMs: number;
  write: (value: T) => void;
  clock?: ThrottleClock;
}): ProgressThrottle<T> {
  const clock = opts.clock ?? systemClock;
  let lastWrite = Number.NEGATIVE_INFINITY;
  let pending: { value: T } | undefined;
  let trailing: unknown;
  const flush = () => {
    trailing = undefined;
    if (!pending) return;
    const { value } = pending;
    pending = undefined;
    lastWrite = clock.now();
    opts.write(value);
  };
  return {
    report(value) {
      pending = { value };
      const wait = opts.intervalMs - (clock.now() - lastWrite);
      if (wait <= 0) flush();
      else trailing ??= clock.setTimeout(flush, wait);
    },
    cancel() {
      if (trailing !== undefined) clock.clearTimeout(trailing);
      trailing = undefined;
      pending = undefined;
    },
  };
}
