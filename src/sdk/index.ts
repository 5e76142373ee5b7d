/**
 * @strokeview/sdk — the typed client for a strokeview server, for Node ≥ 20, browsers, Deno and
 * Bun (anywhere fetch exists). Framework-free; no server code at run time.
 *
 *   const sv = createClient({ url: 'http://localhost:7860', token: process.env.STROKEVIEW_TOKEN });
 *   const job = await sv.segment(caseId, { onProgress: (e) => console.log(e.progress, e.message) });
 *   await sv.download(job.result!.mask, 'mask.nii.gz');
 */
import type { inferRouterInputs, inferRouterOutputs } from '@trpc/server';
import { type JobStatus, isTerminal } from '../shared/job-status.js';
import { type ClientOptions, type TrpcClient, createTrpcClient } from './client.js';
import { StrokeviewError } from './errors.js';
import type { AppRouter } from './router.js';

export { StrokeviewError, type StrokeviewErrorCode } from './errors.js';
export type { ClientOptions } from './client.js';
export type { AppRouter } from './router.js';
export { RETRY_POLICY } from '../shared/retry.js';

export type RouterInputs = inferRouterInputs<AppRouter>;
export type RouterOutputs = inferRouterOutputs<AppRouter>;
export type JobView = RouterOutputs['jobs']['byId'];
export type CaseDetail = RouterOutputs['cases']['byId'];
export type CaseSummary = RouterOutputs['cases']['list']['items'][number];
export type VolumeDescriptor = CaseDetail['volumes'][number];
export type ModelInfo = RouterOutputs['models']['list'][number];
export type MaskVersionView = RouterOutputs['masks']['byId'];
export type Metrics = NonNullable<JobView['result']>['metrics'];
export type DicomUploadResult = RouterOutputs['cases']['uploadDicom'];
export type DicomImportReport = DicomUploadResult['import'];
/** What a DICOM SEG is made from: a job's mask (the model's result) or a saved corrected version. */
export type SegSource = RouterInputs['masks']['exportSeg'];
/** A "send to PACS" of a DICOM SEG: status, attempts, the PACS's last answer, the SEG's UIDs once stored. */
export type PacsPush = RouterOutputs['pacs']['pushes']['byId'];
export type PacsStudy = RouterOutputs['pacs']['search'][number];
/** A DICOM SEG's facts (without the base64 file the procedure returns). */
export type SegExport = Omit<RouterOutputs['masks']['exportSeg'], 'data'>;

/** A study run with its row per case (each case's job status and metrics). */
export type StudyRunDetail = RouterOutputs['studies']['runs']['byId'];
/** A study run's progress: N/M succeeded, failed, cancelled, the ETA. */
export type StudyRunSummary = RouterOutputs['studies']['runs']['list'][number];
export type RunStudyInput = RouterInputs['studies']['run'];

export interface RunStudyOptions {
  /** The model to run (the server's default model otherwise). */
  modelId?: string;
  /** Only these cases of the study. */
  caseIds?: string[];
  /** Queue every case again, even those with a result of this model already. */
  rerun?: boolean;
  /** Each change of the run (counts, progress, ETA). */
  onProgress?: (run: StudyRunSummary) => void;
  /** Aborting cancels the rest of the run on the server and rejects with code ABORTED. */
  signal?: AbortSignal;
  /** Polling interval when the progress stream is unavailable (default 2000 ms). */
  pollIntervalMs?: number;
}

export interface StudyExportOptions {
  /** `csv`: the study table, one row per case × run; `bids`: a zip of BIDS derivatives. */
  format: 'csv' | 'bids';
  /** One run (by default the newest run of each model). */
  runId?: string;
  /** BIDS: add each rater's latest corrected mask. */
  corrected?: boolean;
}

/** One live update of a job, as the progress stream (or polling) reports it. */
export interface JobProgress {
  id: string;
  status: JobStatus;
  progress: number;
  message: string;
}

/** A file for an upload: a path (Node, Deno, Bun), a Blob/File (browsers too) or raw bytes. */
export type FileInput = string | Blob | Uint8Array;

export interface UploadCaseInput {
  name: string;
  dwi: FileInput;
  adc: FileInput;
  flair?: FileInput;
  /** A ground-truth mask: jobs on the case then report Dice and the other ISLES metrics. */
  mask?: FileInput;
}

export interface UploadDicomInput {
  /**
   * The study: a folder (Node, Deno, Bun: its files, recursively, dot-files left out), a `.zip`
   * path, or files (paths, Blobs/Files, bytes) — DICOM files or zips of them.
   */
  source: string | FileInput[];
  /** Case name (default: the DWI series' description). */
  name?: string;
  /** Which series becomes which role: a series number or SeriesInstanceUID; `adc: 'computed'`, `flair: 'none'`. */
  series?: { dwi?: string; adc?: string; flair?: string };
  /** Report the series and the roles they would get, store nothing. */
  dryRun?: boolean;
}

export interface SegmentOptions {
  /** Models to run (several: a majority-vote ensemble); the server's default model otherwise. */
  modelIds?: string[];
  onProgress?: (progress: JobProgress) => void;
  /** Aborting cancels the job on the server and rejects with code ABORTED. */
  signal?: AbortSignal;
  /** The same key returns the same job (a retried call never queues twice); random by default. */
  idempotencyKey?: string;
  /** Polling interval when the progress stream is unavailable (default 1000 ms). */
  pollIntervalMs?: number;
}

export interface WaitOptions {
  onProgress?: (progress: JobProgress) => void;
  signal?: AbortSignal;
  pollIntervalMs?: number;
}

export interface Helpers {
  /** The server's base URL. */
  readonly url: string;
  /**
   * Queues a segmentation of a case and resolves with the finished job (mask and metrics).
   * Rejects with a StrokeviewError: JOB_FAILED / JOB_CANCELLED (`error.job` holds the job), ABORTED.
   */
  segment(caseId: string, opts?: SegmentOptions): Promise<JobView>;
  /** Waits for a job to end: the progress stream, falling back to polling if the stream fails. */
  waitForJob(jobId: string, opts?: WaitOptions): Promise<JobView>;
  /**
   * Runs a model over a study's cases (one study run: a job per case, earlier results of the same
   * model reused unless `rerun`) and resolves with the finished run — whatever its status; look at
   * `status` and each case's row. Aborting `signal` cancels the rest of the run.
   */
  runStudy(studyId: string, opts?: RunStudyOptions): Promise<StudyRunDetail>;
  /** Waits for a study run to end: its progress stream, falling back to polling if the stream fails. */
  waitForRun(runId: string, opts?: Pick<RunStudyOptions, 'onProgress' | 'signal' | 'pollIntervalMs'>): Promise<StudyRunDetail>;
  /**
   * A study's table as CSV or its results as a BIDS derivatives zip (GET /api/studies/{id}/table.csv
   * or bids.zip). With a path (Node, Deno, Bun) it streams to that file; without one it returns the bytes.
   */
  exportStudy(studyId: string, o: StudyExportOptions, path: string): Promise<{ path: string; bytes: number }>;
  exportStudy(studyId: string, o: StudyExportOptions): Promise<Uint8Array>;
  /** Uploads a case (.nii or .nii.gz files); every file is checked before anything is stored. */
  uploadCase(input: UploadCaseInput): Promise<CaseDetail>;
  /**
   * Uploads a DICOM study (a folder, a zip, or files): converted on the server (dcm2niix), the
   * trace DWI and ADC made from the diffusion series; resolves with the case (null on a dry run)
   * and the import report — which series became which role and why, warnings, skipped files.
   */
  uploadDicom(input: UploadDicomInput): Promise<DicomUploadResult>;
  /**
   * A job's mask or a corrected version of a DICOM-imported case as a DICOM SEG (binary, one
   * "Infarct" segment, referencing the source series). With a path (Node, Deno, Bun) it writes
   * the file there; without one it returns the bytes. A case uploaded as NIfTI: UNPROCESSABLE_CONTENT.
   */
  exportSeg(source: SegSource, path: string): Promise<SegExport & { path: string; bytes: number }>;
  exportSeg(source: SegSource): Promise<SegExport & { data: Uint8Array }>;
  /**
   * Sends a job's mask or a corrected version to the server's PACS as a DICOM SEG (STOW-RS, a
   * durable job the server retries) and waits until it is stored or has failed; `onUpdate` sees
   * each state (with the PACS's answer while it retries). Resolves with the final push either way.
   */
  pushToPacs(source: SegSource, o?: { onUpdate?: (p: PacsPush) => void; pollIntervalMs?: number; signal?: AbortSignal }): Promise<PacsPush>;
  /**
   * Downloads a volume (or mask) file. With a path (Node, Deno, Bun) it streams to that file and
   * returns its size; without one it returns the bytes.
   */
  download(
    volume: Pick<VolumeDescriptor, 'downloadUrl'> | { url: string } | string,
    path: string,
  ): Promise<{ path: string; bytes: number }>;
  download(volume: Pick<VolumeDescriptor, 'downloadUrl'> | { url: string } | string): Promise<Uint8Array>;
}

export type StrokeviewClient = TrpcClient & Helpers;

function abortError(): StrokeviewError {
  return new StrokeviewError('Aborted', { code: 'ABORTED' });
}

async function toBlob(input: FileInput): Promise<Blob> {
  if (typeof input !== 'string') return input instanceof Blob ? input : new Blob([input as Uint8Array<ArrayBuffer>]);
  // A path: a file-backed Blob (not read into memory first) where the runtime has one.
  const fs = await import('node:fs');
  const { basename } = await import('node:path');
  if (!fs.existsSync(input)) throw new StrokeviewError(`No such file: ${input}`, { code: 'BAD_REQUEST' });
  const blob = await fs.openAsBlob(input);
  return new File([blob], basename(input));
}

function fileName(input: FileInput, role: string): string {
  if (typeof input === 'string') return input.split(/[\\/]/).pop() ?? `${role}.nii.gz`;
  if (typeof File !== 'undefined' && input instanceof File) return input.name;
  return `${role}.nii.gz`;
}

/** The parts of a DICOM upload: a folder's files (named by their path inside it), or the given files. */
async function dicomParts(source: string | FileInput[]): Promise<{ blob: Blob; name: string }[]> {
  if (Array.isArray(source)) {
    const nameOf = (f: FileInput, i: number) =>
      typeof f === 'string' ? (f.split(/[\\/]/).pop() ?? f) : typeof File !== 'undefined' && f instanceof File ? f.name : `file-${i + 1}`;
    return Promise.all(source.map(async (f, i) => ({ blob: await toBlob(f), name: nameOf(f, i) })));
  }
  const fs = await import('node:fs');
  const nodePath = await import('node:path');
  if (!fs.existsSync(source)) throw new StrokeviewError(`No such file or folder: ${source}`, { code: 'BAD_REQUEST' });
  if (!fs.statSync(source).isDirectory()) return [{ blob: await toBlob(source), name: nodePath.basename(source) }];
  const out: { blob: Blob; name: string }[] = [];
  const walk = async (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (entry.name.startsWith('.')) continue;
      const full = nodePath.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile())
        out.push({ blob: await fs.openAsBlob(full), name: nodePath.relative(source, full).split(nodePath.sep).join('/') });
    }
  };
  await walk(source);
  if (out.length === 0) throw new StrokeviewError(`${source} holds no files`, { code: 'BAD_REQUEST' });
  return out;
}

/** A response's body: its bytes, or streamed to a file (Node, Deno, Bun) with its size. */
async function saveBody(res: Response, path?: string): Promise<Uint8Array | { path: string; bytes: number }> {
  if (path === undefined) return new Uint8Array(await res.arrayBuffer());
  const { createWriteStream } = await import('node:fs');
  const { Readable } = await import('node:stream');
  const { pipeline } = await import('node:stream/promises');
  let bytes = 0;
  const counted = Readable.fromWeb(res.body as never).on('data', (chunk: Buffer) => (bytes += chunk.length));
  await pipeline(counted, createWriteStream(path));
  return { path, bytes };
}

/** Creates a client: the typed tRPC client (`client.cases.list.query()` …) plus the helpers above. */
export function createClient(opts: ClientOptions): StrokeviewClient {
  const trpc = createTrpcClient(opts);
  const base = opts.url.replace(/\/+$/, '');
  const doFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);

  const byId = (id: string) => trpc.jobs.byId.query({ id });

  async function poll(jobId: string, o: WaitOptions): Promise<JobView> {
    for (;;) {
      if (o.signal?.aborted) throw abortError();
      const job = await byId(jobId);
      o.onProgress?.({ id: job.id, status: job.status, progress: job.progress, message: job.message });
      if (isTerminal(job.status)) return job;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, o.pollIntervalMs ?? 1000);
        o.signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  }

  async function waitForJob(jobId: string, o: WaitOptions = {}): Promise<JobView> {
    if (o.signal?.aborted) throw abortError();
    let streamed: 'ended' | 'failed';
    try {
      streamed = await new Promise<'ended' | 'failed'>((resolve, reject) => {
        const onAbort = () => {
          // Reject first: unsubscribing completes the stream, which must not read as "ended".
          reject(abortError());
          sub.unsubscribe();
        };
        const sub = trpc.jobs.onProgress.subscribe(
          { id: jobId },
          {
            onData: ({ data }) => {
              o.onProgress?.({ id: data.id, status: data.status, progress: data.progress, message: data.message });
              if (isTerminal(data.status)) {
                o.signal?.removeEventListener('abort', onAbort);
                sub.unsubscribe();
                resolve('ended');
              }
            },
            onError: () => {
              o.signal?.removeEventListener('abort', onAbort);
              sub.unsubscribe();
              resolve('failed');
            },
            onComplete: () => {
              o.signal?.removeEventListener('abort', onAbort);
              resolve('ended');
            },
          },
        );
        o.signal?.addEventListener('abort', onAbort, { once: true });
      });
    } catch (err) {
      throw StrokeviewError.wrap(err);
    }
    // The stream failed (a proxy that buffers SSE, an old gateway): poll instead. Polling also
    // reports a NOT_FOUND or UNAUTHORIZED the stream could only hint at.
    if (o.signal?.aborted) throw abortError();
    if (streamed === 'failed') return poll(jobId, o);
    const job = await byId(jobId);
    // The stream closed early (the server restarted mid-job): keep waiting by polling.
    return isTerminal(job.status) ? job : poll(jobId, o);
  }

  async function waitForRun(
    runId: string,
    o: Pick<RunStudyOptions, 'onProgress' | 'signal' | 'pollIntervalMs'> = {},
  ): Promise<StudyRunDetail> {
    if (o.signal?.aborted) throw abortError();
    // the stream first; when it fails or closes early, poll (the run's state lives in the database)
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        reject(abortError());
        sub.unsubscribe();
      };
      const finish = () => {
        o.signal?.removeEventListener('abort', onAbort);
        sub.unsubscribe();
        resolve();
      };
      const sub = trpc.studies.runs.onProgress.subscribe(
        { id: runId },
        {
          onData: ({ data }) => {
            o.onProgress?.(data);
            if (data.status !== 'running') finish();
          },
          onError: finish,
          onComplete: finish,
        },
      );
      o.signal?.addEventListener('abort', onAbort, { once: true });
    }).catch((err: unknown) => {
      throw StrokeviewError.wrap(err);
    });
    for (;;) {
      if (o.signal?.aborted) throw abortError();
      const run = await trpc.studies.runs.byId.query({ id: runId });
      if (run.status !== 'running') return run;
      o.onProgress?.(run);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, o.pollIntervalMs ?? 2000);
        o.signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  }

  const helpers: Helpers = {
    url: base,

    async runStudy(studyId, o = {}) {
      if (o.signal?.aborted) throw abortError();
      const run = await trpc.studies.run.mutate({
        studyId,
        ...(o.modelId ? { modelId: o.modelId } : {}),
        ...(o.caseIds ? { caseIds: o.caseIds } : {}),
        ...(o.rerun ? { rerun: true } : {}),
      });
      o.onProgress?.(run);
      if (run.status !== 'running') return run;
      try {
        return await waitForRun(run.id, o);
      } catch (err) {
        const e = StrokeviewError.wrap(err);
        // Aborting means "stop the work", not only "stop waiting".
        if (e.code === 'ABORTED') await trpc.studies.runs.cancel.mutate({ id: run.id }).catch(() => {});
        throw e;
      }
    },

    waitForRun,

    exportStudy: (async (studyId: string, o: StudyExportOptions, path?: string) => {
      const url = new URL(`${base}/api/studies/${encodeURIComponent(studyId)}/${o.format === 'csv' ? 'table.csv' : 'bids.zip'}`);
      if (o.runId) url.searchParams.set('runId', o.runId);
      if (o.corrected) url.searchParams.set('corrected', 'true');
      let res: Response;
      try {
        res = await doFetch(url, { headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {} });
      } catch (err) {
        throw StrokeviewError.wrap(err);
      }
      if (!res.ok || !res.body) {
        const body = (await res.json().catch(() => null)) as {
          message?: string;
          code?: string;
          data?: { fieldErrors?: Record<string, string[]> };
        } | null;
        throw new StrokeviewError(body?.message ?? `Export failed: the server answered ${res.status}`, {
          code: body?.code ?? `HTTP_${res.status}`,
          status: res.status,
          fieldErrors: body?.data?.fieldErrors ?? {},
        });
      }
      return saveBody(res, path);
    }) as Helpers['exportStudy'],

    async segment(caseId, o = {}) {
      if (o.signal?.aborted) throw abortError();
      const idempotencyKey = o.idempotencyKey ?? globalThis.crypto.randomUUID();
      const job = await trpc.jobs.create.mutate({ caseId, idempotencyKey, ...(o.modelIds ? { modelIds: o.modelIds } : {}) });
      let done: JobView;
      try {
        done = await waitForJob(job.id, o);
      } catch (err) {
        const e = StrokeviewError.wrap(err);
        if (e.code === 'ABORTED') {
          // Aborting means "stop the work", not only "stop waiting".
          e.job = await trpc.jobs.cancel.mutate({ id: job.id }).catch(() => job);
        }
        throw e;
      }
      if (done.status === 'succeeded') return done;
      const e =
        done.status === 'cancelled'
          ? new StrokeviewError(`Job ${done.id} was cancelled`, { code: 'JOB_CANCELLED' })
          : new StrokeviewError(`Job ${done.id} failed: ${done.error ?? 'no reason given'}`, { code: 'JOB_FAILED' });
      e.job = done;
      throw e;
    },

    waitForJob,

    async uploadCase(input) {
      const form = new FormData();
      form.set('name', input.name);
      for (const role of ['dwi', 'adc', 'flair', 'mask'] as const) {
        const file = input[role];
        if (file === undefined) continue;
        form.set(role, await toBlob(file), fileName(file, role));
      }
      return trpc.cases.upload.mutate(form);
    },

    async uploadDicom(input) {
      const form = new FormData();
      if (input.name !== undefined) form.set('name', input.name);
      if (input.series) form.set('series', JSON.stringify(input.series));
      if (input.dryRun) form.set('dryRun', 'true');
      for (const part of await dicomParts(input.source)) form.append('files', part.blob, part.name);
      return trpc.cases.uploadDicom.mutate(form);
    },

    exportSeg: (async (source: SegSource, path?: string) => {
      const { data, ...facts } = await trpc.masks.exportSeg.query(source);
      const bytes = Uint8Array.from(atob(data), (ch) => ch.charCodeAt(0));
      if (path === undefined) return { ...facts, data: bytes };
      const { writeFile } = await import('node:fs/promises');
      await writeFile(path, bytes);
      return { ...facts, path, bytes: bytes.length };
    }) as Helpers['exportSeg'],

    async pushToPacs(source, o = {}) {
      let push = await trpc.pacs.push.mutate(source);
      for (;;) {
        o.onUpdate?.(push);
        if (push.status === 'succeeded' || push.status === 'failed') return push;
        if (o.signal?.aborted) throw abortError();
        await new Promise((r) => setTimeout(r, o.pollIntervalMs ?? 1000));
        push = await trpc.pacs.pushes.byId.query({ id: push.id });
      }
    },

    download: (async (volume: Pick<VolumeDescriptor, 'downloadUrl'> | { url: string } | string, path?: string) => {
      const url = typeof volume === 'string' ? volume : 'downloadUrl' in volume ? volume.downloadUrl : volume.url;
      let res: Response;
      try {
        res = await doFetch(new URL(url, base));
      } catch (err) {
        throw StrokeviewError.wrap(err);
      }
      if (!res.ok || !res.body) {
        const code = res.status === 404 ? 'NOT_FOUND' : res.status === 403 || res.status === 410 ? 'FORBIDDEN' : `HTTP_${res.status}`;
        throw new StrokeviewError(
          `Download failed: the server answered ${res.status}${res.status === 410 || res.status === 403 ? ' (the signed link expired: fetch the job or case again)' : ''}`,
          {
            code,
            status: res.status,
          },
        );
      }
      return saveBody(res, path);
    }) as Helpers['download'],
  };

  // One object: helpers by name, everything else is the tRPC client's routers.
  return new Proxy(trpc as object, {
    get(target, prop, receiver) {
      if (typeof prop === 'string' && prop in helpers) return helpers[prop as keyof Helpers];
      return Reflect.get(target, prop, receiver);
    },
  }) as StrokeviewClient;
}
