import { Hono } from 'hono';
import { z } from 'zod';
import type { CreateRequestContext } from '../../context.js';
import { viewerOf } from '../../context.js';
import { errorResponse } from '../../error-shapes.js';
import { invalid, unauthorized } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { bidsExport } from '../../studies/bids.js';
import { tableCsv } from '../../studies/table.js';

export interface StudyExportRoutesOptions {
  createContext: CreateRequestContext;
  log: Logger;
}

const exportQuery = z.object({
  id: z.uuid({ message: 'Not a valid study id' }),
  runId: z.uuid({ message: 'Not a valid run id' }).optional(),
  corrected: z.enum(['true', 'false']).optional(),
});

/**
 * `GET /api/studies/{id}/table.csv` (the study table, one row per case × run) and
 * `GET /api/studies/{id}/bids.zip` (BIDS derivatives; `?corrected=true` adds each rater's latest
 * version): files streamed as they are made, for any member of the study, with a bearer token or
 * the viewer's session cookie (reads, so a plain link downloads them). `?runId=` picks one run;
 * by default the newest run of each model. Errors are the REST shape, sent before the first byte.
 */
export function studyExportRoutes(options: StudyExportRoutesOptions): Hono {
  const app = new Hono();
  const route = (file: 'table.csv' | 'bids.zip', path: string) =>
    app.get(`/api/studies/:id/${file}`, async (c) => {
      const resHeaders = new Headers();
      const copyHeaders = (res: Response) =>
        resHeaders.forEach((v, k) => (k === 'set-cookie' ? res.headers.append(k, v) : res.headers.set(k, v)));
      try {
        const ctx = await options.createContext(c, { resHeaders });
        if (!ctx.user) throw unauthorized('Sign in (or send an API token) to export a study');
        const parsed = exportQuery.safeParse({ id: c.req.param('id'), ...c.req.query() });
        if (!parsed.success) {
          const issue = parsed.error.issues[0]!;
          throw invalid(issue.message, { field: String(issue.path[0] ?? 'id') });
        }
        const viewer = viewerOf(ctx.user);
        const input = { studyId: parsed.data.id, runId: parsed.data.runId };
        let res: Response;
        if (file === 'table.csv') {
          const lines = tableCsv(ctx.db, viewer, input);
          // the first chunk (the header) after access is checked: a refusal is still a clean 4xx
          const first = await lines.next();
          const body = new ReadableStream<Uint8Array>({
            start(controller) {
              if (!first.done) controller.enqueue(new TextEncoder().encode(first.value));
            },
            async pull(controller) {
              const next = await lines.next();
              if (next.done) controller.close();
              else controller.enqueue(new TextEncoder().encode(next.value));
            },
            async cancel() {
              await lines.return(undefined);
            },
          });
          res = new Response(body, {
            headers: {
              'Content-Type': 'text/csv; charset=utf-8; header=present',
              'Content-Disposition': `attachment; filename="study-${parsed.data.id}.csv"`,
            },
          });
        } else {
          const zip = await bidsExport(
            { db: ctx.db, store: ctx.store, modelVersion: (id) => ctx.models.models.get(id)?.manifest.version ?? null },
            viewer,
            { ...input, corrected: parsed.data.corrected === 'true' },
          );
          res = new Response(zip.stream, {
            headers: { 'Content-Type': 'application/zip', 'Content-Disposition': `attachment; filename="${zip.fileName}"` },
          });
        }
        ctx.log.info({ studyId: parsed.data.id, runId: parsed.data.runId ?? null, file }, 'study exported');
        res.headers.set('Cache-Control', 'private, no-store');
        copyHeaders(res);
        return res;
      } catch (err) {
        const res = errorResponse(c, 'rest', err, { path, log: options.log });
        copyHeaders(res);
        return res;
      }
    });
  route('table.csv', 'studies.tableCsv');
  route('bids.zip', 'studies.bidsZip');
  return app;
}
