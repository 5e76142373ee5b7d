import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context } from 'hono';

/**
 * The client's address. Behind `hops` trusted proxies, each appends the address it saw to
 * X-Forwarded-For, so the client is the entry `hops` from the right; anything left of it was
 * written by the client and is ignored (a spoofed leftmost value changes nothing).
 */
export function clientAddress(c: Context, hops: number): string {
  let socket: string | undefined;
  try {
    socket = getConnInfo(c).remote.address;
  } catch {
    socket = undefined; // app.request() in tests has no socket
  }
  if (hops > 0) {
    const chain = (c.req.header('x-forwarded-for') ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (chain.length > 0) return chain[Math.max(0, chain.length - hops)]!;
  }
  return socket ?? 'unknown';
}

/** Whether the browser reached us over https (directly, through a trusted proxy, or per PUBLIC_URL). */
export function isHttps(c: Context, opts: { hops: number; publicUrl?: string | undefined }): boolean {
  if (opts.publicUrl?.startsWith('https:')) return true;
  if (new URL(c.req.url).protocol === 'https:') return true;
  if (opts.hops > 0) {
    const proto = c.req.header('x-forwarded-proto')?.split(',').at(-1)?.trim();
    return proto === 'https';
  }
  return false;
}

/** The environment facts the request helpers below read. */
interface PublicFacts {
  TRUSTED_PROXY_HOPS: number;
  PUBLIC_URL?: string | undefined;
}

export function requestIsHttps(c: Context, env: PublicFacts): boolean {
  return isHttps(c, { hops: env.TRUSTED_PROXY_HOPS, publicUrl: env.PUBLIC_URL });
}

/** Where this server is reached, for absolute links (signed volume URLs, the OpenAPI document): PUBLIC_URL, else the request's own origin. */
export function publicBaseUrl(c: Context, env: PublicFacts): string {
  const url = new URL(c.req.url);
  return env.PUBLIC_URL ?? (requestIsHttps(c, env) ? `https://${url.host}` : url.origin);
}
