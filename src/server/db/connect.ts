import { Kysely, PGliteDialect, PostgresDialect, sql } from 'kysely';
import { BootError } from '../data-dir.js';
import { type OpenedEmbedded, openPglite } from './embedded.js';
import type { EmbeddedEngine } from './pglite-thread.js';
import { ReadCache } from './read-cache.js';
import type { Database } from './tables.js';

export type DatabaseKind = 'embedded' | 'postgres';

export interface DatabaseHandle {
  readonly db: Kysely<Database>;
  readonly kind: DatabaseKind;
  /** The embedded engine, for things that share it (the job queue). */
  readonly pglite?: EmbeddedEngine;
  /** The PostgreSQL connection string, for things that open their own pool (the job queue). */
  readonly url?: string;
  /**
   * Embedded only (one process holds the database: its lock): hot reads' results, dropped by any
   * write through `db` (read-cache.ts). PostgreSQL has none: other replicas write unseen.
   */
  readonly readCache?: ReadCache;
  close(): Promise<void>;
}

/** A URL fit for a log line or an error: the password is replaced. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

export async function connectPostgres(url: string, opts: { max?: number } = {}): Promise<DatabaseHandle> {
  // Loaded here: the embedded database never needs the driver, and loading it (its first
  // `new Response()` loads Node's fetch) was ≈ 40 ms of a warm restart (#29).
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, connectionTimeoutMillis: 5000 });
  // An idle client that loses its server must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  // pg-pool listens for errors only on idle clients. Kysely holds a client between its query and
  // its release across promise turns, and when the server goes away (a restart cuts every session)
  // the socket's end arrives in that gap: "Connection terminated unexpectedly" is emitted on a
  // client nobody listens to, and an EventEmitter 'error' without a listener ends the process. The
  // query in flight still rejects on its own; a client that died is discarded when it is released.
  pool.on('connect', (client) => client.on('error', () => {}));
  try {
    const client = await pool.connect();
    client.release();
  } catch (err) {
    await pool.end().catch(() => {});
    throw new BootError(`cannot reach DATABASE_URL ${redactUrl(url)}: ${(err as Error).message || (err as NodeJS.ErrnoException).code}`);
  }
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return { db, kind: 'postgres', url, close: () => db.destroy() };
}

/**
 * Wraps a PGlite instance (persistent or in-memory). Kysely's built-in dialect serialises use of
 * PGlite's single connection (its adapter says it has no second one), so a transaction is
 * isolated from queries issued meanwhile; db.test.ts holds it to that.
 */
export function fromPglite(pglite: EmbeddedEngine, onClose?: () => void): DatabaseHandle {
  const readCache = new ReadCache();
  const db = new Kysely<Database>({ dialect: new PGliteDialect({ pglite }), plugins: [readCache.plugin()] });
  return {
    db,
    kind: 'embedded',
    pglite,
    readCache,
    async close() {
      try {
        await db.destroy();
        if (!pglite.closed) await pglite.close();
      } finally {
        onClose?.();
      }
    },
  };
}

export async function openEmbedded(dataDir: string, opening?: Promise<OpenedEmbedded>): Promise<DatabaseHandle> {
  const { pglite, release } = await (opening ?? openPglite(dataDir));
  return fromPglite(pglite, release);
}

/**
 * PostgreSQL when `databaseUrl` is set, else the embedded engine in `dataDir` — or the one
 * `embedded` is already opening there (the server's entry starts it before its modules load).
 */
export function connectDatabase(opts: {
  databaseUrl?: string;
  dataDir: string;
  embedded?: Promise<OpenedEmbedded>;
}): Promise<DatabaseHandle> {
  return opts.databaseUrl ? connectPostgres(opts.databaseUrl) : openEmbedded(opts.dataDir, opts.embedded);
}

export async function pingDatabase(db: Kysely<Database>): Promise<void> {
  await sql`select 1`.execute(db);
}
