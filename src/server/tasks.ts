import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { emailSchema, passwordSchema } from '../shared/auth.js';
import { studyNameSchema } from '../shared/studies.js';
import { createApiToken } from './auth/api-tokens.js';
import { hashPassword } from './auth/passwords.js';
import { importIsles, importedCaseIds } from './cases/import.js';
import { fillStudy } from './studies/service.js';
import { importDicomFolder } from './dicom/service.js';
import { findUserByEmail, insertUser, updateUser } from './db/users.js';
import { parseEnv } from './env.js';
import { conflict, invalid, notFound } from './errors.js';
import { type TaskRuntime, openRuntime } from './runtime.js';
import { CpuPool, poolSize } from './workers/pool.js';

/**
 * One-shot administrative tasks on the configured database (the server's own environment:
 * DATA_DIR, DATABASE_URL): what `strokeview migrate|import|users add|tokens create` (and so the
 * npm scripts) run. Each opens the runtime (the database brought to the latest schema), works,
 * and closes. Refusals are DomainErrors; the CLI prints their message and exits 1.
 */
async function withRuntime<T>(fn: (runtime: TaskRuntime) => Promise<T>): Promise<T> {
  const runtime = await openRuntime(parseEnv(), 'task');
  try {
    return await fn(runtime);
  } finally {
    await runtime.stop();
  }
}

/** Brings the configured database to the latest schema; the names of the migrations applied. */
export function migrateTask(): Promise<string[]> {
  return withRuntime(async ({ applied }) => applied);
}

/**
 * Imports an ISLES'22/'24 folder; cases are shared unless an owner is named. With `study`, the
 * folder's cases — imported now or by an earlier run — are put in the owner's study of that name
 * (made when the owner has none), so a re-run fills the study without importing twice.
 */
export async function importTask(
  dir: string,
  opts: { ownerEmail?: string | undefined; study?: string | undefined; onLine?: (line: string) => void },
) {
  if (opts.study !== undefined && !opts.ownerEmail) throw invalid('--study needs --owner: a study belongs to someone');
  const studyName = opts.study === undefined ? undefined : studyNameSchema.safeParse(opts.study);
  if (studyName && !studyName.success) throw invalid(`--study: ${studyName.error.issues[0]?.message ?? 'not a study name'}`);
  return withRuntime(async ({ database, env, store }) => {
    let ownerId: string | null = null;
    if (opts.ownerEmail) {
      const owner = await findUserByEmail(database.db, opts.ownerEmail.toLowerCase());
      if (!owner) throw notFound(`no user with email ${opts.ownerEmail}`);
      ownerId = owner.id;
    }
    const report = await importIsles(database.db, store, path.resolve(dir), {
      ownerId,
      maxVoxels: env.MAX_VOXELS,
      ...(opts.onLine ? { onProgress: opts.onLine } : {}),
    });
    if (!studyName?.success || !ownerId) return { ...report, study: null };
    const subjects = [
      ...report.imported.map((i) => i.subject),
      ...report.skipped.filter((s) => s.reason === 'already imported').map((s) => s.path),
    ];
    const study = await fillStudy(database.db, ownerId, studyName.data, await importedCaseIds(database.db, subjects));
    opts.onLine?.(`study ${study.name}: ${study.added} case(s) added, ${study.cases} in all`);
    return { ...report, study };
  });
}

/** Imports a folder (or zip) of DICOM studies, one case per study; shared unless an owner is named. */
export async function importDicomTask(dir: string, opts: { ownerEmail?: string | undefined; onLine?: (line: string) => void }) {
  return withRuntime(async ({ database, env, store }) => {
    let ownerId: string | null = null;
    if (opts.ownerEmail) {
      const owner = await findUserByEmail(database.db, opts.ownerEmail.toLowerCase());
      if (!owner) throw notFound(`no user with email ${opts.ownerEmail}`);
      ownerId = owner.id;
    }
    // Conversion is CPU work in worker threads here too (dcm2niix and the ADC, per study).
    const cpu = new CpuPool(poolSize(env));
    try {
      return await importDicomFolder({ db: database.db, store, cpu, env }, path.resolve(dir), {
        ownerId,
        ...(opts.onLine ? { onProgress: opts.onLine } : {}),
      });
    } finally {
      await cpu.destroy();
    }
  });
}

/**
 * Adds a user — or, for an existing one with `admin`, makes them an administrator. The only way
 * to make an administrator besides an existing admin's `admin.users.setRole`: public registration
 * never grants it. Without a password one is generated and returned (shown once).
 */
export async function addUserTask(opts: { email: string; password?: string | undefined; admin: boolean }) {
  const email = emailSchema.safeParse(opts.email);
  if (!email.success) throw invalid(`${opts.email}: not a valid email address`);
  let generated: string | null = null;
  let password = opts.password;
  if (password === undefined) {
    generated = randomBytes(15).toString('base64url');
    password = generated;
  }
  const checked = passwordSchema.safeParse(password);
  if (!checked.success) throw invalid(checked.error.issues[0]!.message);
  return withRuntime(async ({ database }) => {
    const existing = await findUserByEmail(database.db, email.data);
    if (existing) {
      if (!opts.admin) throw conflict(`${email.data} already has an account (add --admin to make it an administrator)`);
      const user = await updateUser(database.db, existing.id, { role: 'admin' });
      return { id: user!.id, email: user!.email, role: user!.role, created: false, password: null };
    }
    const user = await insertUser(database.db, {
      email: email.data,
      password_hash: await hashPassword(checked.data),
      role: opts.admin ? 'admin' : 'user',
    });
    return { id: user.id, email: user.email, role: user.role, created: true, password: generated };
  });
}

/** Creates an API token for a user (local: no server needed); the plaintext is returned once. */
export async function createTokenTask(opts: { email: string; name: string; expiresInDays?: number | undefined }) {
  return withRuntime(async ({ database }) => {
    const user = await findUserByEmail(database.db, opts.email.trim().toLowerCase());
    if (!user) throw notFound(`no user with email ${opts.email} (add one with \`strokeview users add ${opts.email}\`)`);
    if (user.role === 'guest') throw invalid('guest accounts cannot have API tokens');
    return createApiToken(database.db, user.id, { name: opts.name, expiresInDays: opts.expiresInDays });
  });
}
