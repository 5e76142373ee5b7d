import { randomBytes } from 'node:crypto';
import { isDomainError, unavailable, unprocessable } from '../errors.js';
import { type MultipartSink, readMultipart } from './multipart.js';
import type { PacsStudyView } from '../../shared/pacs.js';

/**
 * A DICOMweb client (PS3.18) for the one PACS a deployment names (`PACS_URL`, optional
 * `PACS_AUTHORIZATION`): QIDO-RS study search, WADO-RS retrieval of a study's instances, STOW-RS
 * of a Part 10 file. A PACS that cannot be reached, times out or refuses is an `unavailable`
 * error whose message names what the PACS said (never the authorization).
 */

export interface PacsConfig {
  url: string;
  authorization?: string | undefined;
  timeoutMs: number;
  fetch?: typeof fetch;
}

/** A study as QIDO-RS lists it (the DICOM JSON model's values, PS3.18 F.2): the view the API answers. */
export type PacsStudy = PacsStudyView;

type DicomJson = Record<string, { vr: string; Value?: unknown[] }>;
const value = (d: DicomJson, tag: string) => d[tag]?.Value?.[0];
const str = (d: DicomJson, tag: string) => {
  const v = value(d, tag);
  return typeof v === 'string' ? v : null;
};
const int = (d: DicomJson, tag: string) => {
  const v = Number(value(d, tag));
  return Number.isFinite(v) ? v : null;
};

export class DicomWebClient {
  constructor(private readonly config: PacsConfig) {}

  private async request(path: string, init: RequestInit & { what: string }): Promise<Response> {
    const url = `${this.config.url.replace(/\/+$/, '')}${path}`;
    const headers = new Headers(init.headers);
    if (this.config.authorization) headers.set('authorization', this.config.authorization);
    let res: Response;
    try {
      res = await (this.config.fetch ?? fetch)(url, { ...init, headers, signal: AbortSignal.timeout(this.config.timeoutMs) });
    } catch (err) {
      const why =
        (err as Error).name === 'TimeoutError' ? `no answer in ${Math.round(this.config.timeoutMs / 1000)} s` : (err as Error).message;
      throw unavailable(`The PACS cannot be reached for ${init.what} (${why})`, 30);
    }
    if (!res.ok) {
      const text = (await res.text().catch(() => '')).replace(/\s+/g, ' ').slice(0, 200);
      const hint = res.status === 401 || res.status === 403 ? ' — check PACS_AUTHORIZATION' : '';
      throw unavailable(`The PACS refused ${init.what}: HTTP ${res.status}${text ? ` (${text})` : ''}${hint}`, 30);
    }
    return res;
  }

  /** QIDO-RS: studies matching the filters (DICOM attribute keywords: PatientID, StudyDate, ModalitiesInStudy, …). */
  async searchStudies(filters: Record<string, string>, limit = 50): Promise<PacsStudy[]> {
    const q = new URLSearchParams({ ...filters, limit: String(limit), includefield: '00080061,00201206,00201208' });
    const res = await this.request(`/studies?${q}`, {
      method: 'GET',
      headers: { accept: 'application/dicom+json' },
      what: 'a study search',
    });
    const text = await res.text();
    const rows = (text.trim() ? JSON.parse(text) : []) as DicomJson[];
    return rows.map((d) => ({
      studyInstanceUid: str(d, '0020000D') ?? '',
      studyDate: str(d, '00080020'),
      studyDescription: str(d, '00081030'),
      modalities: (d['00080061']?.Value ?? []).filter((m): m is string => typeof m === 'string'),
      series: int(d, '00201206'),
      instances: int(d, '00201208'),
    }));
  }

  /** QIDO-RS: the series of a study (uid, modality, number) — to check what a PACS holds. */
  async searchSeries(studyUid: string): Promise<{ seriesInstanceUid: string; modality: string | null; seriesNumber: number | null }[]> {
    const res = await this.request(`/studies/${encodeURIComponent(studyUid)}/series`, {
      method: 'GET',
      headers: { accept: 'application/dicom+json' },
      what: 'a series search',
    });
    const text = await res.text();
    return ((text.trim() ? JSON.parse(text) : []) as DicomJson[]).map((d) => ({
      seriesInstanceUid: str(d, '0020000E') ?? '',
      modality: str(d, '00080060'),
      seriesNumber: int(d, '00200011'),
    }));
  }

  /**
   * WADO-RS: every instance of a study, streamed part by part into `sink` as the answer arrives
   * (never held whole); what the sink throws (a limit) cuts the answer off. Answers the instance count.
   */
  async retrieveStudy(studyUid: string, sink: MultipartSink): Promise<number> {
    const what = `the retrieval of study ${studyUid}`;
    const res = await this.request(`/studies/${encodeURIComponent(studyUid)}`, {
      method: 'GET',
      headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
      what,
    });
    const type = res.headers.get('content-type') ?? '';
    const boundary = /boundary="?([^";]+)"?/i.exec(type)?.[1];
    if (!/^multipart\/related/i.test(type) || !boundary || !res.body) {
      await res.body?.cancel().catch(() => undefined);
      throw unprocessable(`The PACS answered the retrieval with ${type || 'no content type'}, not multipart/related DICOM`);
    }
    try {
      return await readMultipart(chunksOf(res.body), boundary, sink, what);
    } catch (err) {
      if (isDomainError(err)) throw err;
      const why =
        (err as Error).name === 'TimeoutError' ? `no answer in ${Math.round(this.config.timeoutMs / 1000)} s` : (err as Error).message;
      throw unavailable(`The PACS's answer to ${what} broke off (${why})`, 30);
    }
  }

  /** STOW-RS: stores Part 10 files (into their study); answers the PACS's failed SOP instances, if any. */
  async store(files: Uint8Array[]): Promise<void> {
    const boundary = `strokeview-${randomBytes(12).toString('hex')}`;
    const chunks: Uint8Array[] = [];
    for (const f of files) {
      chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), f, Buffer.from('\r\n'));
    }
    chunks.push(Buffer.from(`--${boundary}--\r\n`));
    const res = await this.request('/studies', {
      method: 'POST',
      headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`, accept: 'application/dicom+json' },
      body: Buffer.concat(chunks),
      what: 'the storage (STOW-RS)',
    });
    const text = await res.text();
    const answer = (text.trim().startsWith('{') ? JSON.parse(text) : {}) as DicomJson;
    // FailedSOPSequence (0008,1198): the PACS took the request but not every instance.
    const failed = answer['00081198']?.Value ?? [];
    if (failed.length > 0) {
      const reason = int(failed[0] as DicomJson, '00081197');
      throw unavailable(`The PACS refused ${failed.length} of ${files.length} instance(s) (failure reason ${reason ?? 'unknown'})`, 30);
    }
  }
}

/** A response body's chunks; leaving early (a limit, a bad part) cancels the rest of the answer, unread. */
async function* chunksOf(body: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

/** The bodies of a multipart/related message held whole (tests read small answers with it; a study is streamed by readMultipart). */
export function splitMultipart(body: Buffer, boundary: string): Uint8Array[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Uint8Array[] = [];
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const next = body.indexOf(delimiter, start);
    if (next < 0) break;
    const headerEnd = body.indexOf('\r\n\r\n', start);
    if (headerEnd > 0 && headerEnd < next) {
      let end = next;
      if (body[end - 2] === 0x0d && body[end - 1] === 0x0a) end -= 2;
      parts.push(body.subarray(headerEnd + 4, end));
    }
    at = next;
  }
  return parts;
}

export function pacsClient(env: { PACS_URL?: string | undefined; PACS_AUTHORIZATION?: string | undefined; PACS_TIMEOUT_S: number }) {
  if (!env.PACS_URL) return null;
  return new DicomWebClient({ url: env.PACS_URL, authorization: env.PACS_AUTHORIZATION, timeoutMs: env.PACS_TIMEOUT_S * 1000 });
}
