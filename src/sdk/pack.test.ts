import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LiveServer, startLiveServer } from '../server/test/live-server.js';
import { ROOT } from '../server/test/process.js';

/** What the SDK must never bring along: the server's runtime. */
const SERVER_ONLY = ['onnxruntime-node', '@electric-sql/pglite', 'pg', '@node-rs/argon2', 'pg-boss', 'kysely', 'hono', 'zod', 'pino'];

const CONSUMER = `
import { writeFileSync } from 'node:fs';
import { createClient, StrokeviewError, type JobView } from '@strokeview/sdk';

const sv = createClient({ url: process.env.SV_URL!, token: process.env.SV_TOKEN! });

// Wrong input types are compile errors (the router's types reached the consumer).
async function typeChecks() {
  // @ts-expect-error caseId must be a string
  await sv.jobs.create.mutate({ caseId: 42 });
  // @ts-expect-error no such procedure
  await sv.jobs.explode.mutate({});
  const n: number = (await sv.models.list.query()).length;
  return n;
}
void typeChecks;

const models = await sv.models.list.query();
const cases = await sv.cases.list.query({ limit: 10 });
const demo = await sv.cases.byId.query({ id: cases.items[0]!.id });
const files: Record<string, Uint8Array> = {};
for (const v of demo.volumes) files[v.role] = await sv.download(v);
writeFileSync('dwi.nii.gz', files.dwi!);
const uploaded = await sv.uploadCase({ name: 'from the SDK', dwi: 'dwi.nii.gz', adc: new Blob([new Uint8Array(files.adc!)]), mask: files.mask! });
const seen: number[] = [];
const job: JobView = await sv.segment(uploaded.id, { onProgress: (p) => seen.push(p.progress) });
const saved = await sv.download(job.result!.mask, 'mask.nii.gz');
let notFound = '';
try {
  await sv.jobs.byId.query({ id: '00000000-0000-4000-8000-000000000000' });
} catch (err) {
  if (err instanceof StrokeviewError) notFound = err.code + ' ' + err.status;
}
console.log(JSON.stringify({
  models: models.map((m) => m.id),
  uploaded: uploaded.roles,
  status: job.status,
  dice: job.result!.metrics.dice,
  progressEvents: seen.length,
  lastProgress: seen.at(-1),
  maskBytes: saved.bytes,
  notFound,
}));
`;

describe('@strokeview/sdk as a package', { timeout: 400_000 }, () => {
  let server: LiveServer;
  let project: string;
  let tarball: string;

  beforeAll(async () => {
    tarball = execFileSync(process.execPath, ['--import', 'tsx', 'scripts/pack-sdk.ts'], { cwd: ROOT, encoding: 'utf8' })
      .trim()
      .split('\n')
      .pop()!;
    project = mkdtempSync(path.join(tmpdir(), 'sv-sdk-consumer-'));
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    const install = spawnSync(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        tarball,
        `typescript@${require_('typescript')}`,
        `@types/node@${require_('@types/node')}`,
      ],
      { cwd: project, encoding: 'utf8', env: { ...process.env, npm_config_loglevel: 'error' } },
    );
    if (install.status !== 0) throw new Error(`npm install failed:\n${install.stdout}\n${install.stderr}`);
    server = await startLiveServer({ demoCases: 1 });
  });
  afterAll(async () => {
    await server?.stop('SIGKILL');
  });

  it('`npm run pack:sdk` prints a tarball path that exists', () => {
    expect(tarball).toMatch(/strokeview-sdk-\d+\.\d+\.\d+\.tgz$/);
    expect(existsSync(tarball)).toBe(true);
  });

  it('installs without any of the server runtime dependencies', () => {
    const installed = new Set<string>();
    const walk = (dir: string) => {
      if (!existsSync(dir)) return;
      for (const entry of readdirSync(dir)) {
        if (entry.startsWith('.')) continue;
        if (entry.startsWith('@')) {
          for (const sub of readdirSync(path.join(dir, entry))) {
            installed.add(`${entry}/${sub}`);
            walk(path.join(dir, entry, sub, 'node_modules'));
          }
        } else {
          installed.add(entry);
          walk(path.join(dir, entry, 'node_modules'));
        }
      }
    };
    walk(path.join(project, 'node_modules'));
    expect(installed.has('@strokeview/sdk')).toBe(true);
    expect(installed.has('@trpc/client')).toBe(true);
    expect(SERVER_ONLY.filter((d) => installed.has(d))).toEqual([]);
  });

  it('a consumer typechecks (a wrong input type is a compile error) and runs against a live server', () => {
    writeFileSync(path.join(project, 'consumer.ts'), CONSUMER);
    writeFileSync(
      path.join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          outDir: 'out',
          types: ['node'],
          skipLibCheck: true,
        },
        files: ['consumer.ts'],
      }),
    );
    const tsc = spawnSync(process.execPath, [path.join(project, 'node_modules/typescript/bin/tsc'), '-p', project], {
      cwd: project,
      encoding: 'utf8',
    });
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);

    // Without the @ts-expect-error lines the wrong input is reported, naming the field.
    writeFileSync(path.join(project, 'consumer.ts'), CONSUMER.replace(/\s*\/\/ @ts-expect-error[^\n]*/g, ''));
    const wrong = spawnSync(process.execPath, [path.join(project, 'node_modules/typescript/bin/tsc'), '-p', project, '--noEmit'], {
      cwd: project,
      encoding: 'utf8',
    });
    expect(wrong.status).not.toBe(0);
    expect(wrong.stdout).toMatch(/consumer\.ts\(\d+,\d+\): error TS2322: Type 'number' is not assignable to type 'string'/);
    expect(wrong.stdout).toMatch(/Property 'explode' does not exist/);

    const run = spawnSync(process.execPath, [path.join(project, 'out/consumer.js')], {
      cwd: project,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', SV_URL: server.url, SV_TOKEN: '' },
      timeout: 300_000,
    });
    expect(run.stderr).toMatch(/UNAUTHORIZED|Sign in/);
    expect(run.status).not.toBe(0);
  });

  it('the compiled consumer uploads, segments with live progress, downloads the mask and reads typed errors', async () => {
    const token = await server.token('sdk@x.org');
    const run = spawnSync(process.execPath, [path.join(project, 'out/consumer.js')], {
      cwd: project,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', SV_URL: server.url, SV_TOKEN: token },
      timeout: 300_000,
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const out = JSON.parse(run.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(out).toMatchObject({ status: 'succeeded', lastProgress: 100, notFound: 'NOT_FOUND 404' });
    expect((out.models as string[])[0]).toBe('adc-dwi-v2');
    expect((out.uploaded as string[]).sort()).toEqual(['adc', 'dwi', 'mask']);
    expect(out.dice as number).toBeGreaterThan(0.9);
    expect(out.progressEvents as number).toBeGreaterThanOrEqual(1);
    expect(out.maskBytes as number).toBeGreaterThan(100);
  });
});

/** The version of a package this repository uses (the consumer gets the same, from npm's cache). */
function require_(name: string): string {
  return (
    (JSON.parse(execFileSync('npm', ['pkg', 'get', `devDependencies.${name}`], { cwd: ROOT, encoding: 'utf8' })) as string) || 'latest'
  );
}
