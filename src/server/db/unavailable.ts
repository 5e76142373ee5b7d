/**
 * Whether an error means "the database cannot be reached right now" (as opposed to a bad query):
 * refused or cut connections, a server shutting down or starting, a database not accepting
 * connections, too many clients. Such a request is answered 503 with Retry-After — the client
 * retries, as it does through a cold start — instead of a 500.
 */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
// SQLSTATE: 08 connection exceptions, 57P01–57P03 shutdown/crash/cannot connect now, 53300 too many connections
const SQLSTATES = new Set(['08000', '08001', '08003', '08004', '08006', '57P01', '57P02', '57P03', '53300']);
const MESSAGES = [
  /Connection terminated/i,
  /not currently accepting connections/i,
  /timeout exceeded when trying to connect/i,
  /Client has encountered a connection error/i,
];

// The database's disk is full (SQLSTATE 53100; PGlite says "could not extend file"): the server's
// problem too, answered 503 naming the disk rather than a 500.
const DISK_FULL = [/could not extend file/i];

function someCause(err: unknown, test: (code: unknown, message: unknown) => boolean): boolean {
  for (let e = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    // The object store's failure (volumes/s3-store.ts) wraps its network error: not the database's.
    if (code === 'ESTORAGE') return false;
    if (test(code, message)) return true;
  }
  return false;
}

export function isDatabaseDiskFull(err: unknown): boolean {
  return someCause(err, (code, message) => code === '53100' || (typeof message === 'string' && DISK_FULL.some((m) => m.test(message))));
}

export function isDatabaseUnavailable(err: unknown): boolean {
  if (isDatabaseDiskFull(err)) return true;
  return someCause(
    err,
    (code, message) =>
      (typeof code === 'string' && (NETWORK_CODES.has(code) || SQLSTATES.has(code))) ||
      (typeof message === 'string' && MESSAGES.some((m) => m.test(message))),
  );
}

export const DATABASE_UNAVAILABLE_MESSAGE = 'The database is unavailable right now; retry in a few seconds';
export const DATABASE_DISK_FULL_MESSAGE = 'The server ran out of disk space; try again later';

/** What a client reads when the database cannot serve it. */
export function databaseUnavailableMessage(err: unknown): string {
  return isDatabaseDiskFull(err) ? DATABASE_DISK_FULL_MESSAGE : DATABASE_UNAVAILABLE_MESSAGE;
}
export const DATABASE_RETRY_AFTER_S = 5;
