import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';

export interface MetricsAccessOptions {
  /** METRICS_TOKEN: when set, a scraper must send `Authorization: Bearer <token>`, from anywhere. */
  token?: string | undefined;
  /** The client's real address (http/client.ts, through the trusted proxy hops). */
  clientAddress: (c: Context) => string;
}

/** 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6 (a dual-stack socket reports `::ffff:127.0.0.1`). */
export function isLoopback(address: string): boolean {
  const a = address.toLowerCase().replace(/^::ffff:/, '');
  return a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

/** Compares as SHA-256 digests: equal lengths always, so the time taken says nothing about the token. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * Who may read /metrics: it names every procedure and how often each is called (admin ones
 * included) and the size of the queue, which is for operators, not the public. With a token:
 * that bearer token and nothing else (401 otherwise). Without one: only this machine (a sidecar,
 * `curl localhost`), judged by the real client address so a proxy on loopback does not make
 * every visitor local; anyone else gets 403 naming the setting that would let them in.
 */
export function metricsAccess(options: MetricsAccessOptions): MiddlewareHandler {
  return async function metricsAccess(c, next) {
    if (options.token !== undefined) {
      const match = /^Bearer +(\S+) *$/i.exec(c.req.header('authorization') ?? '');
      if (!match || !sameSecret(match[1]!, options.token)) {
        c.header('WWW-Authenticate', 'Bearer realm="metrics"');
        c.header('Cache-Control', 'no-store');
        return c.text('/metrics needs Authorization: Bearer <METRICS_TOKEN>\n', 401);
      }
      return next();
    }
    if (!isLoopback(options.clientAddress(c))) {
      c.header('Cache-Control', 'no-store');
      return c.text('/metrics is served only to this machine; set METRICS_TOKEN to scrape it from elsewhere\n', 403);
    }
    return next();
  };
}
