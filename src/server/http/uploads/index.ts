import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { createWriteStream } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import { KiB, MiB } from '../../../shared/units.js';
import type { Context, MiddlewareHandler } from 'hono';
import { type ErrorFormat, errorResponse } from '../../error-shapes.js';
import {
  type DomainError,
  invalid,
  isDomainError,
  systemErrorPhrase,
  timedOut,
  tooLarge,
  tooMany,
  unauthorized,
  unavailable,
} from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { FleetLeases } from '../../limits/leases.js';

/** A file part of an upload, already on disk under the upload folder. */
export interface UploadedFile {
  path: string;
  bytes: number;
  filename: string;
}

export interface StreamedUpload {
  fields: Record<string, string>;
  /** File parts by field, for fields sent once. */
  files: Record<string, UploadedFile>;
  /** Every part of a repeatable field (`files` of a DICOM import), in the order they arrived. */
  lists: Record<string, UploadedFile[]>;
  /** This upload's own spool folder (removed after the handler returns, with whatever it put there). */
  folder: string;
}

export interface StreamingUploadOptions<A> {
  /** Where uploads are spooled while they arrive (`DATA_DIR/uploads`); each upload gets its own folder. */
  dir: string;
  /** The most bytes all files of one upload may hold together (may depend on who uploads). */
  maxBytes: number | ((auth: A) => number);
  /** File parts one upload may hold (default 8); past it the upload is cut with 413. */
  maxFiles?: number;
  /** File fields that may repeat (each part kept, in order, in `lists`): a folder of DICOM files. */
  repeatable?: readonly string[];
  /** Uploads processed at once (shared by every upload route of the app); beyond that, 503 with Retry-After. */
  slots: UploadSlots;
  /**
   * The same caps across every replica (leases in the database): uploads in flight in the whole
   * fleet (`maxInFlight`), and the holder's own limit counted fleet-wide too.
   */
  fleet?: { leases: FleetLeases; maxInFlight: number };
  /** Who holds a slot and how many they may hold at once (an account: MAX_UPLOADS_PER_USER, a guest 1). */
  holder: (auth: A) => { key: string; limit: number };
  /** A body that sends nothing for this long is cut with 408, freeing its slot. */
  idleTimeoutMs: number;
  /** The caller's surface: refusals are answered in tRPC's error shape or REST's. */
  format: ErrorFormat;
  /** The procedure the upload is for (named in tRPC error shapes and logs). */
  procedure: string;
  log?: Logger;
  /** Who is uploading — checked before a byte of the body is read; null refuses with 401. */
  authorize: (c: Context) => Promise<A | null>;
  /** Handles the upload once every part is on disk; the folder is removed after it returns. */
  handle: (c: Context, upload: StreamedUpload, auth: A) => Promise<Response>;
}

/** Room for a multipart body's part headers and text fields on top of its files. */
export const MULTIPART_OVERHEAD = 64 * KiB;

/** Uploads in flight in this process, counted across every upload route (MAX_CONCURRENT_UPLOADS), and per holder. */
export interface UploadSlots {
  readonly max: number;
  inFlight: number;
  readonly byHolder: Map<string, number>;
}

export const uploadSlots = (max: number): UploadSlots => ({ max, inFlight: 0, byHolder: new Map() });

class IdleBody extends Error {}

class TooLarge extends Error {}

class TooManyFiles extends Error {
  constructor(readonly max: number) {
    super('too many files');
  }
}

/** Room for part headers: the fixed overhead, and a part header's worth per file past the first eight. */
const overheadOf = (maxFiles = 8) => MULTIPART_OVERHEAD + Math.max(0, maxFiles - 8) * 512;

const DISK_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EACCES', 'EPERM', 'EMFILE']);

/**
 * Streams a multipart upload to disk as it arrives instead of holding it in memory: file parts
 * go to a fresh folder under `dir`, the size cap is enforced while streaming (the request is cut
 * at the first byte past it), and the folder — whatever happened — is removed after `handle`, so
 * a failed or aborted upload leaves nothing behind. Validation then reads the files in the CPU pool.
 */
export function streamingUpload<A>(options: StreamingUploadOptions<A>): MiddlewareHandler {
  const { slots } = options;
  const answer = (c: Context, err: unknown) => errorResponse(c, options.format, err, { path: options.procedure, log: options.log });
  // Refused before its body was read: a small declared body is read and dropped first, so the
  // client finishes sending and reads the answer (closing on unread bytes resets the connection:
  // a browser would show a network error instead of the message). Large or chunked ones are not.
  const refuse = async (c: Context, err: unknown) => {
    await discardSmallBody(c);
    return answer(c, err);
  };
  return async function streamingUploadHandler(c) {
    // Checked before authenticating (a full server spends no database query) and again after,
    // since other uploads may have taken the last slot meanwhile.
    if (slots.inFlight >= slots.max) {
      return refuse(c, unavailable(`The server is processing ${slots.inFlight} uploads; try again in a few seconds`, 5));
    }
    let auth: A | null;
    try {
      auth = await options.authorize(c);
    } catch (err) {
      // e.g. the database is down: who is uploading cannot be known yet; a 503 the client retries
      return refuse(c, err);
    }
    if (auth === null) return refuse(c, unauthorized('Sign in to continue'));
    const type = c.req.header('content-type') ?? '';
    if (!type.toLowerCase().startsWith('multipart/form-data') || !hasBody(c)) {
      return refuse(c, invalid('Send the files as multipart/form-data'));
    }
    const maxBytes = typeof options.maxBytes === 'function' ? options.maxBytes(auth) : options.maxBytes;
    if (slots.inFlight >= slots.max) {
      return refuse(c, unavailable(`The server is processing ${slots.inFlight} uploads; try again in a few seconds`, 5));
    }
    // A declared length past this caller's cap is refused before reading (the client hears 413,
    // not a reset mid-body); a chunked body is capped while it streams.
    const declared = Number(c.req.header('content-length'));
    if (!c.req.header('transfer-encoding') && declared > maxBytes + overheadOf(options.maxFiles)) {
      return refuse(c, tooLarge(`The upload is larger than ${Math.round(maxBytes / MiB)} MiB`));
    }
    const holder = options.holder(auth);
    const held = slots.byHolder.get(holder.key) ?? 0;
    if (held >= holder.limit) {
      return refuse(
        c,
        tooMany(`You have ${held} upload${held > 1 ? 's' : ''} in progress; wait for ${held > 1 ? 'one' : 'it'} to finish`, 5),
      );
    }
    let releaseLease: (() => void) | undefined;
    if (options.fleet) {
      const { maxInFlight } = options.fleet;
      try {
        releaseLease = await options.fleet.leases.acquire([
          {
            key: 'fleet',
            limit: maxInFlight,
            refuse: (_limit, n) => unavailable(`The service is processing ${n} uploads; try again in a few seconds`, 5),
          },
          {
            key: `holder:${holder.key}`,
            limit: holder.limit,
            refuse: (_limit, n) =>
              tooMany(`You have ${n} upload${n > 1 ? 's' : ''} in progress; wait for ${n > 1 ? 'one' : 'it'} to finish`, 5),
          },
        ]);
      } catch (err) {
        return refuse(c, err);
      }
    }
    slots.byHolder.set(holder.key, held + 1);
    slots.inFlight++;
    const folder = path.join(options.dir, `${Date.now()}-${randomBytes(6).toString('hex')}`);
    try {
      let upload: StreamedUpload;
      try {
        await mkdir(folder, { recursive: true });
        upload = await receive(c, type, folder, maxBytes, options.idleTimeoutMs, {
          maxFiles: options.maxFiles ?? 8,
          repeatable: new Set(options.repeatable ?? []),
        });
      } catch (err) {
        return answer(c, receiveError(err, maxBytes));
      }
      return await options.handle(c, upload, auth);
    } finally {
      releaseLease?.();
      slots.inFlight--;
      const left = (slots.byHolder.get(holder.key) ?? 1) - 1;
      if (left > 0) slots.byHolder.set(holder.key, left);
      else slots.byHolder.delete(holder.key);
      await rm(folder, { recursive: true, force: true });
    }
  };
}

/** Bodies up to this size are read and dropped before a refusal (see `refuse`). */
const DISCARD_MAX_BYTES = 16 * MiB;

async function discardSmallBody(c: Context): Promise<void> {
  const declared = Number(c.req.header('content-length'));
  const body = c.req.raw.body;
  if (!body || c.req.header('transfer-encoding') || !(declared <= DISCARD_MAX_BYTES)) return;
  const reader = body.getReader();
  try {
    for (;;) if ((await reader.read()).done) return;
  } catch {
    // the client went away: nothing to answer
  }
}

/** Why receiving failed, as the person should read it: too large, the server's disk, or a body that is not a well-formed upload. */
function receiveError(err: unknown, maxBytes: number): DomainError {
  if (err instanceof TooLarge) return tooLarge(`The upload is larger than ${Math.round(maxBytes / MiB)} MiB`);
  if (err instanceof TooManyFiles)
    return tooLarge(`The upload holds more than ${err.max} files; send one study at a time, or a .zip`, { field: 'files' });
  if (err instanceof IdleBody) return timedOut(err.message);
  if (isDomainError(err)) return err;
  // Spooling failed on our side (a full disk): not the client's fault, and no system text.
  if (DISK_ERRORS.has((err as NodeJS.ErrnoException).code ?? '')) {
    return unavailable(`The upload could not be stored: ${systemErrorPhrase(err)}; try again later`, 60);
  }
  return invalid(`The upload could not be read: ${(err as Error).message}`);
}

/** The socket's IncomingMessage when nothing has touched its body yet (reading `c.req.raw.body` would wrap it in a Web stream). */
function unreadIncoming(c: Context): IncomingMessage | undefined {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  // Bytes may already wait in its buffer (readableLength): they are unread until something reads, pipes or resumes it.
  // A client gone before we read (destroyed while we authenticated) would pipe nothing, not even an
  // end: the Web stream's path answers that at once with its premature close, as before.
  const unread = incoming instanceof Readable && incoming.readableFlowing === null && !incoming.readableDidRead;
  return unread && !incoming.destroyed && !incoming.errored ? incoming : undefined;
}

/** Whether the request has a body at all (without touching it: see `unreadIncoming`). */
function hasBody(c: Context): boolean {
  if (unreadIncoming(c)) return Number(c.req.header('content-length')) > 0 || c.req.header('transfer-encoding') !== undefined;
  return c.req.raw.body !== null;
}

/**
 * The request's body as a Node stream. Served by @hono/node-server, that is the socket's own
 * IncomingMessage when nothing has started reading it: no Web-stream wrapping and unwrapping per
 * chunk (an 8 MB upload spooled in ≈ 40 ms that way against ≈ 65 ms through the Web stream).
 * Elsewhere (app.request in tests, another runtime) the Web stream, converted.
 */
function requestBody(c: Context): Readable {
  return unreadIncoming(c) ?? Readable.fromWeb(c.req.raw.body as never);
}

async function receive(
  c: Context,
  contentType: string,
  folder: string,
  maxBytes: number,
  idleTimeoutMs: number,
  shape: { maxFiles: number; repeatable: Set<string> },
): Promise<StreamedUpload> {
  const fields: Record<string, string> = {};
  const files: Record<string, UploadedFile> = {};
  const lists: Record<string, UploadedFile[]> = {};
  const writes: Promise<void>[] = [];
  let total = 0;
  let parts = 0;
  const parser = busboy({
    headers: { 'content-type': contentType },
    // The client's relative path (a folder upload's `DICOM/IM_0001`) is kept for messages only:
    // it never reaches the filesystem (parts get server-made names below).
    preservePath: true,
    limits: { files: shape.maxFiles, fields: 16, fieldSize: 64 * 1024, parts: shape.maxFiles + 16, fileSize: maxBytes + 1 },
  });
  const abort = new AbortController();
  // Each file part's write listens to it (a DICOM folder: thousands of parts).
  setMaxListeners(shape.maxFiles + 16, abort.signal);
  const failed = new Promise<never>((_, reject) => {
    parser.on('error', reject);
    // Past a limit, stop reading the body too (the abort unpipes it): nothing more is spooled.
    parser.on('filesLimit', () => abort.abort(new TooManyFiles(shape.maxFiles)));
    parser.on('partsLimit', () => abort.abort(new Error('too many parts')));
    abort.signal.addEventListener('abort', () => reject(abort.signal.reason));
  });
  failed.catch(() => {});
  parser.on('field', (name, value) => {
    fields[name] = value;
  });
  parser.on('file', (name, stream, info) => {
    const repeated = shape.repeatable.has(name);
    if (!/^[a-z]{1,16}$/.test(name) || (files[name] && !repeated)) {
      stream.resume();
      abort.abort(new Error(`unexpected file field "${name.slice(0, 20)}"`));
      return;
    }
    // Server-generated names only: nothing the client sends reaches the filesystem.
    const file: UploadedFile = {
      path: path.join(folder, repeated ? `${name}-${parts++}.part` : `${name}.part`),
      bytes: 0,
      filename: info.filename ?? '',
    };
    if (repeated) (lists[name] ??= []).push(file);
    else files[name] = file;
    stream.on('data', (chunk: Buffer) => {
      file.bytes += chunk.length;
      total += chunk.length;
      if (total > maxBytes) abort.abort(new TooLarge());
    });
    const written = pipeline(stream, createWriteStream(file.path), { signal: abort.signal });
    written.catch(() => {}); // an abort is reported once, by `failed`
    writes.push(written);
  });
  const body = requestBody(c);
  const finished = new Promise<void>((resolve) => parser.on('close', resolve));
  body.on('error', (err) => abort.abort(err));
  // A client that stops sending holds a slot until Node's own timeout (minutes): cut it sooner.
  const idleMessage = `No data arrived for ${Math.round(idleTimeoutMs / 1000)} s; the upload was stopped`;
  let idle = setTimeout(() => abort.abort(new IdleBody(idleMessage)), idleTimeoutMs);
  body.on('data', () => {
    if (abort.signal.aborted) return; // what is drained after a refusal restarts no timer
    clearTimeout(idle);
    idle = setTimeout(() => abort.abort(new IdleBody(idleMessage)), idleTimeoutMs);
  });
  abort.signal.addEventListener('abort', () => clearTimeout(idle));
  // Past the cap (or on any failure) stop reading the request: the rest is never spooled.
  abort.signal.addEventListener('abort', () => body.unpipe(parser));
  body.pipe(parser);
  try {
    await Promise.race([finished, failed]);
    await Promise.race([Promise.all(writes), failed]);
  } finally {
    clearTimeout(idle);
  }
  if (abort.signal.aborted) throw abort.signal.reason;
  return { fields, files, lists, folder };
}
