import type { EmbeddedEngine } from '../db/pglite-thread.js';
import type { ApiTokenRow, SessionRow, UserRow } from '../db/tables.js';

/**
 * The channel the database announces credential changes on, with the user's id as payload: its
 * triggers (migration 20261202_150000_credential_changes) fire on a deleted session, a revoked or
 * deleted API token, a user's role, email, password or disabled flag changed, a deleted user —
 * whoever made the change — and the notification goes out at commit.
 */
export const CREDENTIALS_CHANNEL = 'strokeview_credentials';

/** What a token resolved to in the database: the row and its user, as `authenticate` judges them. */
export type CachedCredential =
  { kind: 'session'; session: SessionRow; user: UserRow } | { kind: 'api-token'; token: ApiTokenRow; user: UserRow };

/**
 * Where this process hears that a user's credentials changed, and whether it hears everything
 * right now. While not live (a PostgreSQL LISTEN connection that dropped, not yet back), a change
 * made by another process could go unheard, so the cache stores nothing.
 */
export interface CredentialChanges {
  readonly live: boolean;
  /** `userId`: that user's sessions, tokens or account changed. `live`: the feed went up or down. */
  subscribe(listener: (event: { userId: string } | { live: boolean }) => void): () => void;
}

/** A feed whose owner pushes its events (the event bus's LISTEN connection, PGlite's listener). */
export function credentialFeed(initiallyLive = false) {
  const listeners = new Set<(event: { userId: string } | { live: boolean }) => void>();
  let live = initiallyLive;
  const emit = (event: { userId: string } | { live: boolean }) => {
    for (const l of listeners) l(event);
  };
  const feed: CredentialChanges = {
    get live() {
      return live;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  return {
    feed,
    changed: (userId: string) => emit({ userId }),
    setLive(next: boolean) {
      if (next === live) return;
      live = next;
      emit({ live });
    },
  };
}

/**
 * The embedded database's feed. Its lock makes this process the only one on the database, so
 * every change is made here; PGlite hands the commit's notifications to its listeners before the
 * committing query returns, so a sign-out is heard before its response is sent.
 */
export function pgliteCredentialChanges(pglite: EmbeddedEngine): CredentialChanges {
  const { feed, changed, setLive } = credentialFeed();
  pglite
    .listen(CREDENTIALS_CHANNEL, (payload) => changed(payload))
    .then(
      () => setLive(true),
      () => {}, // not listening: nothing is cached
    );
  return feed;
}

export interface SessionCacheOptions {
  /** How long an entry may answer without the database (0: the cache is off). */
  ttlMs: number;
  /** Entries kept at most; the oldest go first. */
  maxEntries?: number;
  /** Tests inject a clock. */
  now?: () => number;
}

/**
 * Token digest → the session or API token row and its user, for `ttlMs`, so an authenticated
 * request needs no database round trip for who is asking. Correctness does not rest on the TTL:
 * every change that could alter the answer drops the user's entries at once — the request that
 * made it drops them here (`dropUser`), the database's notification drops them in every process
 * (`CredentialChanges`) — and while the feed is not live nothing is cached at all. A look-up that
 * raced a change is not stored (the generation moved on while it was in flight). Unknown tokens
 * are never cached, so random tokens cannot fill it. `authenticate` still judges every cached
 * row against the clock (expiry, absolute lifetime, renewal), as it would a fresh one.
 */
export class SessionCache {
  readonly #entries = new Map<string, { value: CachedCredential; at: number }>();
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #feed: CredentialChanges | undefined;
  #generation = 0;
  readonly #waiters = new Map<string, Set<() => void>>();
  /** Answers from the cache and look-ups that went to the database (for tests and metrics). */
  hits = 0;
  misses = 0;

  constructor(feed: CredentialChanges | undefined, opts: SessionCacheOptions) {
    this.#feed = feed;
    this.#ttlMs = opts.ttlMs;
    this.#max = opts.maxEntries ?? 10_000;
    this.#now = opts.now ?? Date.now;
    feed?.subscribe((event) => {
      if ('userId' in event) {
        this.dropUser(event.userId);
        const waiters = this.#waiters.get(event.userId);
        this.#waiters.delete(event.userId);
        for (const w of waiters ?? []) w();
      } else {
        this.clear();
        if (!event.live) this.#releaseAll();
      }
    });
  }

  /**
   * Call before a change to a user's credentials, await after it: resolves once this process has
   * heard the database announce a change of that user (or at once when nothing is cached). The
   * database signals every listening process at the same commit, so a request that ends a session
   * answers only after the other replicas were sent the news — a client that signs out on one and
   * replays the cookie on another finds it refused. `boundMs` caps the wait for a change that
   * turned out to change nothing (no notification comes).
   */
  changeHeard(userId: string, boundMs = 1000): Promise<void> {
    if (!this.caching) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, boundMs);
      timer.unref?.();
      const set = this.#waiters.get(userId) ?? new Set();
      this.#waiters.set(userId, set);
      set.add(done);
      function done() {
        clearTimeout(timer);
        set.delete(done);
        resolve();
      }
    });
  }

  #releaseAll(): void {
    const all = [...this.#waiters.values()].flatMap((set) => [...set]);
    this.#waiters.clear();
    for (const w of all) w();
  }

  /** Whether entries are stored now: a TTL, and a feed that hears every change. */
  get caching(): boolean {
    return this.#ttlMs > 0 && this.#feed?.live === true;
  }

  /** Taken before a database look-up and handed to `store`: a change in between voids the store. */
  get generation(): number {
    return this.#generation;
  }

  get(digest: string): CachedCredential | undefined {
    const entry = this.#entries.get(digest);
    if (entry && this.caching && this.#now() - entry.at < this.#ttlMs) {
      this.hits++;
      return entry.value;
    }
    if (entry) this.#entries.delete(digest);
    this.misses++;
    return undefined;
  }

  store(digest: string, value: CachedCredential, generation: number): void {
    if (!this.caching || generation !== this.#generation) return;
    if (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(digest, { value, at: this.#now() });
  }

  /** Forgets one token (its session was deleted, expired or renewed here). */
  drop(digest: string): void {
    this.#generation++;
    this.#entries.delete(digest);
  }

  /** Forgets every entry of a user: sign-out, password change, disable, role change, revoked token. */
  dropUser(userId: string): void {
    this.#generation++;
    for (const [digest, entry] of this.#entries) if (entry.value.user.id === userId) this.#entries.delete(digest);
  }

  clear(): void {
    this.#generation++;
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}
