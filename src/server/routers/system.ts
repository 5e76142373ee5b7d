import { sql } from 'kysely';
import { publicProcedure, router } from '../trpc.js';

export const systemRouter = router({
  /** Public: version, database kind and uptime. Touches the database so it proves the whole path. */
  info: publicProcedure.query(async ({ ctx }) => {
    await sql`select 1`.execute(ctx.db);
    return {
      version: ctx.process.version,
      database: ctx.dbKind,
      uptimeSeconds: Math.round((Date.now() - ctx.process.startedAt) / 1000),
      /** Whether `auth.guest` works here (the viewer shows "Continue as guest" only then). */
      allowGuests: ctx.config.ALLOW_GUESTS,
      /** Whether a PACS is configured (the viewer offers "Send to PACS" only then). */
      pacs: Boolean(ctx.config.PACS_URL),
    };
  }),
});
