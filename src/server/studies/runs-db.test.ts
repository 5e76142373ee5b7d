import { type Kysely, sql } from 'kysely';
import { expect, it } from 'vitest';
import {
  cancelRunJobs,
  insertRunJobs,
  insertStudyRun,
  linkRunJobs,
  listStudyRunAggregates,
  listStudyRuns,
  reusableJobs,
  runCaseRows,
} from '../db/study-runs.js';
import type { Database, JobStatus } from '../db/tables.js';
import { describeEachDatabase } from '../test/databases.js';
import { aggregateRows, reuseMinLifeMs, summarizeRun, summaryOf } from './runs.js';

// Study runs at the database (#27 review): a run over more cases than one statement can bind,
// reuse that skips results about to expire, the runs list aggregated in one query (equal to the
// summary computed from the rows), and the set-based cancel.

type Db = Kysely<Database>;

describeEachDatabase('study runs at the database', (current) => {
  async function fixture(db: Db, cases: number) {
    const user = await db
      .insertInto('users')
      .values({ email: 'owner@x.org', password_hash: null })
      .returning('id')
      .executeTakeFirstOrThrow();
    const study = await db.insertInto('studies').values({ name: 'S', created_by: user.id }).returning('id').executeTakeFirstOrThrow();
    const ids: string[] = [];
    for (let i = 0; i < cases; i += 2000) {
      const rows = Array.from({ length: Math.min(2000, cases - i) }, (_, k) => ({
        owner_id: user.id,
        name: `sub-${String(i + k).padStart(5, '0')}`,
        source: 'upload' as const,
      }));
      ids.push(...(await db.insertInto('cases').values(rows).returning('id').execute()).map((r) => r.id));
    }
    return { userId: user.id, studyId: study.id, caseIds: ids };
  }

  it(
    'a run over 11,000 cases (more bind parameters than one statement takes) is written and looked up in chunks',
    { timeout: 120_000 },
    async () => {
      const db = current().handle.db;
      const f = await fixture(db, 11_000);
      const expiresAt = new Date(Date.now() + 30 * 86_400_000);
      const { runId, count } = await db.transaction().execute(async (trx) => {
        const run = await insertStudyRun(trx, { studyId: f.studyId, modelId: 'm', createdBy: f.userId, rerun: false });
        const reuse = await reusableJobs(trx, {
          studyId: f.studyId,
          userId: f.userId,
          modelId: 'm',
          caseIds: f.caseIds,
          liveUntil: new Date(),
        });
        expect(reuse.size).toBe(0);
        const jobs = await insertRunJobs(trx, { runId: run.id, ownerId: f.userId, modelId: 'm', caseIds: f.caseIds, expiresAt });
        await linkRunJobs(
          trx,
          run.id,
          jobs.map((j) => ({ caseId: j.case_id, jobId: j.id, reused: false })),
        );
        return { runId: run.id, count: jobs.length };
      });
      expect(count).toBe(11_000);
      expect((await runCaseRows(db, runId)).length).toBe(11_000);
      // a second run finds every case's job (still queued) across the chunks
      const again = await reusableJobs(db, {
        studyId: f.studyId,
        userId: f.userId,
        modelId: 'm',
        caseIds: f.caseIds,
        liveUntil: new Date(),
      });
      expect(again.size).toBe(11_000);
      const [agg] = await listStudyRunAggregates(db, f.studyId, { limit: 10 });
      expect(agg).toMatchObject({ total: 11_000, queued: 11_000, progress_sum: 0 });
    },
  );

  it('reuse skips a result that expires before the run would need it', async () => {
    const db = current().handle.db;
    const f = await fixture(db, 2);
    const base = { owner_id: f.userId, model_ids: JSON.stringify(['m']), status: 'succeeded' as const, progress: 100 };
    const soon = new Date(Date.now() + 3_600_000);
    const later = new Date(Date.now() + 10 * 86_400_000);
    await db
      .insertInto('jobs')
      .values([
        { ...base, case_id: f.caseIds[0]!, expires_at: soon },
        { ...base, case_id: f.caseIds[1]!, expires_at: later },
      ])
      .execute();
    const liveUntil = new Date(Date.now() + reuseMinLifeMs(30));
    const found = await reusableJobs(db, { studyId: f.studyId, userId: f.userId, modelId: 'm', caseIds: f.caseIds, liveUntil });
    expect([...found.keys()]).toEqual([f.caseIds[1]]);
  });

  it('runs.list in one query: each aggregate equals the summary from its rows; keyset pages', async () => {
    const db = current().handle.db;
    const f = await fixture(db, 6);
    const statuses: (JobStatus | 'deleted')[] = ['succeeded', 'succeeded', 'failed', 'running', 'queued', 'deleted'];
    const t0 = Date.now() - 60_000;
    const runIds: string[] = [];
    for (let r = 0; r < 3; r++) {
      const run = await insertStudyRun(db, { studyId: f.studyId, modelId: `m${r}`, createdBy: f.userId, rerun: false });
      await sql`update study_runs set created_at = ${new Date(t0 + r * 1000)} where id = ${run.id}`.execute(db);
      runIds.push(run.id);
      for (const [i, caseId] of f.caseIds.entries()) {
        const st = r === 2 ? 'succeeded' : statuses[i]!;
        const job = await db
          .insertInto('jobs')
          .values({
            owner_id: f.userId,
            case_id: caseId,
            model_ids: JSON.stringify([`m${r}`]),
            status: st === 'deleted' ? 'succeeded' : st,
            progress: st === 'running' ? 30 : st === 'succeeded' ? 100 : 0,
            version: 3 + i,
            started_at: st === 'queued' ? null : new Date(t0 + i * 1000),
            finished_at: st === 'succeeded' || st === 'failed' ? new Date(t0 + i * 1000 + 4000 + i * 500) : null,
            expires_at: new Date(Date.now() + 86_400_000),
            study_run_id: run.id,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        await linkRunJobs(db, run.id, [{ caseId, jobId: job.id, reused: i === 1 }]);
        if (st === 'deleted') await db.deleteFrom('jobs').where('id', '=', job.id).execute();
      }
    }
    const now = Date.now();
    const all = await listStudyRunAggregates(db, f.studyId, { limit: 10 });
    expect(all.map((r) => r.id)).toEqual([...runIds].reverse());
    const listed = await listStudyRuns(db, f.studyId);
    for (const agg of all) {
      const run = listed.find((r) => r.id === agg.id)!;
      const fromRows = summarizeRun(run, await runCaseRows(db, run.id), now);
      expect(summaryOf(agg, agg, now)).toEqual(fromRows);
      expect(aggregateRows(await runCaseRows(db, run.id)).total).toBe(6);
    }
    // keyset paging: two, then the third, then none
    const p1 = await listStudyRunAggregates(db, f.studyId, { limit: 2 });
    expect(p1.length).toBe(3); // limit + 1: there is a next page
    const p2 = await listStudyRunAggregates(db, f.studyId, { limit: 2, cursor: p1[1]!.id });
    expect(p2.map((r) => r.id)).toEqual([runIds[0]]);
  });

  it('cancel is set-based: queued jobs cancelled and running ones asked to stop in one statement each; shared and single jobs kept', async () => {
    const db = current().handle.db;
    const f = await fixture(db, 4);
    const a = await insertStudyRun(db, { studyId: f.studyId, modelId: 'm', createdBy: f.userId, rerun: false });
    const b = await insertStudyRun(db, { studyId: f.studyId, modelId: 'm', createdBy: f.userId, rerun: false });
    const job = (caseId: string, status: JobStatus, runId: string | null) =>
      db
        .insertInto('jobs')
        .values({
          owner_id: f.userId,
          case_id: caseId,
          model_ids: JSON.stringify(['m']),
          status,
          expires_at: new Date(Date.now() + 86_400_000),
          study_run_id: runId,
        })
        .returning('id')
        .executeTakeFirstOrThrow()
        .then((r) => r.id);
    const queued = await job(f.caseIds[0]!, 'queued', a.id);
    const running = await job(f.caseIds[1]!, 'running', a.id);
    const single = await job(f.caseIds[2]!, 'queued', null); // a single job the run reused
    const shared = await job(f.caseIds[3]!, 'queued', a.id); // run b still wants it
    await linkRunJobs(db, a.id, [
      { caseId: f.caseIds[0]!, jobId: queued, reused: false },
      { caseId: f.caseIds[1]!, jobId: running, reused: false },
      { caseId: f.caseIds[2]!, jobId: single, reused: true },
      { caseId: f.caseIds[3]!, jobId: shared, reused: false },
    ]);
    await linkRunJobs(db, b.id, [{ caseId: f.caseIds[3]!, jobId: shared, reused: true }]);
    const { cancelled, requested } = await cancelRunJobs(db, [a.id]);
    expect(cancelled.map((j) => [j.id, j.status, j.cancel_requested])).toEqual([[queued, 'cancelled', true]]);
    expect(requested.map((j) => [j.id, j.status, j.cancel_requested])).toEqual([[running, 'running', true]]);
    const left = await db.selectFrom('jobs').select(['id', 'status', 'cancel_requested']).where('id', 'in', [single, shared]).execute();
    expect(left.every((j) => j.status === 'queued' && !j.cancel_requested)).toBe(true);
    // again: nothing more to change (a cancel asked twice announces nothing twice)
    expect(await cancelRunJobs(db, [a.id])).toEqual({ cancelled: [], requested: [] });
  });
});
