import { spawn } from 'node:child_process';
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { findCaseDicom } from '../db/dicom.js';
import { makeTestApp } from '../test/app.js';
import { TestBrowser } from '../test/browser.js';
import { describeEachDatabase } from '../test/databases.js';
import { gunzipSync } from 'node:zlib';
import { createClient } from '../../sdk/index.js';
import { readNifti } from '../nifti/read.js';
import { encodeNifti } from '../nifti/write.js';
import { HAVE_PHILIPS, PHILIPS_DIR, PHILIPS_SKIP_NOTE, dciodvfyErrors, tempDir, zipFolder } from '../test/dicom.js';
import { serveApp } from '../test/live.js';
import { ROOT, builtEntry } from '../test/process.js';

// #26: `strokeview import --dicom <dir>` (local bulk, one case per study) and
// `strokeview cases upload --dicom <dir|zip>` (through the SDK to a server), on a real folder.

/** The built CLI, run without blocking this process (the server under test lives in it). */
function cli(args: string[], env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [builtEntry('src/cli/index.ts'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const gunzipIfNeeded = (b: Uint8Array) => (b[0] === 0x1f ? new Uint8Array(gunzipSync(b)) : b);

describe.skipIf(!HAVE_PHILIPS)(`strokeview CLI with DICOM${PHILIPS_SKIP_NOTE}`, () => {
  let study: string;
  beforeAll(() => {
    // A study folder with a subfolder and a stray file, as exports look.
    study = tempDir('sv-cli-dicom-');
    cpSync(PHILIPS_DIR, path.join(study, 'DICOM'), { recursive: true });
    writeFileSync(path.join(study, 'README.txt'), 'exported from the scanner');
  });
  afterAll(() => rmSync(study, { recursive: true, force: true }));

  describeEachDatabase('commands', (current) => {
    const closers: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const c of closers.splice(0).reverse()) await c();
    });

    it('import --dicom: one case per study, what was skipped, and idempotent', async () => {
      const env: Record<string, string> = { DATA_DIR: tempDir('sv-cli-data-'), ...(current().url ? { DATABASE_URL: current().url! } : {}) };
      const first = await cli(['import', '--dicom', study], env);
      expect(first.stderr).toBe('');
      expect(first.status).toBe(0);
      expect(first.stdout).toMatch(
        /^imported dicom-[0-9a-f]{12} "DTI_Biobank_2mm_MB3S2_EPI \(dicom-[0-9a-f]{12}\)" \(dwi, adc\) in \d+ ms of conversion$/m,
      );
      expect(first.stdout).toMatch(/^skipped README\.txt: not DICOM \(no DICM marker at byte 128\)$/m);
      expect(first.stdout).toMatch(/^skipped DICOM\/PS_0545: a presentation state$/m);
      expect(first.stdout).toMatch(/^1 case\(s\) imported, 4 item\(s\) skipped$/m);
      const again = await cli(['import', '--dicom', study, '--json'], env);
      expect(again.status).toBe(0);
      const report = JSON.parse(again.stdout) as { imported: unknown[]; skipped: { path: string; reason: string }[] };
      expect(report.imported).toEqual([]);
      expect(report.skipped.filter((s) => s.reason === 'already imported')).toHaveLength(1);
      if (current().url) {
        // The same database the test holds: the case and its origin are there.
        const rows = await sql<{ id: string; source: string }>`select id, source from cases`.execute(current().handle.db);
        expect(rows.rows.map((r) => r.source)).toEqual(['import']);
        expect((await findCaseDicom(current().handle.db, rows.rows[0]!.id))!.series).toHaveLength(2);
      }
      const usage = await cli(['import'], env);
      expect(usage.status).toBe(2);
      expect(usage.stderr).toMatch(/give an ISLES folder, or --dicom <dir>/);
    }, 300_000);

    it('cases upload --dicom: a folder (dry run, then for real) and a zip, with the roles and why', async () => {
      const t = makeTestApp({ database: current().handle, uploadDir: tempDir('sv-spool-') });
      const browser = new TestBrowser(t.app);
      await browser.mutate('auth.register', { email: 'cli-dicom@example.org', password: 'correct horse battery' });
      const token = (await browser.mutate<{ token: string }>('auth.tokens.create', { name: 'cli' })).data.token;
      const server = await serveApp(t.app);
      closers.push(() => server.close());
      const env = { STROKEVIEW_URL: server.url, STROKEVIEW_TOKEN: token };

      const dry = await cli(['cases', 'upload', '--dicom', study, '--dry-run'], env);
      expect(dry.stderr).toBe('');
      expect(dry.status).toBe(0);
      expect(dry.stdout).toMatch(/^dry run: nothing stored\n/);
      expect(dry.stdout).toMatch(
        /701 +DTI_Biobank_2mm_MB3S2_EPI +diffusion +112×112×32×17 +dwi +a diffusion series: b = 0 \(5\), b = 1000 \(12\)/,
      );
      expect(dry.stdout).toMatch(/ {2}ADC: ADC computed from series 701 \(DTI_Biobank_2mm_MB3S2_EPI\): ln\(S_b0 \/ S_b\) \/ b/);
      expect(dry.stdout).toMatch(/^skipped README\.txt: not DICOM/m);

      const real = await cli(
        ['cases', 'upload', '--dicom', study, '--name', 'from the CLI', '--series', 'dwi=701,adc=computed', '--json'],
        env,
      );
      expect(real.status).toBe(0);
      const result = JSON.parse(real.stdout) as { case: { name: string; roles: string[] }; import: { roles: { dwi: { how: string } } } };
      expect(result.case.name).toBe('from the CLI');
      expect(result.case.roles.sort()).toEqual(['adc', 'dwi']);

      const zip = path.join(tempDir('sv-cli-zip-'), 'study.zip');
      writeFileSync(zip, zipFolder(path.join(study, 'DICOM')));
      const zipped = await cli(['cases', 'upload', '--dicom', zip], env);
      expect(zipped.status).toBe(0);
      expect(zipped.stdout).toMatch(/^uploaded [0-9a-f-]{36} "DTI_Biobank_2mm_MB3S2_EPI" \(adc, dwi\)\n/);

      const bad = await cli(['cases', 'upload', '--dicom', study, '--series', 'dwi'], env);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/--series: give role=series pairs/);

      // masks export --seg: a corrected version drawn on the imported case, as a DICOM SEG.
      const caseId = /^uploaded ([0-9a-f-]{36})/.exec(zipped.stdout)![1]!;
      const sv = createClient({ url: server.url, token });
      const dwi = (await sv.cases.byId.query({ id: caseId })).volumes.find((v) => v.role === 'dwi')!;
      const grid = readNifti(gunzipIfNeeded(await sv.download(dwi)));
      const data = new Uint8Array(grid.data.length);
      for (let v = 5000; v < 5400; v++) data[v] = 1;
      const nii = encodeNifti({ dims: grid.dims, affine: grid.affine, datatype: 'uint8', data, description: 'm' });
      const fd = new FormData();
      fd.set('caseId', caseId);
      fd.set('file', new File([new Uint8Array(nii)], 'mask.nii'));
      const version = await sv.masks.save.mutate(fd);
      const out = path.join(tempDir('sv-cli-seg-'), 'lesion.seg.dcm');
      const exported = await cli(['masks', 'export', version.id, '--seg', '-o', out], env);
      expect(exported.stderr).toBe('');
      expect(exported.status).toBe(0);
      expect(exported.stdout).toMatch(/^wrote .+lesion\.seg\.dcm \(\d+ bytes\): DICOM SEG, 32 frames, MANUAL, series 2\.25\.\d+$/m);
      expect(dciodvfyErrors(out)).toEqual([]);
      const unknown = await cli(['masks', 'export', '00000000-0000-4000-8000-000000000000', '--seg', '-o', out], env);
      expect(unknown.status).not.toBe(0);
      expect(unknown.stderr).toMatch(/No such mask version/);
    }, 300_000);
  });
});
