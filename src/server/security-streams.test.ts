import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { PublicUser } from '../shared/auth.js';
import type { JobView } from '../shared/jobs.js';
import { ensureAdmin } from './auth/service.js';
import { seedDemoCases } from './cases/demo.js';
import { findJob } from './db/jobs.js';
import { parseEnv } from './env.js';
import { type JobHold, gate } from './jobs/hold.js';
import { CREDENTIAL_ENDED } from './jobs/progress-stream.js';
import { startJobRuntime } from './jobs/runtime.js';
import { createLogger } from './logger.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry } from './segmentation/models.js';
import { makeTestApp } from './test/app.js';
import { TestBrowser } from './test/browser.js';
import { describeEachDatabase } from './test/databases.js';
import { serveApp } from './test/live.js';
import { FsVolumeStore } from './volumes/store.js';

/**
 * #23 findings 8, 9 and 12 over real HTTP: progress streams take only event ids the server could
 * have sent and end at any terminal row; an open stream ends when its credential does (sign-out,
 * revoked token, disabled account) and disabling cancels the account's jobs; /metrics is for
 * operators only. Jobs that must be "still running" are held with a gate, never made slow.
 */

const PASSWORD = 'correct horse battery';
const ADMIN = { email: 'admin@x.org', password: 'the admin secret!' };
const METRICS_TOKEN = 'metrics-token-0123456789abcdef';

let models: ModelRegistry;
beforeAll(async () => {
  models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
});
afterAll(async () => {
  await models?.close();
});

interface SseEvent {
  event: string | undefined;
  id: string | undefined;
  data: string;
}

/** The events of an SSE body (tRPC sends `connected`, `ping`, data events with an id, `serialized-error`). */
function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim())
    .map((block) => {
      const e: SseEvent = { event: undefined, id: undefined, data: '' };
      for (const line of block.split('\n')) {
        const i = line.indexOf(':');
        const field = line.slice(0, i);
        const value = line.slice(i + 1).replace(/^ /, '');
        if (field === 'event') e.event = value;
        else if (field === 'id') e.id = value;
        else if (field === 'data') e.data += value;
      }
      return e;
    });
}

/** What a stream carried: the job states it sent, and the error it ended with (if any). */
function outcomeOf(text: string) {
  const events = parseSse(text);
  const states = events.filter((e) => e.id !== undefined).map((e) => JSON.parse(e.data) as { status: string; version: number });
  const failure = events.find((e) => e.event === 'serialized-error');
  const error = failure ? (JSON.parse(failure.data) as { message: string; data: { code: string; httpStatus: number } }) : undefined;
  return { states, error };
}

describeEachDatabase('#23 progress streams and /metrics over real HTTP', (current) => {
  const open: { close(): Promise<void> }[] = [];
  let users = 0;
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });

  /** The real app with a real job system (a held gate, when given) on a socket; a signed-in user with an API token. */
  async function serve(opts: { env?: Record<string, string>; hold?: JobHold; runWorker?: boolean } = {}) {
    // Re-checks every 20 ms so a test waits on events, not on the 3 s default (nothing times them).
    const envVars = { STREAM_RECHECK_MS: '20', ...opts.env };
    const env = parseEnv({ NODE_ENV: 'test', ...envVars });
    const database = current().handle;
    const store = new FsVolumeStore(mkdtempSync(path.join(tmpdir(), 'sv-streams-')));
    const runtime = await startJobRuntime({
      database,
      store,
      models,
      env,
      log: createLogger({ level: 'silent' }),
      runWorker: opts.runWorker ?? true,
      ...(opts.hold ? { hold: opts.hold } : {}),
    });
    open.push({ close: () => runtime.stop(2000) });
    const t = makeTestApp({ database, models, store, jobs: runtime.jobs, env: envVars });
    const server = await serveApp(t.app);
    open.push(server);
    await seedDemoCases(database.db, store, 1);
    const user = new TestBrowser(server.url);
    const email = `u${++users}@x.org`; // a test may serve twice over one database
    expect((await user.mutate('auth.register', { email, password: PASSWORD })).status).toBe(200);
    const token = (await user.mutate<{ token: string; info: { id: string } }>('auth.tokens.create', { name: 'cli' })).data;
    const caseId = (await user.query<{ items: { id: string }[] }>('cases.list')).data.items[0]!.id;
    const create = async () => {
      const r = await user.mutate<JobView>('jobs.create', { caseId });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return r.data;
    };

    /**
     * An open jobs.onProgress stream, read as it arrives. `until` waits for the text to match
     * (and fails if the stream ends first); `ended` is the whole text once the server closes it.
     */
    const stream = (jobId: string, auth: 'cookie' | 'token', extra: { lastEventId?: string; headers?: Record<string, string> } = {}) => {
      const ctl = new AbortController();
      open.push({ close: async () => ctl.abort() });
      const input = { id: jobId, ...(extra.lastEventId !== undefined ? { lastEventId: extra.lastEventId } : {}) };
      const credential: Record<string, string> =
        auth === 'cookie' ? { cookie: user.cookieHeader()! } : { authorization: `Bearer ${token.token}` };
      let text = '';
      let changed: () => void = () => {};
      const ended = (async () => {
        const res = await fetch(`${server.url}/trpc/jobs.onProgress?input=${encodeURIComponent(JSON.stringify(input))}`, {
          headers: { accept: 'text/event-stream', ...credential, ...extra.headers },
          signal: ctl.signal,
        });
        const reader = res.body!.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          text += decoder.decode(value, { stream: true });
          changed();
        }
        changed();
        return text;
      })();
      let finished = false;
      void ended.then(
        () => (finished = true),
        () => (finished = true),
      );
      const until = (re: RegExp) =>
        new Promise<string>((resolve, reject) => {
          const check = () => {
            if (re.test(text)) resolve(text);
            else if (finished) reject(new Error(`the stream ended without ${re}: ${text}`));
          };
          const previous = changed;
          changed = () => {
            previous();
            check();
          };
          check();
        });
      return { until, ended, abort: () => ctl.abort() };
    };

    return { ...t, url: server.url, db: database.db, user, token, caseId, create, stream };
  }

  async function waitForJob(db: Awaited<ReturnType<typeof serve>>['db'], id: string, ok: (status: string) => boolean) {
    for (;;) {
      const row = await findJob(db, id);
      if (row && ok(row.status)) return row;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  // ───────────────────────── finding 8 ─────────────────────────

  it('F8 lastEventId must be a small non-negative integer: Infinity, 1e99, -1 and the like are a 400 (BAD_REQUEST) that holds no stream', async () => {
    const s = await serve({ runWorker: false, env: { MAX_STREAMS_PER_SESSION: '1' } });
    const job = await s.create();
    for (const lastEventId of ['Infinity', '1e99', '-1', '1.5', '0x10', ' 7', '99999999999', '2147483648', '']) {
      // the SSE client's Last-Event-ID header reaches the same schema (fetch trims a header's
      // spaces, and an empty header is no header to tRPC: those are sent in the input only)
      const vias = lastEventId && lastEventId.trim() === lastEventId ? (['input', 'header'] as const) : (['input'] as const);
      for (const via of vias) {
        const opened =
          via === 'input'
            ? s.stream(job.id, 'cookie', { lastEventId })
            : s.stream(job.id, 'cookie', { headers: { 'last-event-id': lastEventId } });
        const { states, error } = outcomeOf(await opened.ended);
        expect(states, `${via} ${JSON.stringify(lastEventId)}`).toEqual([]);
        expect(error?.data, `${via} ${JSON.stringify(lastEventId)}`).toMatchObject({ code: 'BAD_REQUEST', httpStatus: 400 });
        expect(error?.message).toMatch(/lastEventId must be an event id this server sent: a whole number from 0 to 2147483647/);
      }
    }
    // none of those took the session's only stream slot: a good id opens one
    const good = s.stream(job.id, 'cookie', { lastEventId: '0' });
    expect(outcomeOf(await good.until(/"status":"queued"/)).states).toEqual([expect.objectContaining({ status: 'queued' })]);
  });

  it('F8 a stream resumed with an id ahead of its job still ends at the end; after the end it ends at once', async () => {
    const held = gate('infer');
    const s = await serve({ hold: held.hold });
    const job = await s.create();
    expect(await held.reached).toBe(job.id);
    // an id this job has not reached (versions only grow): the stream starts over instead of
    // skipping every event until the job outgrows it (which it never does: it never ended)
    const ahead = s.stream(job.id, 'token', { lastEventId: '1000000' });
    await ahead.until(/"status":"running"/);
    held.release();
    const { states, error } = outcomeOf(await ahead.ended);
    expect(error).toBeUndefined();
    expect(states.at(-1)).toMatchObject({ status: 'succeeded' });
    // finished: resuming at, or past, its last version ends at once with nothing to send
    const last = states.at(-1)!.version;
    for (const id of [last, last + 1, 2_147_483_647]) {
      const resumed = outcomeOf(await s.stream(job.id, 'cookie', { lastEventId: String(id) }).ended);
      expect(resumed, String(id)).toEqual({ states: [], error: undefined });
    }
    // resumed just before the end: only the end
    const before = outcomeOf(await s.stream(job.id, 'cookie', { lastEventId: String(last - 1) }).ended);
    expect(before.states.map((e) => e.version)).toEqual([last]);
  });

  // ───────────────────────── finding 9 ─────────────────────────

  it('F9 an open stream ends with UNAUTHORIZED once its credential does: the token revoked, the session signed out', async () => {
    const held = gate('infer');
    const s = await serve({ hold: held.hold });
    const job = await s.create();
    expect(await held.reached).toBe(job.id);
    const byCookie = s.stream(job.id, 'cookie');
    const byToken = s.stream(job.id, 'token');
    await byCookie.until(/"status":"running"/);
    await byToken.until(/"status":"running"/);

    expect((await s.user.mutate('auth.tokens.revoke', { id: s.token.info.id })).status).toBe(200);
    const tokenEnd = outcomeOf(await byToken.ended);
    expect(tokenEnd.error).toMatchObject({ message: CREDENTIAL_ENDED, data: { code: 'UNAUTHORIZED', httpStatus: 401 } });

    expect((await s.user.mutate('auth.signOut')).status).toBe(200);
    const cookieEnd = outcomeOf(await byCookie.ended);
    expect(cookieEnd.error).toMatchObject({ message: CREDENTIAL_ENDED, data: { code: 'UNAUTHORIZED', httpStatus: 401 } });

    // signing out is not disabling: the job runs on
    expect((await findJob(s.db, job.id))?.status).toBe('running');
    held.release();
    expect((await waitForJob(s.db, job.id, (st) => st !== 'running')).status).toBe('succeeded');
  });

  it('F9 disabling a user ends their open streams (cookie and token) and cancels their running and queued jobs', async () => {
    // Not ended by the abort while held: a progress write that sees the cancel aborts the attempt,
    // and "still running" below must not depend on whether that write came before the look.
    const held = gate('infer', { abortable: false });
    const s = await serve({ hold: held.hold });
    const running = await s.create();
    expect(await held.reached).toBe(running.id);
    const queued = await s.create(); // WORKER_CONCURRENCY is 1: it waits behind the held one
    const byCookie = s.stream(running.id, 'cookie');
    const byToken = s.stream(running.id, 'token');
    await byCookie.until(/"status":"running"/);
    await byToken.until(/"status":"running"/);

    expect(await ensureAdmin(s.db, ADMIN)).toBe('created');
    const admin = new TestBrowser(s.url);
    expect((await admin.mutate('auth.signIn', ADMIN)).status).toBe(200);
    const me = (await s.user.query<PublicUser>('auth.me')).data;
    expect((await admin.mutate('admin.users.disable', { id: me.id })).status).toBe(200);

    // the queued job is cancelled at once; the running one is asked to stop…
    expect((await findJob(s.db, queued.id))?.status).toBe('cancelled');
    expect(await findJob(s.db, running.id)).toMatchObject({ status: 'running', cancel_requested: true });
    // …and while it is still held, both streams end on their credential, not on the job
    for (const ended of [byCookie.ended, byToken.ended]) {
      const { states, error } = outcomeOf(await ended);
      expect(error).toMatchObject({ message: CREDENTIAL_ENDED, data: { code: 'UNAUTHORIZED' } });
      expect(states.every((e) => e.status === 'running')).toBe(true);
    }
    // its worker stops it at the next stage, as a cancel by its owner would
    held.release();
    const end = await waitForJob(s.db, running.id, (st) => st !== 'running');
    expect(end.status).toBe('cancelled');
    expect(end.result).toBeNull();
  });

  // ───────────────────────── finding 12 ─────────────────────────

  it('F12 /metrics with METRICS_TOKEN: 401 without it or with a wrong one, 200 with it', async () => {
    const s = await serve({ runWorker: false, env: { METRICS_TOKEN } });
    const get = (headers: Record<string, string> = {}) => fetch(`${s.url}/metrics`, { headers });
    const refused: Record<string, string>[] = [
      {},
      { authorization: `Bearer ${METRICS_TOKEN}-no` },
      { authorization: `Basic ${METRICS_TOKEN}` },
    ];
    for (const headers of refused) {
      const res = await get(headers);
      expect(res.status, JSON.stringify(headers)).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="metrics"');
      expect(await res.text()).not.toContain('strokeview_');
    }
    const ok = await get({ authorization: `Bearer ${METRICS_TOKEN}` });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toMatch(/strokeview_http_requests_total\{method="GET",route="\/metrics",status="401"\} 3/);
  });

  it('F12 /metrics without METRICS_TOKEN: this machine only, judged by the real client address behind a proxy', async () => {
    const direct = await serve({ runWorker: false });
    expect((await fetch(`${direct.url}/metrics`)).status).toBe(200); // the test connects over 127.0.0.1
    // behind a proxy on this machine, the client is whoever the proxy says it is
    const proxied = await serve({ runWorker: false, env: { TRUSTED_PROXY_HOPS: '1' } });
    const visitor = await fetch(`${proxied.url}/metrics`, { headers: { 'x-forwarded-for': '203.0.113.7' } });
    expect(visitor.status).toBe(403);
    expect(await visitor.text()).toMatch(/set METRICS_TOKEN/);
    // a spoofed leftmost entry does not make a visitor local
    expect((await fetch(`${proxied.url}/metrics`, { headers: { 'x-forwarded-for': '127.0.0.1, 203.0.113.7' } })).status).toBe(403);
    // the proxy's own entry for a client on this machine (a sidecar going through it) is local
    expect((await fetch(`${proxied.url}/metrics`, { headers: { 'x-forwarded-for': '127.0.0.1' } })).status).toBe(200);
  });
});
