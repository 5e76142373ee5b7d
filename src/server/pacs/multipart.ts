import { unprocessable } from '../errors.js';

/**
 * A streaming reader of a multipart/related body (RFC 2046 §5.1, the WADO-RS answer of PS3.18
 * 8.6): each part's bytes are handed on as they arrive, so a study of any size passes through a
 * few chunks of memory. busboy (in node_modules) reads only multipart/form-data — it skips parts
 * without a `Content-Disposition: form-data`, which WADO-RS parts never have — and dicer is a
 * deprecated dev dependency, so this is a small boundary splitter over Buffer.indexOf: it keeps
 * back only the last delimiter-length bytes of a chunk (a delimiter may straddle two chunks).
 * What the sink throws (a limit) stops the reading, and so cancels the response.
 */

export interface MultipartSink {
  /** A part begins (0-based), with its headers (names lower-cased). */
  start(index: number, headers: Record<string, string>): Promise<void> | void;
  data(chunk: Buffer): Promise<void> | void;
  end(index: number): Promise<void> | void;
}

/** A part's headers may take at most this many bytes (Node's own HTTP header cap). */
export const MAX_PART_HEADER_BYTES = 16 * 1024;
/** Bytes before the first delimiter (a preamble) tolerated. */
const MAX_PREAMBLE_BYTES = 64 * 1024;

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

function parseHeaders(block: Buffer): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of block.toString('latin1').split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** Reads `body` to its closing delimiter, part by part, into `sink`; answers the number of parts. A malformed or cut body is a 422. */
export async function readMultipart(body: AsyncIterable<Uint8Array>, boundary: string, sink: MultipartSink, what: string): Promise<number> {
  // The first delimiter may open the body without a CRLF before it: one is put in front.
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  const keep = delimiter.length - 1;
  let state: 'preamble' | 'after-delimiter' | 'headers' | 'body' | 'done' = 'preamble';
  let buf: Buffer = Buffer.from(CRLF);
  let seen = 0;
  let parts = 0;
  const malformed = (why: string) => unprocessable(`The PACS's answer to ${what} is not a valid multipart/related body: ${why}`);

  for await (const chunk of body) {
    buf = buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([buf, chunk]);
    seen += chunk.length;
    for (;;) {
      if (state === 'preamble') {
        const at = buf.indexOf(delimiter);
        if (at < 0) {
          if (seen > MAX_PREAMBLE_BYTES) throw malformed(`no boundary "${boundary}" in its first ${MAX_PREAMBLE_BYTES / 1024} KiB`);
          buf = buf.subarray(Math.max(0, buf.length - keep));
          break;
        }
        buf = buf.subarray(at + delimiter.length);
        state = 'after-delimiter';
      } else if (state === 'after-delimiter') {
        // "--" closes the body; else optional transport padding, then CRLF and the next part's headers.
        if (buf.length < 2) break;
        if (buf[0] === 0x2d && buf[1] === 0x2d) {
          state = 'done';
          break;
        }
        let i = 0;
        while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x09)) i++;
        if (buf.length - i < 2) {
          if (i > 256) throw malformed('padding after a boundary runs on');
          break;
        }
        if (buf[i] !== 0x0d || buf[i + 1] !== 0x0a) throw malformed('a boundary is not followed by a line break');
        buf = buf.subarray(i + 2);
        state = 'headers';
      } else if (state === 'headers') {
        // No headers at all: the blank line comes at once.
        const end = buf.subarray(0, 2).equals(CRLF) ? -2 : buf.indexOf(HEADER_END);
        if (end === -1) {
          if (buf.length > MAX_PART_HEADER_BYTES) throw malformed(`a part's headers exceed ${MAX_PART_HEADER_BYTES / 1024} KiB`);
          break;
        }
        const headers = end === -2 ? {} : parseHeaders(buf.subarray(0, end));
        if (end > MAX_PART_HEADER_BYTES) throw malformed(`a part's headers exceed ${MAX_PART_HEADER_BYTES / 1024} KiB`);
        buf = buf.subarray(end === -2 ? 2 : end + HEADER_END.length);
        await sink.start(parts, headers);
        state = 'body';
      } else if (state === 'body') {
        const at = buf.indexOf(delimiter);
        if (at >= 0) {
          if (at > 0) await sink.data(buf.subarray(0, at));
          await sink.end(parts++);
          buf = buf.subarray(at + delimiter.length);
          state = 'after-delimiter';
          continue;
        }
        if (buf.length > keep) {
          await sink.data(buf.subarray(0, buf.length - keep));
          buf = buf.subarray(buf.length - keep);
        }
        break;
      } else {
        break;
      }
    }
    if (state === 'done') break;
  }
  if (state !== 'done') {
    throw malformed(state === 'body' ? `it ended in the middle of part ${parts + 1}` : 'it ended before its closing boundary');
  }
  return parts;
}
