import { router } from '../trpc.js';
import { adminRouter } from './admin.js';
import { authRouter } from './auth.js';
import { casesRouter } from './cases.js';
import { jobsRouter } from './jobs.js';
import { masksRouter } from './masks.js';
import { modelsRouter } from './models.js';
import { studiesRouter } from './studies.js';
import { systemRouter } from './system.js';

export const appRouter = router({
  system: systemRouter,
  auth: authRouter,
  admin: adminRouter,
  cases: casesRouter,
  models: modelsRouter,
  jobs: jobsRouter,
  masks: masksRouter,
  studies: studiesRouter,
});

export type AppRouter = typeof appRouter;

/**
 * The procedures anyone may call without signing in. A test walks the router and fails when a
 * procedure is public without being listed here.
 */
export const PUBLIC_PROCEDURES = [
  'system.info',
  'auth.register',
  'auth.signIn',
  'auth.signOut',
  'auth.me',
  'auth.guest',
  'cases.list',
  'cases.byId',
  'models.list',
] as const;

/**
 * The procedures that need a browser session (the cookie), not an API token: a leaked token must
 * not mint tokens or change the password (that would turn it into the account). A test walks the
 * router and fails when a `sessionProcedure` is missing here or one listed here is not one.
 */
export const SESSION_PROCEDURES = ['auth.changePassword', 'auth.tokens.create', 'auth.tokens.list', 'auth.tokens.revoke'] as const;
