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

export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && (NETWORK_CODES.has(code) || SQLSTATES.has(code))) return true;
    if (typeof message === 'string' && MESSAGES.some((m) => m.test(message))) return true;
  }
  return false;
}

export const DATABASE_UNAVAILABLE_MESSAGE = 'The database is unavailable right now; retry in a few seconds';
export const DATABASE_RETRY_AFTER_S = 5;
