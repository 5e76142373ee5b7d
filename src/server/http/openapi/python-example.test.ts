import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../../sdk/index.js';
import { readNifti } from '../../nifti/read.js';
import { type LiveServer, startLiveServer } from '../../test/live-server.js';
import { ROOT } from '../../test/process.js';

const hasRequests = spawnSync('python3', ['-c', 'import requests'], { encoding: 'utf8' }).status === 0;

// The README's Python example, run as a user would run it, against a live server.
describe.skipIf(!hasRequests)('docs/examples/segment.py (Python requests over REST)', { timeout: 300_000 }, () => {
  let server: LiveServer;
  beforeAll(async () => {
    server = await startLiveServer({ demoCases: 1 });
  });
  afterAll(async () => {
    await server?.stop('SIGKILL');
  });

  it('uploads a case, runs a job and downloads the mask', async () => {
    const token = await server.token('py@example.org');
    const sv = createClient({ url: server.url, token });
    const demo = await sv.cases.byId.query({ id: (await sv.cases.list.query()).items[0]!.id });
    const dir = mkdtempSync(path.join(tmpdir(), 'sv-py-'));
    for (const v of demo.volumes) writeFileSync(path.join(dir, `${v.role}.nii.gz`), await sv.download(v));
    const out = path.join(dir, 'predicted.nii.gz');
    const run = spawnSync('python3', [path.join(ROOT, 'docs/examples/segment.py'), 'dwi.nii.gz', 'adc.nii.gz', 'mask.nii.gz', '-o', out], {
      cwd: dir,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', STROKEVIEW_URL: server.url, STROKEVIEW_TOKEN: token },
      timeout: 240_000,
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^case [0-9a-f-]{36}: adc, dwi, mask\n/);
    expect(run.stdout).toMatch(/predicted \d+\.\d\d mL, Dice 0\.9\d+\n/);
    expect(run.stdout).toMatch(/wrote .*predicted\.nii\.gz\n$/);
    expect(existsSync(out)).toBe(true);
    expect(readNifti(readFileSync(out)).dims).toEqual(demo.volumes.find((v) => v.role === 'dwi')!.dims);
  });
});
