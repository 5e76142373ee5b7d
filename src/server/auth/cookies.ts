import { parse, serialize } from 'hono/utils/cookie';

export const SESSION_COOKIE = 'strokeview_session';
const HOST_PREFIXED = `__Host-${SESSION_COOKIE}`;

export interface CookiePolicy {
  /** `__Host-` prefix: only where the page is https (the prefix demands Secure and Path=/). */
  hostPrefix: boolean;
  secure: boolean;
  sameSite: 'Lax' | 'None';
  /** CHIPS: in embed mode the cookie lives in the top-level site's partition, so it works as a third-party cookie. */
  partitioned: boolean;
}

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/**
 * Secure on https and on localhost (browsers treat localhost as a secure context); in embed mode
 * always SameSite=None; Secure; Partitioned, because SameSite=None without Secure is rejected.
 */
export function cookiePolicy(opts: { https: boolean; hostname: string; embedded: boolean }): CookiePolicy {
  const local = LOCAL_HOSTS.has(opts.hostname) || opts.hostname.endsWith('.localhost');
  return {
    hostPrefix: opts.https,
    secure: opts.https || local || opts.embedded,
    sameSite: opts.embedded ? 'None' : 'Lax',
    partitioned: opts.embedded,
  };
}

export function sessionCookieName(policy: CookiePolicy): string {
  return policy.hostPrefix ? HOST_PREFIXED : SESSION_COOKIE;
}

export function serializeSessionCookie(policy: CookiePolicy, token: string, expiresAt: Date): string {
  const maxAge = Math.max(0, Math.floor((expiresAt.getTime() - Date.now()) / 1000));
  return serialize(sessionCookieName(policy), token, {
    path: '/',
    httpOnly: true,
    secure: policy.secure,
    sameSite: policy.sameSite,
    maxAge,
    ...(policy.partitioned ? { partitioned: true, secure: true } : {}),
  } as Parameters<typeof serialize>[2]);
}

/**
 * Set-Cookie lines that clear the session cookie: on https both names, so an unprefixed cookie
 * planted by a sibling host (cookie tossing) does not outlive sign-out.
 */
export function serializeClearedCookies(policy: CookiePolicy): string[] {
  const names = policy.hostPrefix ? [HOST_PREFIXED, SESSION_COOKIE] : [SESSION_COOKIE];
  return names.map((name) =>
    serialize(name, '', {
      path: '/',
      httpOnly: true,
      secure: policy.secure || name === HOST_PREFIXED,
      sameSite: policy.sameSite,
      maxAge: 0,
      ...(policy.partitioned ? { partitioned: true, secure: true } : {}),
    } as Parameters<typeof serialize>[2]),
  );
}

/**
 * The session token from a Cookie header. Where the policy uses the `__Host-` name (https), only
 * that name counts: an unprefixed cookie can be set by a sibling subdomain or over plain http
 * (cookie tossing), the prefixed one only by this host over https. Without a policy (the CSRF
 * guard asking "is any session cookie here?") either name is read.
 */
export function readSessionCookie(cookieHeader: string | null | undefined, policy?: CookiePolicy): string | undefined {
  if (!cookieHeader) return undefined;
  const jar = parse(cookieHeader);
  if (policy?.hostPrefix) return jar[HOST_PREFIXED] || undefined;
  if (policy) return jar[SESSION_COOKIE] || undefined;
  return jar[HOST_PREFIXED] || jar[SESSION_COOKIE] || undefined;
}
