import { TRPCError } from '@trpc/server';
import type { Kysely } from 'kysely';
import { DATABASE_RETRY_AFTER_S, DATABASE_UNAVAILABLE_MESSAGE, isDatabaseUnavailable } from './db/unavailable.js';
import { type CookiePolicy, readSessionCookie, serializeClearedCookies, serializeSessionCookie } from './auth/cookies.js';
import { type AuthUser, type Authenticated, type ClientMeta, authenticate } from './auth/service.js';
import type { VolumeLinks } from './cases/service.js';
import type { Viewer } from './db/cases.js';
import type { DatabaseKind } from './db/connect.js';
import type { Database } from './db/tables.js';
import type { Env } from './env.js';
import type { Logger } from './logger.js';
import type { JobSystem } from './jobs/service.js';
import type { Services } from './readiness.js';
import type { ModelRegistry } from './segmentation/models.js';
import type { VolumeSigner } from './volumes/signing.js';
import type { VolumeStore } from './volumes/store.js';
import type { CpuPool } from './workers/pool.js';
import type { UploadedFile } from './http/uploads/index.js';

/** Facts about this process that procedures may report. */
export interface ProcessInfo {
  version: string;
  startedAt: number;
}

/** Where procedures put and remove the session cookie (response headers over HTTP; a record in tests). */
export interface SessionCookies {
  set(token: string, expiresAt: Date): void;
  clear(): void;
}

/**
 * The inner context: everything a procedure needs, with no HTTP in it, so tests build it directly
 * and call procedures through `createCaller`.
 */
export interface InnerContext {
  db: Kysely<Database>;
  dbKind: DatabaseKind;
  /** The parsed environment. (Not `env`: @hono/trpc-server overwrites that key with Hono's bindings.) */
  config: Env;
  log: Logger;
  process: ProcessInfo;
  requestId: string;
  /** The signed-in user, or null. `protectedProcedure` narrows it to non-null. */
  user: AuthUser | null;
  auth: Authenticated | null;
  client: ClientMeta;
  cookies: SessionCookies;
  /** Response headers (Retry-After, …); a plain Headers object outside HTTP. */
  resHeaders: Headers;
  store: VolumeStore;
  signer: VolumeSigner;
  models: ModelRegistry;
  jobs: JobSystem;
  cpu: CpuPool;
  /** A streamed upload's file parts, already on disk (see http/uploads); absent otherwise. */
  uploads?: Record<string, UploadedFile>;
  /** Where this server is reached (for absolute signed volume URLs). */
  baseUrl: string;
}

export interface InnerContextOptions {
  services: Services;
  env: Env;
  log: Logger;
  process: ProcessInfo;
  requestId?: string;
  auth?: Authenticated | null;
  client?: ClientMeta;
  cookies?: SessionCookies;
  resHeaders?: Headers;
  baseUrl?: string;
}

const noCookies: SessionCookies = { set() {}, clear() {} };

export function createInnerContext(opts: InnerContextOptions): InnerContext {
  return {
    db: opts.services.database.db,
    dbKind: opts.services.database.kind,
    config: opts.env,
    log: opts.log,
    process: opts.process,
    requestId: opts.requestId ?? 'internal',
    user: opts.auth?.user ?? null,
    auth: opts.auth ?? null,
    client: opts.client ?? { ip: null, userAgent: null },
    cookies: opts.cookies ?? noCookies,
    resHeaders: opts.resHeaders ?? new Headers(),
    store: opts.services.store,
    signer: opts.services.signer,
    models: opts.services.models,
    jobs: opts.services.jobs,
    cpu: opts.services.cpu,
    baseUrl: opts.baseUrl ?? opts.env.PUBLIC_URL ?? `http://localhost:${opts.env.PORT}`,
  };
}

export type Context = InnerContext;

/** Who is asking, for the visibility rules of cases and jobs. */
export function viewerOf(user: AuthUser): Viewer & { userId: string };
export function viewerOf(user: AuthUser | null): Viewer;
export function viewerOf(user: AuthUser | null): Viewer {
  return { userId: user?.id ?? null, admin: user?.role === 'admin', guest: user?.role === 'guest' };
}

/** What signing volume URLs needs from a request. */
export function volumeLinks(ctx: Pick<InnerContext, 'signer' | 'baseUrl'>): VolumeLinks {
  return { signer: ctx.signer, baseUrl: ctx.baseUrl };
}

/**
 * The context for an HTTP request: authenticates the bearer token (SDK, CLI) or the session
 * cookie (browser), and writes cookies into the response headers.
 */
export async function createRequestContext(
  inner: Omit<InnerContextOptions, 'auth' | 'cookies' | 'resHeaders'>,
  http: {
    req: Request;
    resHeaders: Headers;
    cookiePolicy: CookiePolicy;
    client: ClientMeta;
    /** REST (`/api`) takes bearer tokens only: no cookie, so no CSRF surface there. */
    bearerOnly?: boolean;
  },
): Promise<Context> {
  const { req, resHeaders, cookiePolicy } = http;
  const cookies: SessionCookies = {
    set: (token, expiresAt) => resHeaders.append('Set-Cookie', serializeSessionCookie(cookiePolicy, token, expiresAt)),
    clear: () => {
      for (const line of serializeClearedCookies(cookiePolicy)) resHeaders.append('Set-Cookie', line);
    },
  };
  const bearer = req.headers.get('authorization')?.match(/^Bearer\s+(\S+)$/i)?.[1];
  const cookieToken = bearer || http.bearerOnly ? undefined : readSessionCookie(req.headers.get('cookie'), cookiePolicy);
  const token = bearer ?? cookieToken;
  let auth: Authenticated | null = null;
  if (token) {
    try {
      auth = await authenticate(inner.services.database.db, inner.env, token);
    } catch (err) {
      // Who is asking cannot be known without the database: a 503 the client retries, not a 500.
      if (!isDatabaseUnavailable(err)) throw err;
      resHeaders.set('Retry-After', String(DATABASE_RETRY_AFTER_S));
      throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: DATABASE_UNAVAILABLE_MESSAGE, cause: err });
    }
    if (cookieToken) {
      if (!auth) cookies.clear();
      else if (auth.renewedUntil) cookies.set(cookieToken, auth.renewedUntil);
    }
  }
  return createInnerContext({ ...inner, auth, client: http.client, cookies, resHeaders });
}
