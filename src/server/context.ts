import type { Kysely } from 'kysely';
import type { DatabaseKind } from './db/connect.js';
import type { Database } from './db/tables.js';
import type { Env } from './env.js';
import type { Logger } from './logger.js';
import type { Services } from './readiness.js';

/** Facts about this process that procedures may report. */
export interface ProcessInfo {
  version: string;
  startedAt: number;
}

/**
 * The inner context: everything a procedure needs, with no HTTP in it, so tests build it directly
 * and call procedures through `createCaller`.
 */
export interface InnerContext {
  db: Kysely<Database>;
  dbKind: DatabaseKind;
  env: Env;
  log: Logger;
  process: ProcessInfo;
  requestId: string;
}

export interface InnerContextOptions {
  services: Services;
  env: Env;
  log: Logger;
  process: ProcessInfo;
  requestId?: string;
}

export function createInnerContext(opts: InnerContextOptions): InnerContext {
  return {
    db: opts.services.database.db,
    dbKind: opts.services.database.kind,
    env: opts.env,
    log: opts.log,
    process: opts.process,
    requestId: opts.requestId ?? 'internal',
  };
}

/** The context for a request: the inner context plus what the HTTP adapter knows. */
export interface Context extends InnerContext {
  req?: Request;
  resHeaders?: Headers;
}

export function createRequestContext(
  inner: InnerContextOptions,
  http: { req: Request; resHeaders: Headers },
): Context {
  return { ...createInnerContext(inner), req: http.req, resHeaders: http.resHeaders };
}
