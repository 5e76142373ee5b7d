import { Hono } from 'hono';
import type { SegSource } from '../../../shared/dicom.js';
import { segSourceSchema } from '../../../shared/dicom.js';
import type { CreateRequestContext } from '../../context.js';
import { viewerOf } from '../../context.js';
import { exportSeg } from '../../dicom/export.js';
import { errorResponse } from '../../error-shapes.js';
import { invalid, unauthorized } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { segDeps } from '../../routers/masks.js';

export interface SegRoutesOptions {
  createContext: CreateRequestContext;
  log: Logger;
}

/**
 * `GET /api/masks/{id}/seg.dcm` and `GET /api/jobs/{id}/seg.dcm`: the DICOM SEG of a corrected
 * version or of a job's mask, as a file (`application/dicom`, an attachment with the case's name).
 * A bearer token (SDK, CLI) or the viewer's session cookie: a read, so a plain link downloads it.
 * Errors are the REST shape.
 */
export function segRoutes(options: SegRoutesOptions): Hono {
  const app = new Hono();
  const serve = (which: (id: string) => SegSource, field: string) =>
    app.get(`/api/${field === 'jobId' ? 'jobs' : 'masks'}/:id/seg.dcm`, async (c) => {
      const resHeaders = new Headers();
      try {
        const ctx = await options.createContext(c, { resHeaders });
        if (!ctx.user) throw unauthorized('Sign in (or send an API token) to export a DICOM SEG');
        const parsed = segSourceSchema.safeParse(which(c.req.param('id')));
        if (!parsed.success) throw invalid(parsed.error.issues.map((i) => i.message).join('; '), { field });
        const seg = await exportSeg(segDeps(ctx), viewerOf(ctx.user), parsed.data);
        ctx.log.info({ caseId: seg.caseId, frames: seg.frames, algorithm: seg.algorithmType }, 'DICOM SEG exported');
        resHeaders.forEach((v, k) => c.header(k, v, { append: k === 'set-cookie' }));
        c.header('Content-Type', 'application/dicom');
        c.header('Content-Disposition', `attachment; filename="${seg.fileName}"`);
        c.header('Cache-Control', 'private, no-store');
        return c.body(new Uint8Array(seg.bytes) as Uint8Array<ArrayBuffer>, 200);
      } catch (err) {
        const res = errorResponse(c, 'rest', err, { path: 'masks.exportSeg', log: options.log });
        resHeaders.forEach((v, k) => (k === 'set-cookie' ? res.headers.append(k, v) : res.headers.set(k, v)));
        return res;
      }
    });
  serve((id) => ({ jobId: id }), 'jobId');
  serve((id) => ({ maskVersionId: id }), 'maskVersionId');
  return app;
}
