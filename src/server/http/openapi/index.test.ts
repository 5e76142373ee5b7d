import { validate } from '@readme/openapi-parser';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { CaseDetail } from '../../../shared/cases.js';
import type { JobView } from '../../../shared/jobs.js';
import { seedDemoCases } from '../../cases/demo.js';
import { readNifti } from '../../nifti/read.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry } from '../../segmentation/models.js';
import { TestBrowser } from '../../test/browser.js';
import { type Running, serveStack } from '../../test/stack.js';
import { describeEachDatabase } from '../../test/databases.js';

let models: ModelRegistry;
beforeAll(async () => {
  models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
});
afterAll(async () => {
  await models?.close();
});

describeEachDatabase('REST routes and /api/openapi.json', (current) => {
  const running: Running = [];
  afterEach(async () => {
    for (const r of running.splice(0).reverse()) await r.stop();
  });

  async function setup() {
    const database = current().handle;
    const { store, server, ...t } = await serveStack({ database, models, running, prefix: 'sv-rest-' });
    await seedDemoCases(database.db, store, 1);
    const browser = new TestBrowser(t.app);
    await browser.mutate('auth.register', { email: 'rest@x.org', password: 'correct horse battery' });
    const token = (await browser.mutate<{ token: string }>('auth.tokens.create', { name: 'rest' })).data.token;
    const api = (p: string, init: RequestInit = {}, auth = true) =>
      fetch(`${server.url}/api${p}`, {
        ...init,
        headers: { ...(auth ? { authorization: `Bearer ${token}` } : {}), ...(init.headers as Record<string, string>) },
      });
    return { ...t, server, browser, token, api };
  }

  it('the document validates as OpenAPI 3 and names every main procedure, with bearer security', async () => {
    const { api, server } = await setup();
    const res = await api('/openapi.json', {}, false);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as {
      openapi: string;
      servers: { url: string }[];
      paths: Record<string, Record<string, { operationId: string; security?: unknown }>>;
    };
    expect(doc.openapi).toMatch(/^3\./);
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid, JSON.stringify(result)).toBe(true);
    expect(doc.servers[0]!.url).toBe(`${server.url}/api`);
    const operations = Object.values(doc.paths).flatMap((p) => Object.values(p).map((o) => o.operationId));
    expect(operations.sort()).toEqual(
      [
        'auth-me',
        'cases-byId',
        'cases-delete',
        'cases-list',
        'cases-upload',
        'cases-uploadDicom',
        'jobs-byId',
        'jobs-cancel',
        'jobs-create',
        'jobs-list',
        'masks-byId',
        'masks-delete',
        'masks-list',
        'masks-refine',
        'masks-endRefine',
        'masks-save',
        'models-list',
        'studies-byId',
        'studies-cases-add',
        'studies-cases-remove',
        'studies-create',
        'studies-delete',
        'studies-list',
        'studies-members-remove',
        'studies-members-set',
        'studies-run',
        'studies-runs-byId',
        'studies-runs-cancel',
        'studies-runs-list',
        'studies-runs-page',
        'studies-table',
        'pacs-search',
        'pacs-pull',
        'pacs-push',
        'pacs-pushes-byId',
      ].sort(),
    );
    expect(doc.paths['/jobs']!.post!.security).toEqual([{ bearer: [] }]);
  });

  it('a case uploaded, segmented and its mask downloaded through the REST routes alone', async () => {
    const { api } = await setup();
    // The demo case's own files, fetched through REST, are what we upload.
    const cases = (await (await api('/cases')).json()) as { items: { id: string; demo: boolean }[] };
    const demo = cases.items.find((c) => c.demo)!;
    const detail = (await (await api(`/cases/${demo.id}`)).json()) as CaseDetail;
    const files = Object.fromEntries(
      await Promise.all(detail.volumes.map(async (v) => [v.role, new Uint8Array(await (await fetch(v.url)).arrayBuffer())] as const)),
    );
    const form = new FormData();
    form.set('name', 'Uploaded over REST');
    for (const role of ['dwi', 'adc', 'mask'] as const) form.set(role, new File([files[role]!], `${role}.nii.gz`));
    const uploaded = await api('/cases', { method: 'POST', body: form });
    expect(uploaded.status).toBe(200);
    const created = (await uploaded.json()) as CaseDetail;
    expect(created.name).toBe('Uploaded over REST');
    expect(created.roles.sort()).toEqual(['adc', 'dwi', 'mask']);

    const queued = await api('/jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ caseId: created.id }),
    });
    expect(queued.status).toBe(200);
    let job = (await queued.json()) as JobView;
    expect(job.caseId).toBe(created.id);
    for (let i = 0; i < 1500 && !['succeeded', 'failed', 'cancelled'].includes(job.status); i++) {
      await new Promise((r) => setTimeout(r, 100));
      job = (await (await api(`/jobs/${job.id}`)).json()) as JobView;
    }
    expect(job.status, job.error ?? '').toBe('succeeded');
    expect(job.result!.metrics.dice).toBeGreaterThan(0.9);
    const mask = await fetch(job.result!.mask.downloadUrl);
    expect(mask.status).toBe(200);
    const nifti = readNifti(new Uint8Array(await mask.arrayBuffer()));
    expect(nifti.dims).toEqual(created.volumes.find((v) => v.role === 'dwi')!.dims);

    const listed = (await (await api(`/jobs?caseId=${created.id}&limit=5`)).json()) as { items: JobView[] };
    expect(listed.items.map((j) => j.id)).toEqual([job.id]);
    const me = (await (await api('/me')).json()) as { email: string };
    expect(me.email).toBe('rest@x.org');
  });

  it('errors are plain: 401 without a token, 404 for an unknown id, 400 for a malformed one, 422 for a bad file', async () => {
    const { api, browser } = await setup();
    const anonymous = await api('/jobs', {}, false);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ code: 'UNAUTHORIZED', message: 'Sign in to continue' });
    // A browser's session cookie is not a credential here (bearer only: nothing to forge cross-site).
    const withCookie = await api('/jobs', { headers: { cookie: browser.cookieHeader()! } }, false);
    expect(withCookie.status).toBe(401);

    const unknown = await api('/jobs/00000000-0000-4000-8000-000000000000');
    expect(unknown.status).toBe(404);
    const malformed = await api('/jobs/not-a-uuid');
    expect(malformed.status).toBe(400);
    expect(JSON.stringify(await malformed.json())).toMatch(/Not a valid job id/);

    const form = new FormData();
    form.set('name', 'junk');
    form.set('dwi', new File([new Uint8Array(400)], 'dwi.nii'));
    form.set('adc', new File([new Uint8Array(400)], 'adc.nii'));
    const bad = await api('/cases', { method: 'POST', body: form });
    expect(bad.status).toBe(422);
    expect(((await bad.json()) as { message: string }).message).toMatch(/DWI/);
    const cases = (await (await api('/cases')).json()) as { items: { name: string }[] };
    expect(cases.items.map((c) => c.name)).not.toContain('junk');
  });
});
