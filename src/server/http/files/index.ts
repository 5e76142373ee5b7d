import { Readable } from 'node:stream';
import { type Context, Hono } from 'hono';
import { DATABASE_RETRY_AFTER_S, databaseUnavailableMessage, isDatabaseUnavailable } from '../../db/unavailable.js';
import { findVolume } from '../../db/volumes.js';
import { storageMisconfiguration, storageMisconfiguredMessage, systemErrorPhrase } from '../../errors.js';
import type { Readiness } from '../../readiness.js';

export interface FilesOptions {
  readiness: Readiness;
  /**
   * `redirect`: a store that can presign (S3) answers with a 302 to a GET link valid `redirectTtlS`,
   * so the bytes flow from the store; the signed link checked here stays the only way to get one.
   */
  serve?: 'proxy' | 'redirect';
  redirectTtlS?: number;
}

/** Parses a single `bytes=a-b` / `bytes=a-` / `bytes=-n` range; null when absent, 'bad' when unsatisfiable. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | 'bad' {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'bad';
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'bad';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return 'bad';
  return { start, end };
}

/**
 * `GET /files/v/<token>[/<name>]`: a stored volume through a signed, expiring link. The bytes are
 * immutable (content-addressed), so they carry the sha256 as ETag and may be cached until the
 * link expires; Range requests get 206; `Cross-Origin-Resource-Policy: cross-origin` lets a viewer
 * on another origin (or under COEP) load them. Served as octet-stream without Content-Encoding:
 * the file is the .nii.gz itself.
 */
export function fileRoutes(options: FilesOptions): Hono {
  const app = new Hono();
  const handler = async (c: Context) => {
    const services = options.readiness.services;
    if (!services) {
      c.header('Retry-After', '2');
      return c.text('starting up', 503);
    }
    const checked = services.signer.verify(c.req.param('token') ?? '');
    if (!checked.ok) {
      return c.text(checked.reason === 'expired' ? 'This volume link has expired; reload the case' : 'Invalid volume link', 403);
    }
    let volume: Awaited<ReturnType<typeof findVolume>>;
    let size: number | undefined;
    try {
      volume = await findVolume(services.database.db, checked.volumeId);
      size = volume ? await services.store.size(volume.sha256) : undefined;
      // A HEAD's 404 has no body to tell a missing object from a missing bucket: on this rare path,
      // ask the store whether its bucket is there, so a misconfiguration is not called "no such volume".
      if (volume && size === undefined) await services.store.check?.();
    } catch (err) {
      const misconfigured = storageMisconfiguration(err);
      if (misconfigured) return c.text(storageMisconfiguredMessage(misconfigured), 503);
      // The database or the store cannot answer now: a 503 the viewer retries, not a 500.
      if (!isDatabaseUnavailable(err) && !systemErrorPhrase(err)) throw err;
      c.header('Retry-After', String(DATABASE_RETRY_AFTER_S));
      return c.text(
        isDatabaseUnavailable(err) ? databaseUnavailableMessage(err) : `The volume cannot be read now: ${systemErrorPhrase(err)}`,
        503,
      );
    }
    if (!volume || size === undefined) return c.text('No such volume', 404);
    const etag = `"${volume.sha256}"`;
    const maxAge = Math.max(0, Math.floor((checked.expiresAt - Date.now()) / 1000));
    c.header('ETag', etag);
    c.header('Cache-Control', `private, max-age=${maxAge}, immutable`);
    c.header('Accept-Ranges', 'bytes');
    c.header('Cross-Origin-Resource-Policy', 'cross-origin');
    c.header('Content-Type', 'application/octet-stream');
    // ?download=1: an attachment named by the link (`<case>_corrected_v3.nii.gz`), else inline
    const named = (c.req.param('name') ?? '').replace(/[^A-Za-z0-9._-]+/g, '_');
    const download = c.req.query('download') === '1';
    const fileName = named.endsWith('.nii.gz') ? named : `${volume.sha256.slice(0, 12)}.nii.gz`;
    c.header('Content-Disposition', `${download ? 'attachment' : 'inline'}; filename="${fileName}"`);
    if (
      c.req
        .header('if-none-match')
        ?.split(',')
        .some((t) => t.trim() === etag)
    )
      return c.body(null, 304);
    if (options.serve === 'redirect' && services.store.presignedGet) {
      // The link is short-lived and per request: the redirect itself is never cached.
      c.header('Cache-Control', 'no-store');
      c.header('Location', await services.store.presignedGet(volume.sha256, options.redirectTtlS ?? 300, fileName, download));
      return c.body(null, 302);
    }
    const range = parseRange(c.req.header('range'), size);
    if (range === 'bad') {
      c.header('Content-Range', `bytes */${size}`);
      return c.body(null, 416);
    }
    const head = c.req.method === 'HEAD';
    if (range) {
      c.header('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
      c.header('Content-Length', String(range.end - range.start + 1));
      if (head) return c.body(null, 206);
      return c.body(Readable.toWeb(services.store.stream(volume.sha256, range)) as ReadableStream, 206);
    }
    c.header('Content-Length', String(size));
    if (head) return c.body(null, 200);
    return c.body(Readable.toWeb(services.store.stream(volume.sha256)) as ReadableStream, 200);
  };
  app.get('/files/v/:token', handler);
  app.get('/files/v/:token/:name', handler);
  return app;
}
