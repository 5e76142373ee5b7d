import type { RefineSessions } from './refine/sessions.js';
import type { Context as HonoContext } from 'hono';
import type { Kysely } from 'kysely';
import type { TRPCError } from '@trpc/server';
import { isDatabaseUnavailable } from './db/unavailable.js';
import { cookiePolicy as sessionCookiePolicy, readSessionCookie, serializeClearedCookies, serializeSessionCookie } from './auth/cookies.js';
import { type AuthUser, type Authenticated, type ClientMeta, authenticate } from './auth/service.js';
import type { SessionCache } from './auth/session-cache.js';
import { API_TOKEN_PREFIX, SESSION_TOKEN_PREFIX } from './auth/tokens.js';
import type { VolumeLinks } from './volumes/descriptors.js';
import type { Viewer } from './db/cases.js';
import type { DatabaseKind } from './db/connect.js';
import type { ReadCache } from './db/read-cache.js';
import type { Database } from './db/tables.js';
import type { Env } from './env.js';
import type { Logger } from './logger.js';
import type { JobSystem } from './jobs/service.js';
import type { Readiness, Services } from './readiness.js';
import { errorHeaders, toTRPCError } from './error-shapes.js';
import { invalidToken } from './errors.js';
import { clientAddress, publicBaseUrl, requestIsHttps } from './http/client.js';
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
 * The inner context: everything a procedure needs, with no HTTP in it (what `createCaller` takes,
 * and what the HTTP factory below fills in per request).
 */
export interface Context {
  db: Kysely<Database>;
  dbKind: DatabaseKind;
  /** Embedded only: hot reads' results, dropped by any write through `db` (db/read-cache.ts). */
  readCache: ReadCache | undefined;
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
  /** Still starting for a moment after a restart (readiness.ts): await it. */
  jobs: Promise<JobSystem>;
  cpu: CpuPool;
  refine: RefineSessions;
  /**
   * The process's session cache, when it has one: procedures that end or change credentials drop
   * the user's entries here at once (other processes hear it from the database).
   */
  sessions: SessionCache | undefined;
  /** A streamed upload's file parts, already on disk (see http/uploads); absent otherwise. */
  uploads?: Record<string, UploadedFile>;
  /** …the parts of its repeatable fields (a DICOM import's `files`), in order. */
  uploadLists?: Record<string, UploadedFile[]>;
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

export function createInnerContext(opts: InnerContextOptions): Context {
  return {
    db: opts.services.database.db,
    dbKind: opts.services.database.kind,
    readCache: opts.services.database.readCache,
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
    refine: opts.services.refine,
    sessions: opts.services.sessions,
    baseUrl: opts.baseUrl ?? opts.env.PUBLIC_URL ?? `http://localhost:${opts.env.PORT}`,
  };
}

/** Who is asking, for the visibility rules of cases and jobs. */
export function viewerOf(user: AuthUser): Viewer & { userId: string };
export function viewerOf(user: AuthUser | null): Viewer;
export function viewerOf(user: AuthUser | null): Viewer {
  return { userId: user?.id ?? null, admin: user?.role === 'admin', guest: user?.role === 'guest' };
}

/** What signing volume URLs needs from a request. */
export function volumeLinks(ctx: Pick<Context, 'signer' | 'baseUrl'>): VolumeLinks {
  return { signer: ctx.signer, baseUrl: ctx.baseUrl };
}

/** What a refused bearer token is told (the 401's message and WWW-Authenticate's error_description). */
export const TOKEN_REFUSED_MESSAGE = 'The API token was refused (unknown, revoked or expired)';

/**
 * The credential an `Authorization` header presents: none (no header, or a scheme other than
 * Bearer — a proxy's own Basic auth, say), a well-formed bearer token, or a malformed one.
 */
function presentedBearer(header: string | null): { token: string } | 'malformed' | undefined {
  if (!header || !/^bearer(\s|$)/i.test(header)) return undefined;
  // RFC 6750's b64token; a token of ours is an API token (a session rides only in the cookie).
  const token = header.match(/^bearer +([\w.~+/-]+=*)$/i)?.[1];
  // A Hugging Face token (`hf_…`) is the Space proxy's credential for a private Space, which it
  // may pass through to the app: not ours to judge, so the request is as if it carried none.
  if (token?.startsWith('hf_')) return undefined;
  return token?.startsWith(API_TOKEN_PREFIX) ? { token } : 'malformed';
}

/** What the context factory needs from the app: the process's services come from readiness once booted. */
export interface RequestContextDeps {
  env: Env;
  logger: Logger;
  readiness: Readiness;
  process: ProcessInfo;
}

/**
 * The adapter-facing context: for each HTTP request, authenticates the bearer token (SDK, CLI)
 * or the session cookie (browser) and writes cookies into the response headers; everything else
 * is the inner context above. Used by /trpc, /api and the upload routes alike.
 *
 * A presented bearer token that is malformed, unknown, revoked or expired fails the whole request
 * with 401 `invalid_token` — public procedures included — so a mistyped or revoked token never
 * passes for a working one. A stale session cookie is different: the browser sent it on its own,
 * so it is cleared and the request goes on as anonymous (public reads work, the rest say sign in).
 */
export function requestContextFactory(deps: RequestContextDeps) {
  const { env, logger } = deps;
  const hops = env.TRUSTED_PROXY_HOPS;
  return async function createRequestContext(
    c: HonoContext,
    http: {
      resHeaders: Headers;
      /** REST (`/api`) takes bearer tokens only: no cookie, so no CSRF surface there. */
      bearerOnly?: boolean;
    },
  ): Promise<Context> {
    const services = deps.readiness.services!;
    const { resHeaders } = http;
    const req = c.req.raw;
    const https = requestIsHttps(c, env);
    const cookiePolicy = sessionCookiePolicy({ https, hostname: new URL(c.req.url).hostname, embedded: env.EMBED_ORIGINS.length > 0 });
    const cookies: SessionCookies = {
      set: (token, expiresAt) => resHeaders.append('Set-Cookie', serializeSessionCookie(cookiePolicy, token, expiresAt)),
      clear: () => {
        for (const line of serializeClearedCookies(cookiePolicy)) resHeaders.append('Set-Cookie', line);
      },
    };
    const presented = presentedBearer(req.headers.get('authorization'));
    // No procedure middleware runs for a context that failed: its error's headers are set here.
    const withHeaders = (error: TRPCError) => {
      for (const [name, value] of Object.entries(errorHeaders(error))) resHeaders.set(name, value);
      return error;
    };
    const refuse = () => {
      const error = withHeaders(toTRPCError(invalidToken(TOKEN_REFUSED_MESSAGE)));
      logger.info({ reqId: c.get('requestId') as string }, 'bearer token refused');
      return error;
    };
    if (presented === 'malformed') throw refuse();
    const bearer = presented?.token;
    const cookieValue = bearer || http.bearerOnly ? undefined : readSessionCookie(req.headers.get('cookie'), cookiePolicy);
    // Only a session token counts in the cookie; anything else there is as stale as an expired one.
    const cookieToken = cookieValue?.startsWith(SESSION_TOKEN_PREFIX) ? cookieValue : undefined;
    if (cookieValue && !cookieToken) cookies.clear();
    const token = bearer ?? cookieToken;
    let auth: Authenticated | null = null;
    if (token) {
      try {
        auth = await authenticate(services.database.db, env, token, { cache: services.sessions });
      } catch (err) {
        // Who is asking cannot be known without the database: a 503 the client retries, not a 500.
        // Thrown as tRPC's error: no procedure middleware runs for a context that failed.
        if (!isDatabaseUnavailable(err)) throw err;
        throw withHeaders(toTRPCError(err));
      }
      if (bearer && !auth) throw refuse();
      if (cookieToken) {
        if (!auth) cookies.clear();
        else if (auth.renewedUntil) cookies.set(cookieToken, auth.renewedUntil);
      }
    }
    const requestId = c.get('requestId') as string;
    return createInnerContext({
      services,
      env,
      log: logger.child({ reqId: requestId }),
      process: deps.process,
      requestId,
      baseUrl: publicBaseUrl(c, env),
      auth,
      client: { ip: clientAddress(c, hops), userAgent: c.req.header('user-agent') ?? null },
      cookies,
      resHeaders,
    });
  };
}

export type CreateRequestContext = ReturnType<typeof requestContextFactory>;
