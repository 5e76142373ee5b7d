import type { LeaseClaim } from '../limits/leases.js';

/** What counts open progress streams: in the database for the fleet (limits/leases.ts), or in memory. */
export interface StreamCaps {
  /**
   * Takes one stream for every claim, or none: throws the first claim's refusal. Returns the
   * release (idempotent), to call when the stream ends however it ends.
   */
  acquire(claims: LeaseClaim[]): Promise<() => void>;
}

/**
 * Open progress streams counted per key (a user, a session), in this process only: for tests and
 * tools that run no fleet. The server counts them across replicas (FleetLeases, kind `stream`).
 */
export class StreamLimits implements StreamCaps {
  readonly #open = new Map<string, number>();

  /** How many streams `key` holds now. */
  count(key: string): number {
    return this.#open.get(key) ?? 0;
  }

  async acquire(claims: LeaseClaim[]): Promise<() => void> {
    for (const c of claims) {
      if (this.count(c.key) >= c.limit) throw c.refuse(c.limit, this.count(c.key));
    }
    for (const c of claims) this.#open.set(c.key, this.count(c.key) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const c of claims) {
        const n = this.count(c.key) - 1;
        if (n > 0) this.#open.set(c.key, n);
        else this.#open.delete(c.key);
      }
    };
  }
}
