import { afterEach, expect, it } from 'vitest';
import { phantomVolumes, seedDemoCases } from './cases/demo.js';
import { insertJob } from './db/jobs.js';
import { makeTestApp } from './test/app.js';
import { TestBrowser } from './test/browser.js';
import { describeEachDatabase } from './test/databases.js';
import { serveApp } from './test/live.js';

// One error model, two surfaces: the same failure answered on /trpc (tRPC's shape, tRPC's own
// JSON-RPC numbers) and on /api (REST: the same shape with the code's name), over real HTTP.

const RPC = { PAYLOAD_TOO_LARGE: -32013, UNPROCESSABLE_CONTENT: -32022, NOT_FOUND: -32004, TOO_MANY_REQUESTS: -32029 } as const;

function caseForm(files: Record<string, Uint8Array>): FormData {
  const fd = new FormData();
  fd.set('name', 'shapes');
  for (const [role, bytes] of Object.entries(files)) fd.set(role, new File([new Uint8Array(bytes)], `${role}.nii.gz`));
  return fd;
}

describeEachDatabase('error shapes on /trpc and /api', (current) => {
  const open: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });

  async function setup(env: Record<string, string> = {}) {
    const database = current().handle;
    const t = makeTestApp({ database, env });
    const server = await serveApp(t.app);
    open.push(server);
    await seedDemoCases(database.db, t.store, 1);
    const browser = new TestBrowser(server.url);
    const email = `shapes-${Math.random().toString(36).slice(2)}@x.org`;
    await browser.mutate('auth.register', { email, password: 'correct horse battery' });
    const token = (await browser.mutate<{ token: string }>('auth.tokens.create', { name: 'rest' })).data.token;
    const rest = (path: string, init: RequestInit = {}) =>
      fetch(`${server.url}/api${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as object) } });
    return { ...t, server, browser, rest, database };
  }

  /** Both answers: same status, same message and data; the code as tRPC's number on /trpc and as its name on /api. */
  async function expectSame(trpc: Response, rest: Response, code: keyof typeof RPC, status: number) {
    const [t, r] = [await trpc.json(), await rest.json()];
    expect(trpc.status).toBe(status);
    expect(rest.status).toBe(status);
    expect(t.error.code).toBe(RPC[code]);
    expect(t.error.data).toMatchObject({ code, httpStatus: status });
    expect(r).toMatchObject({ message: t.error.message, code, data: { code, httpStatus: status } });
    expect(r.data.fieldErrors).toEqual(t.error.data.fieldErrors);
    return { trpc: t.error, rest: r };
  }

  it('an upload over the size limit is 413 on both, with the limit in the message', async () => {
    const s = await setup({ MAX_UPLOAD_MB: '1' });
    const big = new Uint8Array(2 * 1048576);
    const form = () => caseForm({ dwi: big, adc: big });
    const trpc = await s.browser.request('/trpc/cases.upload', { method: 'POST', body: form() });
    const rest = await s.rest('/cases', { method: 'POST', body: form() });
    const { trpc: t } = await expectSame(trpc, rest, 'PAYLOAD_TOO_LARGE', 413);
    expect(t.message).toBe('The upload is larger than 1 MiB');
  });

  it('an unusable file is 422 on both, naming the file in data.fieldErrors', async () => {
    const s = await setup();
    const files = Object.fromEntries(phantomVolumes(3).map((v) => [v.role, new Uint8Array(v.stored)]));
    const form = () => caseForm({ dwi: files.dwi!, adc: new Uint8Array(500) });
    const trpc = await s.browser.request('/trpc/cases.upload', { method: 'POST', body: form() });
    const rest = await s.rest('/cases', { method: 'POST', body: form() });
    const { trpc: t } = await expectSame(trpc, rest, 'UNPROCESSABLE_CONTENT', 422);
    expect(t.message).toMatch(/^ADC: /);
    expect(t.data.fieldErrors).toEqual({ adc: [t.message] });
  });

  it("another user's or a missing case is NOT_FOUND on both", async () => {
    const s = await setup();
    const id = '00000000-0000-4000-8000-000000000000';
    const trpc = await s.browser.request(`/trpc/cases.byId?input=${encodeURIComponent(JSON.stringify({ id }))}`);
    const rest = await s.rest(`/cases/${id}`);
    const { trpc: t } = await expectSame(trpc, rest, 'NOT_FOUND', 404);
    expect(t.message).toBe('No such case');
  });

  it('a job over the per-user cap is 429 on both, with Retry-After', async () => {
    const s = await setup({ MAX_ACTIVE_JOBS_PER_USER: '1' });
    const me = (await s.browser.query<{ id: string }>('auth.me')).data;
    const caseId = (await s.browser.query<{ items: { id: string }[] }>('cases.list')).data.items[0]!.id;
    // One job already queued for this user: the next one is over the cap (no worker needed).
    await insertJob(s.database.db, {
      ownerId: me.id,
      caseId,
      modelIds: ['adc-core-v1'],
      idempotencyKey: null,
      expiresAt: new Date(Date.now() + 86400_000),
    });
    const body = JSON.stringify({ caseId });
    const trpc = await s.browser.request('/trpc/jobs.create', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const rest = await s.rest('/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(trpc.headers.get('retry-after')).toBe('30');
    expect(rest.headers.get('retry-after')).toBe('30');
    const { trpc: t } = await expectSame(trpc, rest, 'TOO_MANY_REQUESTS', 429);
    expect(t.message).toMatch(/You already have 1 segmentation queued or running/);
  });
});
