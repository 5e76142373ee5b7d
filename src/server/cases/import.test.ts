import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { caseVolumes } from '../db/cases.js';
import { buildNifti } from '../nifti/fixtures.js';
import { describeEachDatabase } from '../test/databases.js';
import { ROOT, builtEntry } from '../test/process.js';
import { FsVolumeStore } from '../volumes/store.js';
import { phantomVolumes } from './demo.js';
import { importIsles, roleOfFile, subjectOfPath } from './import.js';

function put(file: string, bytes: Uint8Array) {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, bytes);
}

/** An ISLES'22-shaped folder: rawdata + derivatives, FLAIR on its own (coarser) grid. */
function isles22(root: string, seeds: number[]) {
  for (const [i, seed] of seeds.entries()) {
    const sub = `sub-strokecase${String(i + 1).padStart(4, '0')}`;
    const v = Object.fromEntries(phantomVolumes(seed).map((p) => [p.role, p.stored]));
    put(path.join(root, 'rawdata', sub, 'ses-0001', 'dwi', `${sub}_ses-0001_dwi.nii.gz`), v.dwi!);
    put(path.join(root, 'rawdata', sub, 'ses-0001', 'dwi', `${sub}_ses-0001_adc.nii.gz`), v.adc!);
    put(path.join(root, 'rawdata', sub, 'ses-0001', 'dwi', `${sub}_ses-0001_dwi.json`), Buffer.from('{}'));
    put(
      path.join(root, 'rawdata', sub, 'ses-0001', 'anat', `${sub}_ses-0001_FLAIR.nii.gz`),
      buildNifti({ dim: [64, 64, 40], pixdim: [3.5, 3.5, 3.6], gzip: true }),
    );
    put(path.join(root, 'derivatives', sub, 'ses-0001', `${sub}_ses-0001_msk.nii.gz`), v.mask!);
  }
}

describeEachDatabase('ISLES import', (current) => {
  it('recognises roles and subjects by name', () => {
    expect(roleOfFile('sub-x_ses-0001_dwi.nii.gz')).toBe('dwi');
    expect(roleOfFile('sub-x_ses-0001_ADC.nii')).toBe('adc');
    expect(roleOfFile('sub-x_ses-0001_FLAIR.nii.gz')).toBe('flair');
    expect(roleOfFile('sub-x_ses-0001_msk.nii.gz')).toBe('mask');
    expect(roleOfFile('sub-stroke0001_ses-02_lesion-msk.nii.gz')).toBe('mask');
    expect(roleOfFile('sub-x_T1w.nii.gz')).toBeUndefined();
    expect(subjectOfPath(path.join('derivatives', 'sub-strokecase0007', 'ses-0001', 'x_msk.nii.gz'))).toBe('sub-strokecase0007');
  });

  it("imports ISLES'22 and ISLES'24 layouts, reports what it skips, and is idempotent", async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'sv-isles-'));
    isles22(path.join(root, 'isles22'), [201, 202]);
    // ISLES'24: sub-strokeNNNN/ses-02 with _lesion-msk; a T1w and a broken ADC to be skipped.
    const v = Object.fromEntries(phantomVolumes(203).map((p) => [p.role, p.stored]));
    const s24 = path.join(root, 'isles24', 'sub-stroke0003', 'ses-02');
    put(path.join(s24, 'sub-stroke0003_ses-02_dwi.nii.gz'), v.dwi!);
    put(path.join(s24, 'sub-stroke0003_ses-02_adc.nii.gz'), v.adc!);
    put(path.join(s24, 'sub-stroke0003_ses-02_lesion-msk.nii.gz'), v.mask!);
    put(path.join(s24, 'sub-stroke0003_ses-02_T1w.nii.gz'), v.flair!);
    const bad = path.join(root, 'isles24', 'sub-stroke0004', 'ses-02');
    put(path.join(bad, 'sub-stroke0004_ses-02_dwi.nii.gz'), v.dwi!);
    put(path.join(bad, 'sub-stroke0004_ses-02_adc.nii.gz'), Buffer.from('not a nifti at all, just text'.repeat(20)));

    const store = new FsVolumeStore(mkdtempSync(path.join(tmpdir(), 'sv-vol-')));
    const { db } = current().handle;
    const report = await importIsles(db, store, root, { maxVoxels: 1e9 });
    expect(report.imported.map((r) => r.subject)).toEqual(['sub-stroke0003', 'sub-strokecase0001', 'sub-strokecase0002']);
    expect(report.imported.find((r) => r.subject === 'sub-strokecase0001')?.roles).toEqual(['dwi', 'adc', 'flair', 'mask']);
    expect(report.imported.find((r) => r.subject === 'sub-stroke0003')?.roles).toEqual(['dwi', 'adc', 'mask']);
    const reasons = Object.fromEntries(report.skipped.map((s) => [path.basename(s.path), s.reason]));
    expect(reasons['sub-stroke0003_ses-02_T1w.nii.gz']).toMatch(/not a DWI, ADC, FLAIR or lesion mask/);
    expect(reasons['sub-stroke0004_ses-02_adc.nii.gz']).toMatch(/ADC: Not a NIfTI file/);

    const vols = await caseVolumes(db, report.imported[1]!.caseId);
    const flair = vols.find((x) => x.role === 'flair')!;
    expect(flair.dims).toEqual([64, 64, 40]); // FLAIR keeps its own grid; segmentation resamples it

    const again = await importIsles(db, store, root, { maxVoxels: 1e9 });
    expect(again.imported).toEqual([]);
    expect(again.skipped.filter((s) => s.reason === 'already imported').map((s) => s.path)).toEqual([
      'sub-stroke0003',
      'sub-strokecase0001',
      'sub-strokecase0002',
    ]);
  });
});

it('npm run import prints a summary', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'sv-isles-cli-'));
  isles22(root, [204]);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'sv-data-'));
  const run = spawnSync(process.execPath, [builtEntry('src/cli/index.ts'), 'import', root], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir },
    encoding: 'utf8',
  });
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  expect(run.stdout).toContain('imported sub-strokecase0001 (dwi, adc, flair, mask)');
  expect(run.stdout).toMatch(/1 case\(s\) imported, 0 item\(s\) skipped/);
}, 300_000);
