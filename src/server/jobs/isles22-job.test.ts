import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaseDetail } from '../../shared/cases.js';
import type { JobView } from '../../shared/jobs.js';
import { importIsles } from '../cases/import.js';
import { parseEnv } from '../env.js';
import { createLogger } from '../logger.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry } from '../segmentation/models.js';
import { makeTestApp } from '../test/app.js';
import { TestBrowser } from '../test/browser.js';
import { type TestDatabase, openTestDatabase } from '../test/databases.js';
import { HAVE_ISLES22, ISLES22_DIR, ISLES22_TITLE } from '../test/isles22.js';
import { serveApp, trpcClient } from '../test/live.js';
import { FsVolumeStore } from '../volumes/store.js';
import { type JobRuntime, startJobRuntime } from './runtime.js';

// The whole product path on the real case: `npm run import` of the folder as it is published,
// then a job through the API, as a new user would run it.
describe.skipIf(!HAVE_ISLES22)(`${ISLES22_TITLE}: import and a job`, () => {
  let database: TestDatabase;
  let models: ModelRegistry;
  let runtime: JobRuntime;
  let server: Awaited<ReturnType<typeof serveApp>>;
  let client: ReturnType<typeof trpcClient>;
  let caseId: string;

  beforeAll(async () => {
    database = await openTestDatabase('pglite');
    models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
    const store = new FsVolumeStore(mkdtempSync(path.join(tmpdir(), 'sv-isles22-')));
    const report = await importIsles(database.handle.db, store, ISLES22_DIR, { maxVoxels: 50_000_000 });
    expect(report.skipped).toEqual([]);
    expect(report.imported).toMatchObject([{ subject: 'sub-strokecase0009', roles: ['dwi', 'adc', 'flair', 'mask'] }]);
    caseId = report.imported[0]!.caseId;
    runtime = await startJobRuntime({
      database: database.handle,
      store,
      models,
      env: parseEnv({ NODE_ENV: 'test' }),
      log: createLogger({ level: 'silent' }),
      runWorker: true,
    });
    const t = makeTestApp({ database: database.handle, models, store, jobs: runtime.jobs });
    server = await serveApp(t.app);
    const browser = new TestBrowser(t.app);
    await browser.mutate('auth.register', { email: 'isles@x.org', password: 'correct horse battery' });
    client = trpcClient(server.url, (await browser.mutate<{ token: string }>('auth.tokens.create', { name: 't' })).data.token);
  }, 240_000);

  afterAll(async () => {
    await server?.close();
    await runtime?.stop(2000);
    await models?.close();
    await database?.dispose();
  });

  it('byId shows the ADC unit found (10⁻³ mm²/s) and the FLAIR on its own grid', async () => {
    const detail: CaseDetail = await client.cases.byId.query({ id: caseId });
    const by = Object.fromEntries(detail.volumes.map((v) => [v.role, v]));
    expect(by.adc).toMatchObject({ adcUnit: '1e-3', dims: [112, 112, 73] });
    expect(by.dwi).toMatchObject({ adcUnit: null, dims: [112, 112, 73], datatype: 'float64' });
    expect(by.flair).toMatchObject({ dims: [512, 512, 29] });
    expect(by.mask).toMatchObject({ datatype: 'uint16' });
  });

  it('a job reports the unit it found and beats the challenge baseline (Dice 0.174, lesion F1 0.248)', async () => {
    const job = await client.jobs.create.mutate({ caseId });
    let end: JobView = job;
    const deadline = Date.now() + 150_000;
    while (!['succeeded', 'failed', 'cancelled'].includes(end.status) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      end = await client.jobs.byId.query({ id: job.id });
    }
    expect(end.status).toBe('succeeded');
    expect(end.modelIds).toEqual(['adc-dwi-v2']);
    expect(end.result?.notes).toEqual(["ADC in 10⁻³ mm²/s, scaled ×1000 to the model's 10⁻⁶ mm²/s"]);
    const m = end.result!.metrics;
    expect(m.dice!).toBeGreaterThanOrEqual(0.35);
    expect(m.lesionF1!).toBeGreaterThanOrEqual(0.3);
    expect(m.absVolumeDiffMl!).toBeLessThan(10.32);
    expect(m.lesionCountDiff!).toBeLessThan(87);
  });
});
