import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LiveServer, startLiveServer } from '../server/test/live-server.js';
import { tempModelsRoot, testManifest, writeModelFolder } from '../server/test/onnx-models.js';
import { ROOT, builtEntry } from '../server/test/process.js';

/** Runs the built CLI as a user would. */
function cli(args: string[], env: Record<string, string> = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [builtEntry('src/cli/index.ts'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env },
    timeout: 120_000,
  });
}

describe('strokeview models check <folder>', { timeout: 120_000 }, () => {
  const root = tempModelsRoot();
  const nnunetLike = testManifest('good', {
    manifestVersion: 2,
    spacingMm: [1, 1, 1],
    orientation: 'RAS',
    patchSize: [64, 64, 48],
    mirroring: [0, 1, 2],
    output: { activation: 'softmax', lesionClasses: [1, 2] },
  });
  const good = writeModelFolder(root, 'good', nnunetLike, { channelsOut: 3 });
  const bad = writeModelFolder(
    root,
    'bad',
    { ...nnunetLike, id: 'bad', output: { activation: 'softmax', lesionClasses: [1, 3] } },
    { channelsIn: 3, channelsOut: 3 },
  );
  const badManifest = writeModelFolder(root, 'bad-manifest', { ...nnunetLike, id: 'bad-manifest', threshold: 7, orientation: 'RAI' });

  it('a good folder: what it found, exit 0', () => {
    const run = cli(['models', 'check', good]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const lines = run.stdout.split('\n');
    expect(lines[0]).toBe(`model good (${good}): ok`);
    expect(run.stdout).toMatch(/^ {2}kind +segmentation \(trained\)$/m);
    expect(run.stdout).toMatch(/^ {2}inputs +dwi, adc → 2 channels, float32$/m);
    expect(run.stdout).toMatch(/^ {2}spacing +1 × 1 × 1 mm$/m);
    expect(run.stdout).toMatch(/^ {2}orientation +RAS$/m);
    expect(run.stdout).toMatch(/^ {2}patch size +64 × 64 × 48 \(x, y, z\), overlap 0\.5, interior blending$/m);
    expect(run.stdout).toMatch(/^ {2}mirroring +axes 0, 1, 2$/m);
    expect(run.stdout).toMatch(/^ {2}output +#0, softmax, 3 classes, lesion classes 1, 2, threshold 0\.5$/m);
    expect(run.stdout).toMatch(/^ {2}graph input +`input` float32 \[N, 2, X, Y, Z\]$/m);
    expect(run.stdout).toMatch(/^ {2}graph output +`logits` float32 \[N, 3, X, Y, Z\]$/m);
    expect(run.stdout).toMatch(/^ {2}dry run +\[1, 2, 32, 32, 32\] → `logits` \[1, 3, 32, 32, 32\] in \d+\.\d ms \(cpu\)$/m);
    expect(run.stdout).not.toMatch(/problem/);

    const asJson = JSON.parse(cli(['models', 'check', good, '--json']).stdout);
    expect(asJson).toMatchObject({
      ok: true,
      id: 'good',
      problems: [],
      dryRun: { inputShape: [1, 2, 32, 32, 32], outputShape: [1, 3, 32, 32, 32] },
    });
  });

  it('a bad folder: every problem, exit 1; a bad manifest: the zod messages', () => {
    const run = cli(['models', 'check', bad]);
    expect(run.status).toBe(1);
    expect(run.stdout.split('\n')[0]).toBe(`model bad (${bad}): 2 problems`);
    expect(run.stdout).toContain("  problem: manifest says 2 input channels (dwi, adc), the graph's input `input` has 3\n");
    expect(run.stdout).toContain("  problem: manifest's lesion class 3 does not exist: the graph's output `logits` has 3 channels (0–2)\n");
    expect(run.stdout).toMatch(/^ {2}graph input +`input` float32 \[N, 3, X, Y, Z\]$/m);
    expect(run.stdout).not.toMatch(/dry run/);
    const asJson = JSON.parse(cli(['models', 'check', bad, '--json']).stdout);
    expect(asJson).toMatchObject({ ok: false, id: 'bad', dryRun: null });
    expect(asJson.problems).toHaveLength(2);

    const manifest = cli(['models', 'check', badManifest]);
    expect(manifest.status).toBe(1);
    expect(manifest.stdout).toMatch(/^model bad-manifest \(.*\): 1 problem\n {2}problem: invalid manifest: /);
    expect(manifest.stdout).toMatch(/threshold: Too big: expected number to be <1/);
    expect(manifest.stdout).toMatch(/orientation: Invalid option: expected one of "RAS"\|"LPS"\|"native"/);
    const missing = cli(['models', 'check', `${root}/nothing-here`]);
    expect(missing.status).toBe(1);
    expect(missing.stdout).toContain(`problem: no manifest.json in ${root}/nothing-here`);
  });

  it('has help with an example', () => {
    const help = cli(['models', 'check', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/Example:\n {2}\$ .*strokeview models check /);
  });
});

describe('models on a live server: the table, /readyz, models.reload (admins only)', { timeout: 300_000 }, () => {
  const modelsDir = tempModelsRoot();
  let server: LiveServer;
  beforeAll(async () => {
    writeModelFolder(modelsDir, 'extra-a', testManifest('extra-a', { spacingMm: [1, 1, 1], orientation: 'RAS' }));
    writeModelFolder(modelsDir, 'broken', testManifest('broken'), { channelsIn: 3 });
    server = await startLiveServer({
      demoCases: 0,
      env: { MODELS_DIR: modelsDir, ADMIN_EMAIL: 'root@example.org', ADMIN_PASSWORD: 'a-long-admin-secret' },
    });
  });
  afterAll(async () => {
    await server?.stop('SIGKILL');
  });

  /** A query, or a mutation without input as the viewer's batch link sends it (`?batch=1`, body `{}`). */
  const call = async (proc: string, init: { method?: 'GET' | 'POST'; headers?: Record<string, string> } = {}) => {
    const post = init.method === 'POST';
    const res = await fetch(`${server.url}/trpc/${proc}${post ? '?batch=1' : ''}`, {
      method: init.method ?? 'GET',
      headers: { 'content-type': 'application/json', 'sec-fetch-site': 'same-origin', ...init.headers },
      ...(post ? { body: '{}' } : {}),
    });
    const json = (await res.json()) as unknown;
    return {
      status: res.status,
      body: (post ? (json as unknown[])[0] : json) as { result?: { data: unknown }; error?: { message: string; data: { code: string } } },
    };
  };
  const readyz = async () =>
    (await (await fetch(`${server.url}/readyz`)).json()) as { models: { loaded: string[]; failed: { error: string }[] } };

  it('the table shows kind, spacing and orientation; /readyz names the model that failed and why', async () => {
    const table = cli(['models'], { STROKEVIEW_URL: server.url });
    expect(table.status).toBe(0);
    const [header, ...rows] = table.stdout.trim().split('\n');
    expect(header).toMatch(/^ID +KIND +METHOD +VERSION +INPUTS +SPACING +ORIENTATION +NAME$/);
    expect(rows[0]).toMatch(/^adc-dwi-v2 +rule-based +rule-based +2\.0\.0 +dwi,adc +native +native +DWI \+ ADC rule/);
    expect(rows.find((r) => r.startsWith('extra-a'))).toMatch(
      /^extra-a +trained +trained +1\.0\.0 +dwi,adc +1×1×1 mm +RAS +test model extra-a$/,
    );
    expect(rows.find((r) => r.startsWith('click-grow-v1'))).toMatch(/^click-grow-v1 +interactive +rule-based /);

    const ready = await readyz();
    expect(ready.models.failed.map((f) => f.error)).toEqual([
      "model broken: manifest says 2 input channels (dwi, adc), the graph's input `input` has 3",
    ]);
  });

  it('an admin reloads MODELS_DIR without a restart; a user gets FORBIDDEN, nobody UNAUTHORIZED', async () => {
    const userToken = await server.token('plain@example.org');
    const asUser = await call('models.reload', { method: 'POST', headers: { authorization: `Bearer ${userToken}` } });
    expect(asUser.status).toBe(403);
    expect(asUser.body.error?.data.code).toBe('FORBIDDEN');
    expect((await call('models.reload', { method: 'POST' })).status).toBe(401);

    writeModelFolder(modelsDir, 'extra-b', testManifest('extra-b', { orientation: 'LPS' }));
    rmSync(`${modelsDir}/broken`, { recursive: true });
    const signIn = await fetch(`${server.url}/trpc/auth.signIn`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'sec-fetch-site': 'same-origin' },
      body: JSON.stringify({ email: 'root@example.org', password: 'a-long-admin-secret' }),
    });
    expect(signIn.status).toBe(200);
    const cookie = signIn.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .join('; ');
    const reloaded = await call('models.reload', { method: 'POST', headers: { cookie } });
    expect(reloaded.status).toBe(200);
    expect(reloaded.body.result?.data).toEqual({
      loaded: ['adc-core-v1', 'adc-dwi-v2', 'extra-a', 'extra-b'],
      interactive: ['click-grow-v1'],
      failed: [],
    });
    const list = (await call('models.list')).body.result?.data as { id: string; orientation: string }[];
    expect(list.find((m) => m.id === 'extra-b')).toMatchObject({ orientation: 'LPS' });
    expect((await readyz()).models).toMatchObject({ loaded: ['adc-core-v1', 'adc-dwi-v2', 'extra-a', 'extra-b'], failed: [] });
  });
});
