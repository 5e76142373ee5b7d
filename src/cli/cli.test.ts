import { type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readNifti } from '../server/nifti/read.js';
import { type LiveServer, startLiveServer } from '../server/test/live-server.js';
import { ROOT, builtEntry, freePort } from '../server/test/process.js';
import { ISLES22_DIR } from '../server/test/isles22.js';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'sv-cli-'));
/** The real ISLES'22 case (../shared/data/isles22); the test that needs it skips without it. */
const ISLES = ISLES22_DIR;

/** Runs the built CLI as a user would (no TTY: plain progress lines). */
function cli(args: string[], env: Record<string, string> = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [builtEntry('src/cli/index.ts'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env },
    timeout: 300_000,
  });
}

describe('strokeview CLI: local commands', { timeout: 300_000 }, () => {
  it('users add (generated password, --admin promotes), tokens create, and clear refusals', () => {
    const env = { DATA_DIR: tmp() };
    const added = cli(['users', 'add', 'ana@example.org'], env);
    expect(added.stderr).toBe('');
    expect(added.status).toBe(0);
    expect(added.stdout).toMatch(/^added ana@example\.org \(user\)\npassword: \S{16,}\n/);

    const again = cli(['users', 'add', 'ana@example.org'], env);
    expect(again.status).toBe(1);
    expect(again.stderr).toBe('strokeview: ana@example.org already has an account (add --admin to make it an administrator)\n');
    const promoted = cli(['users', 'add', 'ana@example.org', '--admin', '--json'], env);
    expect(JSON.parse(promoted.stdout)).toMatchObject({ email: 'ana@example.org', role: 'admin', created: false, password: null });

    const token = cli(['tokens', 'create', 'laptop', '--user', 'ana@example.org'], env);
    expect(token.status).toBe(0);
    expect(token.stdout).toMatch(/^svt_[\w-]{30,}\n$/);
    const nobody = cli(['tokens', 'create', 'laptop', '--user', 'nobody@example.org'], env);
    expect(nobody.status).toBe(1);
    expect(nobody.stderr).toMatch(/no user with email nobody@example\.org/);

    const migrated = cli(['migrate'], env);
    expect(migrated.stdout).toBe('schema is up to date\n');
  });

  it.skipIf(!existsSync(ISLES))("import --study puts the ISLES folder's cases in the owner's study; a re-run adds none twice", () => {
    const env = { DATA_DIR: tmp() };
    expect(cli(['users', 'add', 'pi@example.org'], env).status).toBe(0);
    const first = cli(['import', ISLES, '--owner', 'pi@example.org', '--study', 'ISLES 2022', '--json'], env);
    expect(first.stderr).toBe('');
    const r1 = JSON.parse(first.stdout) as { imported: unknown[]; study: { name: string; added: number; cases: number } };
    expect([r1.imported.length, r1.study.name, r1.study.added, r1.study.cases]).toEqual([1, 'ISLES 2022', 1, 1]);
    const again = JSON.parse(
      cli(['import', ISLES, '--owner', 'pi@example.org', '--study', 'ISLES 2022', '--json'], env).stdout,
    ) as typeof r1;
    expect([again.imported.length, again.study.added, again.study.cases]).toEqual([0, 0, 1]);
    const noOwner = cli(['import', ISLES, '--study', 'ISLES 2022'], env);
    expect([noOwner.status, noOwner.stderr]).toEqual([2, 'strokeview: import: --study needs --owner (a study belongs to someone)\n']);
  });

  it('bad usage exits 2 and says what was wrong; --help everywhere has an example and exits 0', () => {
    const unknown = cli(['segmnt']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'segmnt'[\s\S]*Did you mean segment\?/);
    const missing = cli(['masks', 'download', 'x']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/required option '-o, --output <file>' not specified/);

    const top = cli(['--help']);
    expect(top.status).toBe(0);
    expect(top.stdout).toMatch(/Exit codes: 0 done, 1 failed job or error, 2 bad usage, 3 cannot reach the server/);
    const commands = [
      ['serve'],
      ['worker'],
      ['migrate'],
      ['import'],
      ['users', 'add'],
      ['tokens', 'create'],
      ['cases', 'list'],
      ['cases', 'upload'],
      ['segment'],
      ['jobs', 'list'],
      ['jobs', 'show'],
      ['jobs', 'cancel'],
      ['masks', 'download'],
      ['models'],
      ['studies', 'list'],
      ['studies', 'create'],
      ['studies', 'show'],
      ['studies', 'add-member'],
      ['studies', 'add-cases'],
    ];
    for (const c of commands) {
      const help = cli([...c, '--help']);
      expect(help.status, c.join(' ')).toBe(0);
      expect(help.stdout, c.join(' ')).toMatch(/Examples?:\n {2}\$ .*strokeview /);
    }
  });

  it('cannot reach the server: exit 3 after the retry policy, with a plain sentence', async () => {
    const port = await freePort();
    const run = cli(['cases', 'list', '--url', `http://127.0.0.1:${port}`, '--wait-for-server', '0']);
    expect(run.status).toBe(3);
    expect(run.stderr).toMatch(/^strokeview: cannot reach the server .*is it running, and is --url \/ STROKEVIEW_URL right\?\n$/);
  });
});

describe('strokeview CLI against a live server', { timeout: 400_000 }, () => {
  let server: LiveServer;
  let token: string;
  let holdFile: string;
  beforeAll(async () => {
    holdFile = path.join(tmp(), 'release');
    // Jobs on cases named "held…" wait at inference until the test releases them (see hold.ts).
    server = await startLiveServer({ demoCases: 1, env: { STROKEVIEW_TEST_HOLD: `infer:${holdFile}` } });
    token = await server.token('cli@example.org');
  });
  afterAll(async () => {
    await server?.stop('SIGKILL');
  });
  const remote = (args: string[]) => cli(args, { STROKEVIEW_URL: server.url, STROKEVIEW_TOKEN: token });

  it('cases list, segment --wait with progress and metrics, --json one document, masks download', () => {
    writeFileSync(holdFile, ''); // no hold for this one
    const list = remote(['cases', 'list', '--json']);
    expect(list.status).toBe(0);
    const cases = JSON.parse(list.stdout) as { id: string; name: string }[];
    const demo = cases[0]!;

    const run = remote(['segment', demo.id, '--wait']);
    expect(run.status).toBe(0);
    // Not a terminal: plain progress lines on stderr, ending at 100 %.
    expect(run.stderr).toMatch(/^ *\d+% (queued|running)/m);
    expect(run.stderr.trim().split('\n').at(-1)).toBe('100% succeeded: Done');
    expect(run.stdout).toMatch(/^job [0-9a-f-]{36}: succeeded \(adc-dwi-v2\)\n/);
    expect(run.stdout).toMatch(/ {2}Dice {21}0\.9\d\d\n/);
    expect(run.stdout).toMatch(/predicted lesion volume {2}\d+\.\d\d mL in \d+ lesion\(s\)/);

    const asJson = remote(['segment', demo.id, '--wait', '--json']);
    expect(asJson.status).toBe(0);
    expect(asJson.stderr).toBe('');
    const job = JSON.parse(asJson.stdout) as { id: string; status: string; result: { metrics: { dice: number } } };
    expect(job.status).toBe('succeeded');
    expect(job.result.metrics.dice).toBeGreaterThan(0.9);

    const out = path.join(tmp(), 'mask.nii.gz');
    const dl = remote(['masks', 'download', job.id, '-o', out]);
    expect(dl.status).toBe(0);
    expect(dl.stdout).toMatch(/^wrote .*mask\.nii\.gz \(\d+ bytes\)\n$/);
    expect(readNifti(readFileSync(out)).dims.every((d) => d > 1)).toBe(true);

    const jobs = remote(['jobs', 'list', '--json']);
    expect((JSON.parse(jobs.stdout) as { id: string }[]).map((j) => j.id)).toContain(job.id);
  });

  it('a failed call exits 1 naming the problem: unknown case, no token', () => {
    const unknown = remote(['segment', '00000000-0000-4000-8000-000000000000', '--wait']);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/^strokeview: .*(not found|No such case)/im);
    const anonymous = cli(['jobs', 'list'], { STROKEVIEW_URL: server.url });
    expect(anonymous.status).toBe(1);
    expect(anonymous.stderr).toMatch(/pass an API token with --token or STROKEVIEW_TOKEN/);
  });

  it('a refused token (mistyped, revoked) exits 1 saying so instead of answering as anonymous', () => {
    // Before #23 this printed the public demo cases and exited 0: a bad token looked like a working one.
    const bogus = cli(['--token', 'svt_not_a_real_token', 'cases', 'list'], { STROKEVIEW_URL: server.url });
    expect(bogus.status).toBe(1);
    expect(bogus.stdout).toBe('');
    expect(bogus.stderr).toMatch(
      /^strokeview: the API token was refused \(unknown, revoked or expired\); create a new one with `strokeview tokens create/,
    );
    const after = cli(['cases', 'list', '--token', 'svt_not_a_real_token', '--json'], { STROKEVIEW_URL: server.url });
    expect(after.status).toBe(1);
    expect(JSON.parse(after.stdout)).toMatchObject({
      code: 'UNAUTHORIZED',
      exitCode: 1,
      error: expect.stringMatching(/token was refused/),
    });
  });

  it('Ctrl-C during segment --wait cancels the job on the server', async () => {
    const { rmSync } = await import('node:fs');
    rmSync(holdFile, { force: true }); // jobs now wait at inference
    const cases = JSON.parse(remote(['cases', 'list', '--json']).stdout) as { id: string }[];
    const child = spawn(process.execPath, [builtEntry('src/cli/index.ts'), 'segment', cases[0]!.id, '--wait'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', STROKEVIEW_URL: server.url, STROKEVIEW_TOKEN: token },
    });
    let stderr = '';
    const running = new Promise<void>((resolve) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        if (/running/.test(stderr)) resolve();
      });
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await running; // held at inference: provably mid-job
    child.kill('SIGINT');
    expect(await exited).toBe(1);
    expect(stderr).toMatch(/cancelling the job/);
    // The cancel is recorded at once; released, the worker stops at its next stage.
    writeFileSync(holdFile, '');
    let status = '';
    for (let i = 0; i < 600 && status !== 'cancelled'; i++) {
      status = (JSON.parse(remote(['jobs', 'list', '--json']).stdout) as { status: string }[])[0]!.status;
      if (status !== 'cancelled') await new Promise((r) => setTimeout(r, 200));
    }
    expect(status).toBe('cancelled');
  });
});
