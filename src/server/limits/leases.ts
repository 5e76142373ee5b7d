import type { Kysely } from 'kysely';
import { acquireLease, releaseLease, renewLeases } from '../db/fleet-limits.js';
import type { Database } from '../db/tables.js';
import type { DomainError } from '../errors.js';

/** One cap a lease counts against: a key (a user, a session, the whole fleet) and its limit. */
export interface LeaseClaim {
  key: string;
  limit: number;
  /** The refusal when `key` is at its limit (a 429 for one account, a 503 for the whole fleet). */
  refuse: (limit: number, count: number) => DomainError;
}

export interface LeaseOptions {
  /** What is counted (`stream`, `upload`): leases of one kind count only against each other. */
  kind: string;
  /** A lease this long without a heartbeat has expired: its replica is taken for dead. */
  leaseMs: number;
  now?: () => number;
  onError?: (err: unknown) => void;
}

/**
 * Caps counted across every replica, in PostgreSQL: each holder (a live progress stream, an upload
 * in flight) is a row in `fleet_leases` that this replica renews on a heartbeat while it holds it.
 * A replica that dies stops renewing, and its leases stop counting once they expire — so a crash
 * does not shrink the fleet's budget for longer than one lease.
 */
export class FleetLeases {
  readonly #held = new Set<string>();
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly db: () => Kysely<Database>,
    readonly options: LeaseOptions,
  ) {
    this.#now = options.now ?? Date.now;
  }

  /** Takes one lease for every claim, or none (throws the first claim's refusal). Returns the release (idempotent). */
  async acquire(claims: LeaseClaim[]): Promise<() => void> {
    const got = await acquireLease(this.db(), this.options.kind, claims, new Date(this.#now()), this.options.leaseMs);
    if ('full' in got) {
      const c = claims[got.full]!;
      throw c.refuse(c.limit, got.count);
    }
    this.#held.add(got.id);
    this.#startHeartbeat();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#held.delete(got.id);
      releaseLease(this.db(), got.id).catch((err: unknown) => this.options.onError?.(err));
    };
  }

  /** Renews what this replica holds now (the heartbeat calls it a few times per lease). */
  async renew(): Promise<void> {
    await renewLeases(this.db(), [...this.#held], new Date(this.#now()), this.options.leaseMs);
  }

  get held(): number {
    return this.#held.size;
  }

  #startHeartbeat() {
    if (this.#timer) return;
    this.#timer = setInterval(
      () => {
        if (this.#held.size === 0) return;
        this.renew().catch((err: unknown) => this.options.onError?.(err));
      },
      Math.max(1000, Math.floor(this.options.leaseMs / 3)),
    );
    this.#timer.unref();
  }

  /** Stops the heartbeat (the process is stopping; what it still holds expires with its lease). */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
