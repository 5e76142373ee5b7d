import { z } from 'zod';
import { KiB, MiB } from '../shared/units.js';
import { DEFAULT_MAX_VOXELS } from './nifti/read.js';

/** Empty strings in the environment mean "not set": `FOO= npm start` should behave like no FOO. */
const optional = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

const withDefault = <T extends z.ZodType>(schema: T, fallback: z.input<T>) =>
  z.preprocess((v) => (v === '' || v === undefined ? fallback : v), schema);

const bool = z.enum(['true', 'false', '1', '0', 'on', 'off', 'yes', 'no']).transform((v) => ['true', '1', 'on', 'yes'].includes(v));

const postgresUrl = z.string().refine((v) => /^postgres(ql)?:\/\//.test(v) && URL.canParse(v), {
  message: 'must be a postgres:// or postgresql:// URL',
});

/** A comma-separated list of exact origins (`https://host[:port]`, no path, no trailing slash). */
const originList = withDefault(
  z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .pipe(
      z.array(
        z.string().refine((o) => URL.canParse(o) && new URL(o).origin === o, {
          message: 'each entry must be an exact origin like https://example.hf.space (no path, no trailing slash)',
        }),
      ),
    ),
  '',
);

export const envSchema = z.object({
  NODE_ENV: withDefault(z.enum(['development', 'production', 'test']), 'development'),
  PORT: withDefault(z.coerce.number().int().min(0).max(65535), 7860),
  HOST: withDefault(z.string().min(1), '0.0.0.0'),
  DATA_DIR: withDefault(z.string().min(1), './data'),
  DATABASE_URL: optional(postgresUrl),
  SECRET_KEY: optional(z.string().min(32, 'must be at least 32 characters')),
  LOG_LEVEL: withDefault(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), 'info'),
  /** Seconds a request in flight may take to finish after SIGTERM before its socket is cut. */
  SHUTDOWN_GRACE_S: withDefault(z.coerce.number().min(0).max(600), 3),
  /** Run migrations at boot (`false` when a deploy step runs `npm run migrate` instead). */
  MIGRATE_ON_BOOT: withDefault(bool, 'true'),

  /** The address people use to reach the app (https on a Space); decides Secure/__Host- cookies and HSTS. */
  PUBLIC_URL: optional(z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' })),
  /** Origins allowed to call the API from a browser with credentials (CORS). Empty: same-origin only. */
  ALLOWED_ORIGINS: originList,
  /** Origins allowed to frame the viewer (e.g. https://huggingface.co). Turns on SameSite=None; Partitioned cookies. */
  EMBED_ORIGINS: originList,
  /** COOP/COEP for crossOriginIsolated; `auto` = on unless EMBED_ORIGINS is set. */
  CROSS_ORIGIN_ISOLATION: withDefault(z.enum(['auto', 'on', 'off']), 'auto'),
  ALLOW_GUESTS: withDefault(bool, 'true'),
  GUEST_TTL_HOURS: withDefault(
    z.coerce
      .number()
      .positive()
      .max(24 * 30),
    24,
  ),
  /** A guest's quotas, well under a user's: jobs queued or running at once… */
  GUEST_MAX_ACTIVE_JOBS: withDefault(z.coerce.number().int().min(0), 1),
  /** …the share of MAX_QUEUED_JOBS all guests together may hold (so guests cannot fill the queue)… */
  GUEST_QUEUE_SHARE: withDefault(z.coerce.number().min(0).max(1), 0.2),
  /** Accounts registered within NEW_ACCOUNT_HOURS with no succeeded job together hold at most this share of MAX_QUEUED_JOBS. */
  NEW_ACCOUNT_QUEUE_SHARE: withDefault(z.coerce.number().min(0).max(1), 0.5),
  NEW_ACCOUNT_HOURS: withDefault(z.coerce.number().min(0), 24),
  /** …cases uploaded, and the size of one upload (MiB). */
  GUEST_MAX_CASES: withDefault(z.coerce.number().int().min(0), 3),
  GUEST_MAX_UPLOAD_MB: withDefault(z.coerce.number().positive().max(4096), 64),
  /** Corrected mask versions a guest may keep in all. */
  GUEST_MAX_MASK_VERSIONS: withDefault(z.coerce.number().int().min(0), 20),
  /** What a guest's cases and masks may take in the store together, MiB. */
  GUEST_MAX_STORED_MB: withDefault(z.coerce.number().min(0), 256),
  /**
   * With ADMIN_PASSWORD (a secret), the server makes this administrator account at boot — the
   * environment's way to get a first admin (the CLI's `users add --admin` is the other). Public
   * registration never grants admin, whatever the email.
   */
  ADMIN_EMAIL: optional(z.email().transform((e) => e.toLowerCase())),
  ADMIN_PASSWORD: optional(z.string().min(12, 'must be at least 12 characters').max(256)),
  SESSION_IDLE_DAYS: withDefault(z.coerce.number().positive().max(365), 7),
  SESSION_MAX_DAYS: withDefault(z.coerce.number().positive().max(3650), 30),
  /**
   * Seconds a process may answer who a session or API token belongs to from memory (0: always ask
   * the database). Changes drop entries at once in every process; this bounds nothing but memory.
   */
  SESSION_CACHE_S: withDefault(z.coerce.number().int().min(0).max(300), 30),
  /** How many proxies in front of the server append to X-Forwarded-For (1 on Hugging Face Spaces). */
  TRUSTED_PROXY_HOPS: withDefault(z.coerce.number().int().min(0).max(10), 0),
  TRPC_MAX_BODY_BYTES: withDefault(z.coerce.number().int().min(KiB), MiB),
  TRPC_MAX_BATCH: withDefault(z.coerce.number().int().min(1).max(100), 10),
  /** Sign-in and register requests per client address per minute. */
  AUTH_RATE_PER_MIN: withDefault(z.coerce.number().int().min(1), 10),
  /** Failed sign-ins per email per SIGN_IN_FAILURE_WINDOW_MIN before further attempts get 429. */
  SIGN_IN_FAILURES_MAX: withDefault(z.coerce.number().int().min(1), 5),
  SIGN_IN_FAILURE_WINDOW_MIN: withDefault(z.coerce.number().positive(), 15),

  /** Uploads (cases and masks) in flight at once per process; beyond that 503 with Retry-After. */
  MAX_CONCURRENT_UPLOADS: withDefault(z.coerce.number().int().min(1).max(64), 2),
  /** …of which one account may hold at once (a guest: 1), so one account cannot take every slot. */
  MAX_UPLOADS_PER_USER: withDefault(z.coerce.number().int().min(1).max(64), 1),
  /** An upload whose body sends nothing for this long is cut (408): an idle connection frees its slot. */
  UPLOAD_IDLE_TIMEOUT_S: withDefault(z.coerce.number().positive().max(3600), 30),
  /** Largest case upload (all files together), MiB. */
  MAX_UPLOAD_MB: withDefault(z.coerce.number().positive().max(4096), 512),
  /** Corrected mask versions one author may keep per case (a guest: GUEST_MAX_MASK_VERSIONS in all). */
  MAX_MASK_VERSIONS: withDefault(z.coerce.number().int().min(1), 200),
  /**
   * Where volumes live: `file:///abs/path` (default: DATA_DIR/volumes) or `s3://bucket/prefix` on an
   * S3-compatible object store (S3_ENDPOINT, S3_REGION, S3_FORCE_PATH_STYLE, the AWS credential variables).
   */
  STORAGE_URL: optional(
    z.string().refine((v) => /^(file|s3):\/\//.test(v) && URL.canParse(v) && (v.startsWith('file:') || new URL(v).hostname.length >= 3), {
      message: 'must be file:///a/folder or s3://bucket[/prefix]',
    }),
  ),
  /** The S3 API's address for stores other than AWS (MinIO, R2, GCS interoperability), e.g. http://minio:9000. */
  S3_ENDPOINT: optional(z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' })),
  S3_REGION: withDefault(z.string().min(1), 'us-east-1'),
  /** Path-style addressing (`endpoint/bucket/key`): MinIO and most self-hosted stores need it. */
  S3_FORCE_PATH_STYLE: withDefault(bool, 'false'),
  /**
   * How /files/v/<token> answers with an object store: `proxy` streams the bytes through this server,
   * `redirect` sends a short-lived presigned GET so they flow from the store (its CORS and CORP must allow the viewer).
   */
  STORAGE_SERVE: withDefault(z.enum(['proxy', 'redirect']), 'proxy'),
  /**
   * With an object store: MiB of volumes each process keeps under DATA_DIR/cache/volumes, read
   * through (content-addressed, so never stale), least recently used out first; 0 disables it.
   */
  VOLUME_CACHE_MB: withDefault(z.coerce.number().int().min(0), 1024),
  /** Seconds a presigned GET (STORAGE_SERVE=redirect) stays valid. */
  STORAGE_REDIRECT_TTL_S: withDefault(z.coerce.number().int().min(10).max(3600), 300),
  /** Below this much free space under DATA_DIR, /readyz answers 503 naming the disk. */
  MIN_FREE_DISK_MB: withDefault(z.coerce.number().min(0), 64),
  /** Largest volume accepted, in voxels (all frames): 64 Mi = 512×512×256, room to spare for brain MRI. */
  MAX_VOXELS: withDefault(z.coerce.number().int().positive(), DEFAULT_MAX_VOXELS),
  /** What one upload's files may inflate to together (their headers say it before anything is inflated), MiB. */
  MAX_INFLATED_MB: withDefault(z.coerce.number().positive().max(65536), 768),
  /** DICOM imports: files one upload (a folder, many files, or the entries of a zip) may hold. */
  DICOM_MAX_FILES: withDefault(z.coerce.number().int().min(1).max(1_000_000), 5000),
  /** …all its files together (as sent, and unpacked from a zip), MiB (a guest: GUEST_MAX_UPLOAD_MB)… */
  DICOM_MAX_MB: withDefault(z.coerce.number().positive().max(65536), 2048),
  /** …and one file (a DICOM file, or an entry of a zip), MiB. */
  DICOM_MAX_FILE_MB: withDefault(z.coerce.number().positive().max(65536), 512),
  /** A zip entry inflating to more than this many times its compressed size is refused (a zip bomb). */
  DICOM_MAX_ZIP_RATIO: withDefault(z.coerce.number().min(1).max(100_000), 200),
  /**
   * Keep the patient and study modules (name, ID, birth date, accession, study date…) of imported
   * DICOM studies, shown only to the case's owner and admins. Off: nothing identifying is stored.
   */
  DICOM_KEEP_PATIENT: withDefault(bool, 'false'),
  /** A PACS's DICOMweb base URL (QIDO-RS, WADO-RS, STOW-RS), e.g. `http://orthanc:8042/dicom-web`; unset: no PACS. `DICOMWEB_URL` is accepted for it. */
  PACS_URL: optional(z.url({ protocol: /^https?$/, message: 'must be an http(s) URL (the DICOMweb base)' })),
  /** The Authorization header sent to the PACS (`Basic …`, `Bearer …`), if it needs one. Never logged. */
  PACS_AUTHORIZATION: optional(z.string().min(1)),
  /** How long one PACS request may take, seconds. */
  PACS_TIMEOUT_S: withDefault(z.coerce.number().int().min(1).max(3600), 120),
  /** The first retry of a failed PACS push waits this long, seconds; each next one twice as long (4 retries). */
  PACS_PUSH_RETRY_DELAY_S: withDefault(z.coerce.number().int().min(1).max(3600), 10),
  /** Demo (phantom) cases created on first boot when the database has none. */
  DEMO_CASES: withDefault(z.coerce.number().int().min(0).max(12), 6),
  /** Lifetime of a signed volume URL, seconds. */
  VOLUME_URL_TTL_S: withDefault(
    z.coerce
      .number()
      .int()
      .min(10)
      .max(7 * 86400),
    3600,
  ),

  /** Where models run: cpu, or cuda (falls back to CPU with a warning when no GPU can be used). */
  EXECUTION_PROVIDER: withDefault(z.enum(['cpu', 'cuda']), 'cpu'),
  /** onnxruntime intra-op threads per model session; 0 = one per core. */
  ORT_THREADS: withDefault(z.coerce.number().int().min(0).max(256), 0),
  /** A folder of extra model folders (manifest.json + model.onnx), besides the built-in models/. */
  MODELS_DIR: optional(z.string().min(1)),
  /**
   * Largest model file (model.onnx with its external data) loaded, MiB: every CPU pool thread holds
   * its own session of each model it runs, so a bigger one fails at load with a message instead.
   */
  MODEL_MAX_MB: withDefault(z.coerce.number().positive().max(65536), 2048),

  /** Run segmentation workers in this process (false on API-only replicas; `npm run worker` runs them alone). */
  RUN_WORKER: withDefault(bool, 'true'),
  WORKER_CONCURRENCY: withDefault(z.coerce.number().int().min(1).max(32), 1),
  /** Worker threads for CPU-heavy work (uploads, the pipeline); 0 = WORKER_CONCURRENCY + 1, within 2…cores. */
  CPU_THREADS: withDefault(z.coerce.number().int().min(0).max(64), 0),
  /** A job running longer than this fails with a reason. */
  JOB_TIMEOUT_S: withDefault(z.coerce.number().int().min(1).max(86_400), 600),
  /** A worker's lease on a job: if it stops heart-beating this long (a crash), another worker takes the job. */
  JOB_LEASE_S: withDefault(z.coerce.number().int().min(10).max(3600), 30),
  /** Jobs one user may have queued or running at once (429 past it). */
  MAX_ACTIVE_JOBS_PER_USER: withDefault(z.coerce.number().int().min(1), 3),
  /**
   * Study-run jobs one user may have queued or running at once, over all their runs (429 past it).
   * Run jobs do not count against the two caps here.
   */
  MAX_RUN_JOBS_PER_USER: withDefault(z.coerce.number().int().min(1), 2000),
  /**
   * Jobs of one study run running at once in one worker process (per process; 0 = no cap, and a
   * value ≥ WORKER_CONCURRENCY caps nothing). With a cap, two runs share a worker's slots instead
   * of the second waiting for the first to finish.
   */
  MAX_RUN_JOBS_IN_FLIGHT: withDefault(z.coerce.number().int().min(0), 0),
  /** Jobs queued or running across all users (429 past it). */
  MAX_QUEUED_JOBS: withDefault(z.coerce.number().int().min(1), 100),
  /**
   * Uploads (cases, masks, DICOM) in flight at once across every replica sharing the database
   * (per fleet; MAX_CONCURRENT_UPLOADS stays the cap per process); beyond it 503 with Retry-After.
   */
  MAX_UPLOADS_IN_FLIGHT: withDefault(z.coerce.number().int().min(1).max(10_000), 16),
  /**
   * A replica's lease on what it holds for the fleet's counts (a live stream, an upload in flight),
   * renewed every third of it: a replica dead this long stops counting against the caps.
   */
  FLEET_LEASE_S: withDefault(z.coerce.number().int().min(3).max(600), 30),
  /** Live progress streams (jobs.onProgress) one user may hold open at once, across the fleet… */
  MAX_STREAMS_PER_USER: withDefault(z.coerce.number().int().min(1), 20),
  /** …and one browser session (a tab or two of the viewer needs a handful). */
  MAX_STREAMS_PER_SESSION: withDefault(z.coerce.number().int().min(1), 8),
  /**
   * How often an open progress stream re-reads its job (a lost notification only delays) and
   * re-checks the credential it was opened with (a signed-out, revoked or disabled one ends it), ms.
   */
  STREAM_RECHECK_MS: withDefault(z.coerce.number().int().min(10).max(60_000), 3000),
  /** Days a job and its result are kept. */
  RESULT_RETENTION_DAYS: withDefault(z.coerce.number().positive().max(3650), 30),

  /**
   * Set: /metrics answers only `Authorization: Bearer <METRICS_TOKEN>` (Prometheus' `authorization`
   * / `bearer_token`), from anywhere. Unset: only clients on this machine (loopback) may read it.
   */
  METRICS_TOKEN: optional(
    z
      .string()
      .min(24, 'must be at least 24 characters')
      .max(512)
      .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces (it is sent in an HTTP header)'),
  ),
});

export type Env = z.infer<typeof envSchema>;

/** Variables whose values never appear in an error message (it may reach a log). */
const SECRETS = new Set(['SECRET_KEY', 'ADMIN_PASSWORD', 'DATABASE_URL', 'METRICS_TOKEN']);

export class EnvError extends Error {
  constructor(readonly problems: { variable: string; message: string }[]) {
    super(problems.map((p) => `${p.variable}: ${p.message}`).join('; '));
    this.name = 'EnvError';
  }
}

/**
 * Parses the environment once, at boot. Every problem names its variable so the one line a
 * person reads says what to fix.
 */
export function parseEnv(given: Record<string, string | undefined> = process.env): Env {
  // DICOMWEB_URL is another name for PACS_URL (the name DICOMweb deployments use)
  if (given.DICOMWEB_URL && given.PACS_URL && given.DICOMWEB_URL !== given.PACS_URL)
    throw new EnvError([{ variable: 'DICOMWEB_URL', message: 'and PACS_URL name the same setting (the PACS); set one of them' }]);
  const raw = given.DICOMWEB_URL && !given.PACS_URL ? { ...given, PACS_URL: given.DICOMWEB_URL } : given;
  const result = envSchema.safeParse(raw);
  if (!result.success) {
    throw new EnvError(
      result.error.issues.map((issue) => {
        const named = String(issue.path[0] ?? 'environment');
        const variable = named === 'PACS_URL' && !given.PACS_URL ? 'DICOMWEB_URL' : named;
        const value = given[variable];
        const shown = value === undefined || SECRETS.has(variable) ? '' : ` (got ${JSON.stringify(value.slice(0, 60))})`;
        return { variable, message: `${issue.message}${shown}` };
      }),
    );
  }
  const env = result.data;
  if (Boolean(env.ADMIN_EMAIL) !== Boolean(env.ADMIN_PASSWORD)) {
    const missing = env.ADMIN_EMAIL ? 'ADMIN_PASSWORD' : 'ADMIN_EMAIL';
    throw new EnvError([
      {
        variable: missing,
        message: `is required with ${missing === 'ADMIN_PASSWORD' ? 'ADMIN_EMAIL' : 'ADMIN_PASSWORD'}: the server makes that admin account at boot (registering the email does not make an admin); or unset both and run \`strokeview users add <email> --admin\``,
      },
    ]);
  }
  if (env.NODE_ENV === 'production' && !env.SECRET_KEY) {
    throw new EnvError([{ variable: 'SECRET_KEY', message: 'is required when NODE_ENV=production (at least 32 characters)' }]);
  }
  return env;
}
