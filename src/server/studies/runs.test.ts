import { spawn } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CaseSummary } from '../../shared/cases.js';
import type { JobView } from '../../shared/jobs.js';
import type { StudyDetail, StudyRunDetail, StudyRunSummary } from '../../shared/studies.js';
import { createClient } from '../../sdk/index.js';
import { seedDemoCases } from '../cases/demo.js';
import type { StudyRunListed } from '../db/study-runs.js';
import { gate } from '../jobs/hold.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry } from '../segmentation/models.js';
import { TestBrowser } from '../test/browser.js';
import { describeEachDatabase } from '../test/databases.js';
import { ROOT } from '../test/process.js';
import { type Running, serveStack } from '../test/stack.js';
import { estimateRunEta, reuseMinLifeMs, summarizeRun } from './runs.js';

// Study runs (#27): a model over a study's cases as ordinary jobs on the one queue — rows that are
// the jobs' own metrics, reuse and rerun, cancel as a whole, roles, priority over single jobs,
// the live progress stream, the SDK and the CLI.

let models: ModelRegistry;
beforeAll(async () => {
  models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
});
afterAll(async () => {
  await models?.close();
});

const DEADLINE_MS = 240_000;
const slow = { timeout: 400_000 };

describe('the run summary (pure, on a scripted clock)', () => {
  it('ETA: the work left over the jobs running now; null before a mean exists; 0 when done', () => {
    expect(estimateRunEta({ meanJobMs: null, queued: 3, runningStartedAt: [], now: 0 })).toBeNull();
    expect(estimateRunEta({ meanJobMs: 10_000, queued: 0, runningStartedAt: [], now: 0 })).toBe(0);
    // 4 queued × 10 s + one running for 4 s of its 10 s, on one worker: 46 s
    expect(estimateRunEta({ meanJobMs: 10_000, queued: 4, runningStartedAt: [96_000], now: 100_000 })).toBe(46_000);
    // two running (6 s and 0 s in): (40 + 4 + 10) / 2
    expect(estimateRunEta({ meanJobMs: 10_000, queued: 4, runningStartedAt: [94_000, 100_000], now: 100_000 })).toBe(27_000);
    // a running job past the mean counts as finishing now
    expect(estimateRunEta({ meanJobMs: 10_000, queued: 1, runningStartedAt: [0], now: 100_000 })).toBe(10_000);
  });

  const run = {
    id: '00000000-0000-4000-8000-000000000001',
    study_id: '00000000-0000-4000-8000-000000000002',
    model_id: 'm',
    created_by: null,
    created_by_email: 'a@x.org',
    rerun: false,
    cancel_requested: false,
    created_at: new Date(0),
  } satisfies StudyRunListed;
  const row = (
    status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | null,
    started: number | null,
    finished: number | null,
    o: { reused?: boolean; progress?: number } = {},
  ) => ({
    case_id: 'c',
    case_name: 'c',
    subject_id: null,
    job_id: status === null ? null : 'j',
    reused: o.reused ?? false,
    status,
    progress: o.progress ?? (status === 'running' ? 50 : 0),
    message: '',
    error: null,
    version: 2,
    metrics: null,
    started_at: started === null ? null : new Date(started),
    finished_at: finished === null ? null : new Date(finished),
  });

  it('counts, status and the mean wall time from the rows', () => {
    const s = summarizeRun(
      run,
      [row('succeeded', 0, 8_000), row('succeeded', 10_000, 22_000), row('running', 25_000, null), row('queued', null, null)],
      30_000,
    );
    expect(s).toMatchObject({
      status: 'running',
      total: 4,
      succeeded: 2,
      running: 1,
      queued: 1,
      failed: 0,
      meanJobSeconds: 10,
      version: 8,
    });
    // (1 × 10 s + (10 − 5) s) / 1 running
    expect(s.etaSeconds).toBe(15);
    expect(s.progress).toBe(62.5);
    expect(summarizeRun(run, [row('succeeded', 0, 1), row('failed', 0, 1)], 5).status).toBe('failed');
    // a cancel asked too late to stop anything leaves a run that succeeded
    expect(summarizeRun({ ...run, cancel_requested: true }, [row('succeeded', 0, 1)], 5).status).toBe('succeeded');
  });

  it('a finished run is 100 % done: failed, cancelled and deleted cases count as done, not as 0', () => {
    const s = summarizeRun(
      run,
      [row('succeeded', 0, 1), row('failed', null, null, { progress: 40 }), row('cancelled', null, null), row(null, null, null)],
      5,
    );
    expect(s).toMatchObject({ status: 'cancelled', progress: 100, failed: 2, cancelled: 1, succeeded: 1, etaSeconds: 0 });
    // while running, a failed case is its whole share too: 2 of 4 done + one at 50 %
    expect(
      summarizeRun(run, [row('failed', null, null), row('succeeded', 0, 1), row('running', 0, null), row('queued', null, null)], 5)
        .progress,
    ).toBe(62.5);
  });

  it("the ETA's mean job time leaves out reused results (they took no time of this run)", () => {
    const s = summarizeRun(
      run,
      [
        row('succeeded', 0, 10_000),
        // reused: done in another run, in 0 s or in any time: none of it this run's
        row('succeeded', 5_000, 5_000, { reused: true }),
        row('succeeded', 0, 90_000, { reused: true }),
        row('queued', null, null),
      ],
      20_000,
    );
    expect([s.meanJobSeconds, s.etaSeconds, s.reused]).toEqual([10, 10, 2]);
  });

  it('reuse wants a result kept for at least a day (half the retention when that is shorter)', () => {
    expect(reuseMinLifeMs(30)).toBe(86_400_000);
    expect(reuseMinLifeMs(1)).toBe(43_200_000);
  });
});

describeEachDatabase('study runs', (current) => {
  const running: Running = [];
  afterEach(async () => {
    for (const r of running.splice(0).reverse()) await r.stop();
  });

  async function setup(opts: { cases?: number; hold?: ReturnType<typeof gate>; env?: Record<string, string> } = {}) {
    const database = current().handle;
    const { store, server } = await serveStack({
      database,
      models,
      running,
      prefix: 'sv-runs-',
      ...(opts.hold ? { hold: opts.hold.hold } : {}),
      ...(opts.env ? { env: opts.env } : {}),
    });
    await seedDemoCases(database.db, store, opts.cases ?? 3);
    const user = async (email: string) => {
      const b = new TestBrowser(server.url);
      expect((await b.mutate('auth.register', { email, password: 'correct horse battery' })).status).toBe(200);
      return b;
    };
    const [owner, editor, viewer, outsider] = await Promise.all(
      ['owner@x.org', 'editor@x.org', 'viewer@x.org', 'outsider@x.org'].map(user),
    );
    const study = (await owner!.mutate<StudyDetail>('studies.create', { name: 'Phantoms' })).data;
    await owner!.mutate('studies.members.set', { studyId: study.id, email: 'editor@x.org', role: 'editor' });
    await owner!.mutate('studies.members.set', { studyId: study.id, email: 'viewer@x.org', role: 'viewer' });
    const demos = (await owner!.query<{ items: CaseSummary[] }>('cases.list')).data.items.filter((c) => c.demo);
    expect((await owner!.mutate('studies.cases.add', { studyId: study.id, caseIds: demos.map((c) => c.id) })).status).toBe(200);
    const token = async (b: TestBrowser) => (await b.mutate<{ token: string }>('auth.tokens.create', { name: 'sdk' })).data.token;
    return { server, study, demos, owner: owner!, editor: editor!, viewer: viewer!, outsider: outsider!, token };
  }

  async function until(b: TestBrowser, runId: string, ok: (r: StudyRunDetail) => boolean): Promise<StudyRunDetail> {
    const deadline = Date.now() + DEADLINE_MS;
    for (;;) {
      const r = await b.query<StudyRunDetail>('studies.runs.byId', { id: runId });
      expect(r.status).toBe(200);
      if (ok(r.data)) return r.data;
      if (Date.now() > deadline) throw new Error(`the run never got there; last: ${JSON.stringify(r.data).slice(0, 400)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it(
    "a run over three phantoms: each row is its job's own metrics; again reuses them; rerun queues anew; who may do what",
    slow,
    async () => {
      const { study, demos, owner, editor, viewer, outsider } = await setup();

      // roles: a viewer may not run (FORBIDDEN saying why), a non-member learns nothing (NOT_FOUND)
      const refused = await viewer.mutate('studies.run', { studyId: study.id });
      expect([refused.status, refused.body.error?.message]).toEqual([
        403,
        "Only the study's owners and editors may run models on it; you are a viewer of it",
      ]);
      expect((await outsider.mutate('studies.run', { studyId: study.id })).status).toBe(404);
      const unknownModel = await editor.mutate('studies.run', { studyId: study.id, modelId: 'no-such-model' });
      expect([unknownModel.status, unknownModel.body.error?.data.fieldErrors]).toEqual([
        400,
        { modelId: ['Unknown model: no-such-model'] },
      ]);

      const started = await editor.mutate<StudyRunDetail>('studies.run', { studyId: study.id });
      expect(started.status).toBe(200);
      expect(started.data).toMatchObject({ total: 3, reused: 0, modelId: 'adc-dwi-v2', createdBy: 'editor@x.org', status: 'running' });
      const runId = started.data.id;
      for (const b of [outsider]) expect((await b.query('studies.runs.byId', { id: runId })).status).toBe(404);
      expect((await outsider.mutate('studies.runs.cancel', { id: runId })).status).toBe(404);
      expect((await viewer.mutate('studies.runs.cancel', { id: runId })).status).toBe(403);

      const done = await until(viewer, runId, (r) => r.status !== 'running');
      expect(done).toMatchObject({
        status: 'succeeded',
        total: 3,
        succeeded: 3,
        failed: 0,
        cancelled: 0,
        queued: 0,
        running: 0,
        progress: 100,
        etaSeconds: 0,
      });
      expect(done.meanJobSeconds).toBeGreaterThan(0);
      expect(done.cases.map((c) => c.caseName).sort()).toEqual(demos.map((c) => c.name).sort());
      for (const row of done.cases) {
        // the editor queued them: their own jobs, whose metrics the row must be
        const job = await editor.query<JobView>('jobs.byId', { id: row.jobId });
        expect(job.status).toBe(200);
        expect(job.data.caseId).toBe(row.caseId);
        expect(row.metrics).toEqual(job.data.result!.metrics);
        expect(row.metrics!.dice).toBeGreaterThan(0.5);
        expect(row.status).toBe('succeeded');
      }

      // a member opens a row's result (read only); an outsider learns nothing; cancelling stays the owner's
      const aJob = done.cases[0]!.jobId!;
      const read = await viewer.query<JobView>('jobs.byId', { id: aJob });
      expect([read.status, read.data.result?.metrics]).toEqual([200, done.cases[0]!.metrics]);
      expect((await outsider.query('jobs.byId', { id: aJob })).status).toBe(404);
      expect((await viewer.mutate('jobs.cancel', { id: aJob })).status).toBe(404);

      // the same run again (by the owner): every case answered by the first run's job, nothing queued
      const again = await owner.mutate<StudyRunDetail>('studies.run', { studyId: study.id, modelId: 'adc-dwi-v2' });
      expect(again.data).toMatchObject({ status: 'succeeded', total: 3, reused: 3, succeeded: 3 });
      const byCase = (r: StudyRunDetail) => Object.fromEntries(r.cases.map((c) => [c.caseId, c.jobId]));
      expect(byCase(again.data)).toEqual(byCase(done));
      // one case only
      const one = await owner.mutate<StudyRunDetail>('studies.run', { studyId: study.id, caseIds: [demos[0]!.id] });
      expect(one.data).toMatchObject({ total: 1, reused: 1 });
      const notInStudy = await owner.mutate('studies.run', { studyId: study.id, caseIds: [study.id] });
      expect([notInStudy.status, Object.keys(notInStudy.body.error?.data.fieldErrors ?? {})]).toEqual([400, ['caseIds']]);

      // rerun: new jobs for every case
      const rerun = await owner.mutate<StudyRunDetail>('studies.run', { studyId: study.id, rerun: true });
      expect(rerun.data).toMatchObject({ total: 3, reused: 0, rerun: true });
      const rerunDone = await until(owner, rerun.data.id, (r) => r.status !== 'running');
      expect(rerunDone.succeeded).toBe(3);
      for (const c of rerunDone.cases) expect(c.jobId).not.toBe(byCase(done)[c.caseId]);
      // the same model on the same input gives the same numbers
      for (const c of rerunDone.cases) expect(c.metrics).toEqual(done.cases.find((d) => d.caseId === c.caseId)!.metrics);

      const runs = await viewer.query<StudyRunSummary[]>('studies.runs.list', { studyId: study.id });
      expect(runs.data.map((r) => [r.total, r.reused, r.status])).toEqual([
        [3, 0, 'succeeded'],
        [1, 1, 'succeeded'],
        [3, 3, 'succeeded'],
        [3, 0, 'succeeded'],
      ]);
      expect((await outsider.query('studies.runs.list', { studyId: study.id })).status).toBe(404);
    },
  );

  it('cancel stops the rest as a whole: the running job at its next stage, the queued ones at once', slow, async () => {
    const held = gate('infer');
    const { study, owner, editor, viewer } = await setup({ hold: held });
    const started = (await editor.mutate<StudyRunDetail>('studies.run', { studyId: study.id })).data;
    const heldJob = await held.reached;
    const mid = await until(viewer, started.id, (r) => r.running === 1);
    expect(mid).toMatchObject({ status: 'running', queued: 2, running: 1, etaSeconds: null });
    expect(mid.cases.find((c) => c.status === 'running')!.jobId).toBe(heldJob);

    // a second run while the first is under way answers every case with the first's jobs
    const shared = (await owner.mutate<StudyRunDetail>('studies.run', { studyId: study.id })).data;
    expect(shared).toMatchObject({ total: 3, reused: 3, status: 'running' });
    const jobsOf = (r: StudyRunDetail) => r.cases.map((c) => c.jobId).sort();
    expect(jobsOf(shared)).toEqual(jobsOf(mid));
    // cancelling the first stops nothing the second still wants
    const first = await editor.mutate<StudyRunDetail>('studies.runs.cancel', { id: started.id });
    expect(first.status).toBe(200);
    expect(first.data).toMatchObject({ cancelRequested: true, status: 'running', cancelled: 0, queued: 2, running: 1 });

    const cancelled = await owner.mutate<StudyRunDetail>('studies.runs.cancel', { id: shared.id });
    expect(cancelled.status).toBe(200);
    // the queued ones at once; the held one still running until it reaches its next stage
    expect(cancelled.data).toMatchObject({ cancelRequested: true, status: 'running', cancelled: 2, running: 1 });
    held.release();
    for (const id of [shared.id, started.id]) {
      const end = await until(viewer, id, (r) => r.status !== 'running');
      expect(end).toMatchObject({ status: 'cancelled', cancelled: 3, succeeded: 0, failed: 0 });
      expect(end.cases.every((c) => c.status === 'cancelled')).toBe(true);
    }
    const end = await until(viewer, started.id, () => true);
    // cancelled jobs are not results: the next run queues them again
    const next = (await editor.mutate<StudyRunDetail>('studies.run', { studyId: study.id, caseIds: [end.cases[0]!.caseId] })).data;
    expect(next).toMatchObject({ reused: 0, total: 1 });
    expect((await until(viewer, next.id, (r) => r.status !== 'running')).status).toBe('succeeded');
  });

  it('deleting a study with a run in flight cancels the run first: its jobs do not live on as single jobs', slow, async () => {
    const held = gate('infer');
    const { study, owner, editor } = await setup({ hold: held });
    const started = (await editor.mutate<StudyRunDetail>('studies.run', { studyId: study.id })).data;
    const heldJob = await held.reached;
    // the runs, a page at a time
    const page = await editor.query<{ items: StudyRunSummary[]; nextCursor: string | null }>('studies.runs.page', {
      studyId: study.id,
      limit: 1,
    });
    expect([page.status, page.data.items.map((r) => r.id), page.data.nextCursor]).toEqual([200, [started.id], null]);
    expect((await editor.mutate('studies.delete', { id: study.id })).status).toBe(403);
    expect((await owner.mutate('studies.delete', { id: study.id })).status).toBe(200);
    held.release();
    const jobIds = started.cases.map((c) => c.jobId!);
    const deadline = Date.now() + DEADLINE_MS;
    for (;;) {
      const jobs = await Promise.all(jobIds.map(async (id) => (await editor.query<JobView>('jobs.byId', { id })).data));
      if (jobs.every((j) => ['succeeded', 'failed', 'cancelled'].includes(j.status))) {
        // the queued ones at once, the held one at its next stage: none ran on
        expect(jobs.map((j) => j.status)).toEqual(['cancelled', 'cancelled', 'cancelled']);
        expect(jobs.find((j) => j.id === heldJob)!.status).toBe('cancelled');
        break;
      }
      if (Date.now() > deadline) throw new Error(`the jobs never ended: ${JSON.stringify(jobs.map((j) => j.status))}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await editor.query('studies.runs.byId', { id: started.id })).status).toBe(404);
  });

  it('resume after a restart: the run is where its jobs are, and finishes on the next process', slow, async () => {
    const held = gate('infer'); // never released: only the shutdown moves the held job
    const database = current().handle;
    const first: Running = [];
    const a = await serveStack({ database, models, running: first, prefix: 'sv-runs-a-', hold: held.hold });
    await seedDemoCases(database.db, a.store, 2);
    const owner = new TestBrowser(a.server.url);
    await owner.mutate('auth.register', { email: 'owner@x.org', password: 'correct horse battery' });
    const study = (await owner.mutate<StudyDetail>('studies.create', { name: 'Restart' })).data;
    const demos = (await owner.query<{ items: CaseSummary[] }>('cases.list')).data.items.filter((c) => c.demo);
    await owner.mutate('studies.cases.add', { studyId: study.id, caseIds: demos.map((c) => c.id) });
    const run = (await owner.mutate<StudyRunDetail>('studies.run', { studyId: study.id })).data;
    const heldJob = await held.reached;
    // the process stops: the held job is handed back to the queue, the other never started
    for (const r of first.reverse()) await r.stop();

    const b = await serveStack({ database, models, running, prefix: 'sv-runs-b-', store: a.store });
    const again = new TestBrowser(b.server.url);
    for (const [k, v] of owner.cookies) again.cookies.set(k, v);
    const done = await until(again, run.id, (r) => r.status !== 'running');
    expect(done).toMatchObject({ status: 'succeeded', succeeded: 2, total: 2 });
    const resumed = (await again.query<JobView>('jobs.byId', { id: heldJob })).data;
    expect(resumed).toMatchObject({ status: 'succeeded', attempts: 2 });
  });

  it(
    "admission: a user's run jobs in flight are capped (MAX_RUN_JOBS_PER_USER), across runs; nothing is queued by a refused run",
    slow,
    async () => {
      const held = gate('infer');
      const { study, demos, editor } = await setup({ hold: held, env: { MAX_RUN_JOBS_PER_USER: '2' } });
      const whole = await editor.mutate('studies.run', { studyId: study.id });
      expect(whole.status).toBe(429);
      expect(whole.body.error?.message).toMatch(/0 study-run job\(s\) queued or running; this run would add up to 3 \(at most 2 at once\)/);
      expect((await editor.query<StudyRunSummary[]>('studies.runs.list', { studyId: study.id })).data).toEqual([]);
      const two = await editor.mutate<StudyRunDetail>('studies.run', { studyId: study.id, caseIds: demos.slice(0, 2).map((c) => c.id) });
      expect(two.status).toBe(200);
      await held.reached;
      const more = await editor.mutate('studies.run', { studyId: study.id, caseIds: [demos[2]!.id], rerun: true });
      expect(more.status).toBe(429);
      held.release();
      const done = await until(editor, two.data.id, (r) => r.status !== 'running');
      expect(done.succeeded).toBe(2);
      // the run's jobs ended: the cap has room again
      expect((await editor.mutate('studies.run', { studyId: study.id, caseIds: [demos[2]!.id] })).status).toBe(200);
    },
  );

  it(
    'admission: a single job submitted mid-run starts before the rest of the run, and the run does not count against the single-job cap',
    slow,
    async () => {
      const held = gate('infer');
      const { study, demos, editor } = await setup({ hold: held, env: { MAX_ACTIVE_JOBS_PER_USER: '1' } });
      const run = (await editor.mutate<StudyRunDetail>('studies.run', { studyId: study.id })).data;
      await held.reached; // one run job on the (only) worker, two queued behind it
      const single = await editor.mutate<JobView>('jobs.create', { caseId: demos[0]!.id });
      expect(single.status).toBe(200);
      held.release();
      const done = await until(editor, run.id, (r) => r.status !== 'running');
      expect(done.succeeded).toBe(3);
      const singleDone = (await editor.query<JobView>('jobs.byId', { id: single.data.id })).data;
      expect(singleDone.status).toBe('succeeded');
      const starts = done.cases.map((c) => new Date(c.startedAt!).getTime()).sort((a, b) => a - b);
      const singleStart = new Date(singleDone.startedAt!).getTime();
      // the first run job was already running; the single job came next, before the other two
      expect(singleStart).toBeGreaterThanOrEqual(starts[0]!);
      expect(singleStart).toBeLessThanOrEqual(starts[1]!);
    },
  );

  it(
    'MAX_RUN_JOBS_IN_FLIGHT: with two worker slots and a cap of one job per run, a second run starts while the first is still running',
    slow,
    async () => {
      // Holds every job at inference and says which jobs are held, in the order they arrived.
      const heldIds: string[] = [];
      let twoHeld!: () => void;
      const bothHeld = new Promise<void>((r) => (twoHeld = r));
      const open = gate('infer');
      const counting = {
        ...open,
        hold: async (at: Parameters<typeof open.hold>[0]) => {
          if (at.stage === 'infer' && !heldIds.includes(at.jobId)) heldIds.push(at.jobId);
          if (heldIds.length >= 2) twoHeld();
          await open.hold(at);
        },
      };
      const { study, owner } = await setup({ hold: counting, env: { WORKER_CONCURRENCY: '2', MAX_RUN_JOBS_IN_FLIGHT: '1' } });
      const first = (await owner.mutate<StudyRunDetail>('studies.run', { studyId: study.id })).data;
      await open.reached; // the first run's first job holds one slot; the cap keeps the other free
      const second = await owner.mutate<StudyRunDetail>('studies.run', { studyId: study.id, rerun: true });
      expect(second.status).toBe(200);
      await bothHeld;
      const runsOfHeld = await current().handle.db.selectFrom('jobs').select('study_run_id').where('id', 'in', heldIds).execute();
      // one job of each run: without the cap the free slot takes the first run's second job
      expect(runsOfHeld.map((r) => r.study_run_id).sort()).toEqual([first.id, second.data.id].sort());
      open.release();
      for (const id of [first.id, second.data.id]) expect((await until(owner, id, (r) => r.status !== 'running')).succeeded).toBe(3);
    },
  );

  it(
    'the SDK follows a run over its progress stream (counts only grow) and the CLI prints one progress line per change',
    slow,
    async () => {
      const { server, study, editor, token } = await setup({ cases: 2 });
      const sv = createClient({ url: server.url, token: await token(editor), retry: false });
      const seen: StudyRunSummary[] = [];
      const run = await sv.runStudy(study.id, { onProgress: (r) => seen.push(r) });
      expect(run).toMatchObject({ status: 'succeeded', total: 2, succeeded: 2 });
      const finished = seen.map((r) => r.succeeded + r.failed + r.cancelled);
      expect(finished).toEqual([...finished].sort((a, b) => a - b));
      expect(seen.at(-1)!.status).toBe('succeeded');
      const versions = seen.slice(1).map((r) => r.version);
      expect(versions).toEqual([...versions].sort((a, b) => a - b));

      // resumed after the end with its last event id: nothing more is sent
      const sse = await fetch(
        `${server.url}/trpc/studies.runs.onProgress?input=${encodeURIComponent(JSON.stringify({ id: run.id, lastEventId: String(run.version) }))}`,
        { headers: { accept: 'text/event-stream', authorization: `Bearer ${await token(editor)}` }, signal: AbortSignal.timeout(8000) },
      ).then((r) => r.text());
      expect(sse).not.toMatch(/^id: /m);

      // the CLI from its sources, against this server: a rerun with --wait, plain lines (no TTY)
      const cliToken = await token(editor);
      const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn(
          process.execPath,
          ['--import', 'tsx', 'src/cli/index.ts', 'studies', 'run', study.id, '--model', 'adc-dwi-v2', '--rerun', '--wait'],
          {
            cwd: ROOT,
            env: { PATH: process.env.PATH ?? '', STROKEVIEW_URL: server.url, STROKEVIEW_TOKEN: cliToken },
          },
        );
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d: Buffer) => (stdout += d));
        p.stderr.on('data', (d: Buffer) => (stderr += d));
        p.on('close', (code) => resolve({ code, stdout, stderr }));
      });
      expect([out.code, out.stderr]).toEqual([
        0,
        // the first line is the run as the stream first saw it: a job may already have finished on a busy machine
        expect.stringMatching(/^[0-2]\/2 (running|succeeded): [0-2] done, 0 failed, 0 cancelled, \d running, \d queued; ETA /),
      ]);
      expect(out.stderr.trimEnd().split('\n').at(-1)).toMatch(
        /^2\/2 succeeded: 2 done, 0 failed, 0 cancelled, 0 running, 0 queued; ETA 0 s$/,
      );
      expect(out.stdout).toMatch(/^run \S+: succeeded \(adc-dwi-v2\) — 2\/2 done, 0 failed, 0 cancelled\n/);
      expect(out.stdout).toContain('Demo phantom 1');
    },
  );
});
