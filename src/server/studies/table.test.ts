import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import yauzl from 'yauzl';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CaseDetail, CaseSummary } from '../../shared/cases.js';
import type { JobView } from '../../shared/jobs.js';
import type { MaskVersionView } from '../../shared/masks.js';
import type { MetricStats, StudyDetail, StudyRunDetail, StudyTable } from '../../shared/studies.js';
import { type StrokeviewError, createClient } from '../../sdk/index.js';
import { seedDemoCases } from '../cases/demo.js';
import { readNifti } from '../nifti/read.js';
import { writeNiftiGz } from '../nifti/write.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry } from '../segmentation/models.js';
import { TestBrowser } from '../test/browser.js';
import { describeEachDatabase } from '../test/databases.js';
import { ROOT } from '../test/process.js';
import { type Running, serveStack } from '../test/stack.js';
import { VERSION } from '../version.js';
import { describe as describeStats } from '../../shared/summary.js';
import { CSV_COLUMNS, csvField } from './table.js';

// The study table, its CSV and its BIDS derivatives (#27): rows that are the jobs' own numbers, a
// summary equal to an independent computation, two raters' agreement computed here by hand, a
// CSV that parses back to the same numbers, and a zip whose masks have the cases' grids.

let models: ModelRegistry;
beforeAll(async () => {
  models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
});
afterAll(async () => {
  await models?.close();
});

const slow = { timeout: 400_000 };

/** RFC 4180, as a spreadsheet reads it: quoted fields with doubled quotes and line breaks inside. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n') {
      row.push(field.replace(/\r$/, ''));
      rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  if (field || row.length) rows.push([...row, field]);
  return rows;
}

/** Every entry of a zip, by name. */
function unzip(buf: Buffer): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buf, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err);
      const out = new Map<string, Buffer>();
      zip.on('entry', (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (e, s) => {
          if (e || !s) return reject(e);
          const chunks: Buffer[] = [];
          s.on('data', (c: Buffer) => chunks.push(c));
          s.on('end', () => {
            out.set(entry.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => resolve(out));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

/** The summary statistics written out again, a second way: sorted values, positions by hand. */
function expectedStats(values: number[]): MetricStats {
  const xs = [...values].sort((a, b) => a - b);
  const n = xs.length;
  if (!n) return { n: 0, mean: null, sd: null, median: null, q1: null, q3: null };
  let sum = 0;
  for (const x of xs) sum += x;
  const mean = sum / n;
  let ss = 0;
  for (const x of xs) ss += (x - mean) * (x - mean);
  const at = (p: number) => {
    const pos = p * (n - 1);
    const lo = Math.floor(pos);
    return lo + 1 < n ? xs[lo]! * (1 - (pos - lo)) + xs[lo + 1]! * (pos - lo) : xs[lo]!;
  };
  return { n, mean, sd: n > 1 ? Math.sqrt(ss / (n - 1)) : null, median: at(0.5), q1: at(0.25), q3: at(0.75) };
}

const close = (a: MetricStats, b: MetricStats) => {
  expect(a.n).toBe(b.n);
  for (const k of ['mean', 'sd', 'median', 'q1', 'q3'] as const) {
    if (b[k] === null) expect(a[k]).toBeNull();
    else expect(a[k]).toBeCloseTo(b[k], 10);
  }
};

describe('table helpers', () => {
  it('statistics: R type-7 quartiles, the sample SD, nulls without values', () => {
    // R: quantile(c(1, 2, 4, 8)) → 1.75, 3, 5;  sd → 3.095696
    expect(describeStats([8, 1, 4, 2])).toEqual({ n: 4, mean: 3.75, sd: expect.closeTo(3.095696, 6), median: 3, q1: 1.75, q3: 5 });
    expect(describeStats([5])).toEqual({ n: 1, mean: 5, sd: null, median: 5, q1: 5, q3: 5 });
    expect(describeStats([])).toEqual({ n: 0, mean: null, sd: null, median: null, q1: null, q3: null });
  });

  it('CSV fields: quoted when they must be, formulas defused, numbers in their round-trip form', () => {
    expect(csvField('Demo, "one"')).toBe('"Demo, ""one"""');
    expect(csvField('=HYPERLINK("x")')).toBe(`"'=HYPERLINK(""x"")"`);
    expect(csvField(0.1 + 0.2)).toBe('0.30000000000000004');
    expect(csvField(null)).toBe('');
  });
});

describeEachDatabase('the study table and its exports', (current) => {
  const running: Running = [];
  afterEach(async () => {
    for (const r of running.splice(0).reverse()) await r.stop();
  });

  const form = (fields: Record<string, string | Uint8Array>) => {
    const fd = new FormData();
    for (const [k, v] of Object.entries(fields)) fd.set(k, typeof v === 'string' ? v : new File([new Uint8Array(v)], 'mask.nii.gz'));
    return fd;
  };

  it(
    'rows are the jobs’ metrics, the summary an independent computation, two raters’ agreement as computed here; the CSV parses back; the BIDS zip has the cases’ grids',
    slow,
    async () => {
      const database = current().handle;
      const { server, store } = await serveStack({ database, models, running, prefix: 'sv-table-' });
      await seedDemoCases(database.db, store, 3);
      const user = async (email: string) => {
        const b = new TestBrowser(server.url);
        expect((await b.mutate('auth.register', { email, password: 'correct horse battery' })).status).toBe(200);
        return b;
      };
      const [owner, editor, viewer, outsider] = await Promise.all(
        ['owner@x.org', 'editor@x.org', 'viewer@x.org', 'outsider@x.org'].map(user),
      );
      const study = (await owner!.mutate<StudyDetail>('studies.create', { name: 'Audit, "2026"' })).data;
      await owner!.mutate('studies.members.set', { studyId: study.id, email: 'editor@x.org', role: 'editor' });
      await owner!.mutate('studies.members.set', { studyId: study.id, email: 'viewer@x.org', role: 'viewer' });
      const demos = (await owner!.query<{ items: CaseSummary[] }>('cases.list')).data.items.filter((c) => c.demo);
      await owner!.mutate('studies.cases.add', { studyId: study.id, caseIds: demos.map((c) => c.id) });

      const run = (await editor!.mutate<StudyRunDetail>('studies.run', { studyId: study.id })).data;
      const deadline = Date.now() + 300_000;
      let done: StudyRunDetail;
      for (;;) {
        done = (await viewer!.query<StudyRunDetail>('studies.runs.byId', { id: run.id })).data;
        if (done.status !== 'running' || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(done.status).toBe('succeeded');

      // two raters on the first case: 30 voxels and 50 voxels, 20 of them shared
      const first = (await owner!.query<CaseDetail>('cases.byId', { id: demos[0]!.id })).data;
      const dwi = first.volumes.find((v) => v.role === 'dwi')!;
      const mask = (from: number, n: number) => {
        const data = new Uint8Array(dwi.dims[0] * dwi.dims[1] * dwi.dims[2]);
        data.fill(1, from, from + n);
        return writeNiftiGz({ dims: dwi.dims, affine: dwi.affine, datatype: 'uint8', data });
      };
      const voxelMl = (dwi.voxelSizeMm[0] * dwi.voxelSizeMm[1] * dwi.voxelSizeMm[2]) / 1000;
      expect((await owner!.upload<MaskVersionView>('masks.save', form({ caseId: first.id, file: mask(5000, 30) }))).status).toBe(200);
      // the editor saves twice: only the latest counts
      expect((await editor!.upload<MaskVersionView>('masks.save', form({ caseId: first.id, file: mask(0, 5) }))).status).toBe(200);
      expect((await editor!.upload<MaskVersionView>('masks.save', form({ caseId: first.id, file: mask(5010, 50) }))).status).toBe(200);

      const res = await viewer!.query<StudyTable>('studies.table', { studyId: study.id });
      expect(res.status).toBe(200);
      const table = res.data;
      expect(table.runs.map((r) => [r.id, r.status])).toEqual([[run.id, 'succeeded']]);
      expect(table.rows).toHaveLength(3);
      for (const row of table.rows) {
        const job = (await editor!.query<JobView>('jobs.byId', { id: row.jobId })).data;
        const m = job.result!.metrics;
        expect(row).toMatchObject({
          runId: run.id,
          status: 'succeeded',
          dice: m.dice,
          absVolumeDiffMl: m.absVolumeDiffMl,
          lesionCountDiff: Math.abs(m.lesionCountTrue! - m.lesionCountPredicted),
          lesionF1: m.lesionF1,
          predictedMl: m.predictedMl,
          trueMl: m.trueMl,
        });
      }
      const stats = table.summary[0]!.metrics;
      for (const k of ['dice', 'absVolumeDiffMl', 'lesionCountDiff', 'lesionF1', 'predictedMl', 'trueMl'] as const) {
        close(stats[k], expectedStats(table.rows.map((r) => r[k]!)));
      }

      // agreement: Dice 2·20 / (30 + 50) = 0.5; volume difference (30 − 50) voxels
      expect(table.agreement.cases).toHaveLength(1);
      const agreed = table.agreement.cases[0]!;
      expect(agreed.raters.map((r) => r.email)).toEqual(['editor@x.org', 'owner@x.org']);
      expect(agreed.pairs).toEqual([{ a: 'editor@x.org', b: 'owner@x.org', dice: 0.5, volumeDiffMl: expect.closeTo(20 * voxelMl, 9) }]);
      expect(agreed.vsModel.map((p) => [p.a, p.b, p.runId])).toEqual([
        ['editor@x.org', 'adc-dwi-v2', run.id],
        ['owner@x.org', 'adc-dwi-v2', run.id],
      ]);
      expect(table.agreement.summary.dice).toMatchObject({ n: 1, mean: 0.5 });

      // who: a non-member gets NOT_FOUND everywhere, no credential 401
      expect((await outsider!.query('studies.table', { studyId: study.id })).status).toBe(404);
      for (const file of ['table.csv', 'bids.zip']) {
        expect((await outsider!.request(`/api/studies/${study.id}/${file}`)).status).toBe(404);
        expect((await fetch(`${server.url}/api/studies/${study.id}/${file}`)).status).toBe(401);
      }
      const badRun = await viewer!.request(`/api/studies/${study.id}/table.csv?runId=${study.id}`);
      expect(badRun.status).toBe(404);

      // the CSV (as a viewer): the same rows and numbers
      const csvRes = await viewer!.request(`/api/studies/${study.id}/table.csv`);
      expect(csvRes.status).toBe(200);
      expect(csvRes.headers.get('content-type')).toMatch(/^text\/csv/);
      const [header, ...lines] = parseCsv(await csvRes.text());
      expect(header).toEqual(CSV_COLUMNS.map(([h]) => h));
      expect(lines).toHaveLength(3);
      const parsed = lines.map((l) =>
        Object.fromEntries(
          CSV_COLUMNS.map(([h, k], i) => {
            const v = l[i]!;
            const numeric = !['runId', 'modelId', 'caseId', 'caseName', 'subjectId', 'jobId', 'status'].includes(k);
            return [h, v === '' ? null : numeric ? Number(v) : v];
          }),
        ),
      );
      expect(parsed).toEqual(table.rows.map((r) => Object.fromEntries(CSV_COLUMNS.map(([h, k]) => [h, r[k]]))));

      // the SDK and the CLI write the same file
      const viewerToken = (await viewer!.mutate<{ token: string }>('auth.tokens.create', { name: 'sdk' })).data.token;
      const sv = createClient({ url: server.url, token: viewerToken, retry: false });
      const dir = mkdtempSync(path.join(tmpdir(), 'sv-export-'));
      const viaSdk = await sv.exportStudy(study.id, { format: 'csv' }, path.join(dir, 'sdk.csv'));
      expect(parseCsv(readFileSync(viaSdk.path, 'utf8'))).toEqual([header, ...lines]);
      const refused = await createClient({ url: server.url, token: viewerToken, retry: false })
        .exportStudy(study.id, { format: 'csv', runId: study.id })
        .catch((e: StrokeviewError) => e);
      expect([(refused as StrokeviewError).code, (refused as StrokeviewError).status]).toEqual(['NOT_FOUND', 404]);
      const cli = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn(
          process.execPath,
          ['--import', 'tsx', 'src/cli/index.ts', 'studies', 'export', study.id, '--format', 'bids', '-o', path.join(dir, 'cli.zip')],
          {
            cwd: ROOT,
            env: { PATH: process.env.PATH ?? '', STROKEVIEW_URL: server.url, STROKEVIEW_TOKEN: viewerToken },
          },
        );
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d: Buffer) => (stdout += d));
        p.stderr.on('data', (d: Buffer) => (stderr += d));
        p.on('close', (code) => resolve({ code, stdout, stderr }));
      });
      expect([cli.code, cli.stderr]).toEqual([0, '']);
      expect(cli.stdout).toMatch(/^wrote .*cli\.zip \(\d+ bytes\)\n$/);
      expect([...(await unzip(readFileSync(path.join(dir, 'cli.zip')))).keys()]).toContain(
        'derivatives/strokeview-adc-dwi-v2/dataset_description.json',
      );

      // the BIDS derivatives zip (with the raters' corrected masks)
      const zipRes = await viewer!.request(`/api/studies/${study.id}/bids.zip?corrected=true`);
      expect(zipRes.status).toBe(200);
      expect(zipRes.headers.get('content-disposition')).toBe('attachment; filename="Audit_2026_bids-derivatives.zip"');
      const files = await unzip(Buffer.from(await zipRes.arrayBuffer()));
      const root = 'derivatives/strokeview-adc-dwi-v2';
      const description = JSON.parse(files.get(`${root}/dataset_description.json`)!.toString());
      expect(description).toMatchObject({ DatasetType: 'derivative', BIDSVersion: expect.any(String) });
      expect(description.GeneratedBy[0]).toMatchObject({ Name: 'strokeview', Version: VERSION });
      expect(description.GeneratedBy[0].Description).toContain('adc-dwi-v2 version 2.0.0');
      const predicted = [...files.keys()].filter((n) => n.startsWith(root) && n.endsWith('_desc-lesion_mask.nii.gz')).sort();
      expect(predicted).toEqual(
        ['phantom101', 'phantom102', 'phantom103'].map((s) => `${root}/sub-${s}/ses-01/anat/sub-${s}_ses-01_desc-lesion_mask.nii.gz`),
      );
      for (const name of predicted) {
        const label = /sub-(\w+)\/ses/.exec(name)![1]!;
        const row = table.rows.find((r) => r.subjectId === label.replace('phantom', 'phantom-'))!;
        const c = (await viewer!.query<CaseDetail>('cases.byId', { id: row.caseId })).data;
        const grid = c.volumes.find((v) => v.role === 'dwi')!;
        const nifti = readNifti(new Uint8Array(files.get(name)!));
        expect(nifti.dims).toEqual(grid.dims);
        expect(nifti.affine.flat().map((x) => Number(x.toFixed(3)))).toEqual(grid.affine.flat().map((x) => Number(x.toFixed(3))));
        expect(JSON.parse(files.get(name.replace('.nii.gz', '.json'))!.toString())).toMatchObject({ Type: 'Lesion', JobId: row.jobId });
      }
      const tsv = files
        .get(`${root}/metrics.tsv`)!
        .toString()
        .trimEnd()
        .split('\n')
        .map((l) => l.split('\t'));
      expect(tsv[0]).toEqual([
        'participant_id',
        'session_id',
        'case_id',
        'case_name',
        'job_id',
        'dice',
        'abs_volume_diff_ml',
        'lesion_count_diff',
        'lesion_f1',
        'predicted_ml',
        'true_ml',
      ]);
      for (const line of tsv.slice(1)) {
        const row = table.rows.find((r) => r.caseId === line[2])!;
        expect(line.slice(5).map(Number)).toEqual([
          row.dice,
          row.absVolumeDiffMl,
          row.lesionCountDiff,
          row.lesionF1,
          row.predictedMl,
          row.trueMl,
        ]);
      }
      expect(files.get(`${root}/participants.tsv`)!.toString()).toBe('participant_id\nsub-phantom101\nsub-phantom102\nsub-phantom103\n');
      const corrections = [...files.keys()]
        .filter((n) => n.startsWith('derivatives/strokeview-corrections/') && n.endsWith('.nii.gz'))
        .sort();
      const firstLabel = table.rows.find((r) => r.caseId === first.id)!.subjectId!.replace('-', '');
      expect(corrections).toEqual(
        ['rater1', 'rater2'].map(
          (r) => `derivatives/strokeview-corrections/sub-${firstLabel}/ses-01/anat/sub-${firstLabel}_ses-01_desc-${r}_mask.nii.gz`,
        ),
      );
      expect(files.get('derivatives/strokeview-corrections/raters.tsv')!.toString()).toBe(
        'rater\temail\nrater1\teditor@x.org\nrater2\towner@x.org\n',
      );
      const rater1 = readNifti(new Uint8Array(files.get(corrections[0]!)!));
      expect(rater1.dims).toEqual(dwi.dims);

      // bids-validator (npm) is not installed here; when it is, validate the unpacked zip too
      const validator = path.join(ROOT, 'node_modules', 'bids-validator');
      if (!existsSync(validator)) console.warn('bids-validator is not in node_modules: the BIDS zip was checked by its structure only');
    },
  );
});
