import type { Kysely } from 'kysely';
import type { Store } from 'hono-rate-limiter';
import { hitRateLimit, readRateLimit, resetRateLimit, unhitRateLimit } from '../db/fleet-limits.js';
import type { Database } from '../db/tables.js';

/**
 * hono-rate-limiter's Store over PostgreSQL (the UNLOGGED `rate_limit_hits` table): every replica
 * counts in the same fixed windows, so N replicas do not give a client N times the budget. One
 * upsert per counted request, atomic on the key's row.
 */
export class PostgresRateLimitStore implements Store {
  readonly localKeys = false;
  #windowMs = 60_000;

  constructor(
    readonly db: () => Kysely<Database>,
    readonly now: () => number = Date.now,
  ) {}

  init(options: { windowMs: number }): void {
    this.#windowMs = options.windowMs;
  }

  async get(key: string) {
    const r = await readRateLimit(this.db(), key, new Date(this.now()));
    return r ? { totalHits: r.hits, resetTime: r.resetAt } : undefined;
  }

  async increment(key: string) {
    const r = await hitRateLimit(this.db(), key, new Date(this.now()), this.#windowMs);
    return { totalHits: r.hits, resetTime: r.resetAt };
  }

  async decrement(key: string) {
    await unhitRateLimit(this.db(), key);
  }

  async resetKey(key: string) {
    await resetRateLimit(this.db(), key);
  }
}
