import { tooMany } from '../errors.js';

/**
 * Open progress streams counted per key (a user, a session), in this process. A stream holds a
 * socket and re-reads its job every few seconds, so an unbounded number of them from one account
 * is a cheap way to load the server; past a cap the next one is refused with a clear message.
 */
export class StreamLimits {
  readonly #open = new Map<string, number>();

  /** How many streams `key` holds now. */
  count(key: string): number {
    return this.#open.get(key) ?? 0;
  }

  /**
   * Takes one stream for every key, or none: throws TOO_MANY_REQUESTS naming the first cap reached.
   * Returns the release (idempotent), to call when the stream ends however it ends.
   */
  acquire(claims: { key: string; limit: number; message: (limit: number) => string }[]): () => void {
    for (const c of claims) {
      if (this.count(c.key) >= c.limit) throw tooMany(c.message(c.limit), 10);
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
