import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Short-lived capability URLs for volumes: `<payload>.<mac>` where the payload is the volume id
 * and an expiry, and the MAC an HMAC-SHA256 under SECRET_KEY. No cookie is needed to fetch a
 * volume, so links work same-origin, cross-origin and inside iframes without third-party cookies.
 */
export interface VolumeSigner {
  sign(volumeId: string, ttlSeconds?: number): string;
  /** The volume id, or why the token is refused. */
  verify(token: string): { ok: true; volumeId: string; expiresAt: number } | { ok: false; reason: 'malformed' | 'forged' | 'expired' };
}

export function createVolumeSigner(secret: string, defaultTtlSeconds = 3600, now = () => Date.now()): VolumeSigner {
  const mac = (payload: Buffer) => createHmac('sha256', secret).update('volume-url:v1:').update(payload).digest().subarray(0, 18);
  return {
    sign(volumeId, ttlSeconds = defaultTtlSeconds) {
      const payload = Buffer.alloc(20);
      Buffer.from(volumeId.replace(/-/g, ''), 'hex').copy(payload, 0);
      payload.writeUInt32BE(Math.floor(now() / 1000) + ttlSeconds, 16);
      return `${payload.toString('base64url')}.${mac(payload).toString('base64url')}`;
    },
    verify(token) {
      const m = /^([A-Za-z0-9_-]{27})\.([A-Za-z0-9_-]{24})$/.exec(token);
      if (!m) return { ok: false, reason: 'malformed' };
      const payload = Buffer.from(m[1]!, 'base64url');
      const given = Buffer.from(m[2]!, 'base64url');
      if (payload.length !== 20 || given.length !== 18) return { ok: false, reason: 'malformed' };
      // One spelling per token: 27 base64url characters carry 162 bits for 160, so the last one
      // has 2 bits nobody reads — a second spelling that would verify is refused as malformed.
      if (payload.toString('base64url') !== m[1]) return { ok: false, reason: 'malformed' };
      if (!timingSafeEqual(given, mac(payload))) return { ok: false, reason: 'forged' };
      const expiresAt = payload.readUInt32BE(16) * 1000;
      if (expiresAt <= now()) return { ok: false, reason: 'expired' };
      const hex = payload.subarray(0, 16).toString('hex');
      const volumeId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
      return { ok: true, volumeId, expiresAt };
    },
  };
}
