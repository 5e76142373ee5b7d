import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * Builds once per run (`npm run build`): tests that spawn the server, a worker or the import
 * start from dist/, and the browser tests serve the built viewer. STROKEVIEW_TEST_SKIP_BUILD=1
 * skips it when dist/ is known to be fresh.
 */
function build(): void {
  if (process.env.STROKEVIEW_TEST_SKIP_BUILD === '1') return;
  const t0 = Date.now();
  const run = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, encoding: 'utf8', stdio: 'pipe' });
  if (run.status !== 0) throw new Error(`npm run build failed:\n${run.stdout}\n${run.stderr}`);
  process.stdout.write(`strokeview: built dist/ for the tests in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}

/** Says which databases the integration suites run on, and sweeps throwaway databases a killed run left. */
export default async function setup(): Promise<void> {
  const url = process.env.TEST_DATABASE_URL;
  const kinds = url
    ? 'PGlite (embedded) and PostgreSQL (TEST_DATABASE_URL)'
    : 'PGlite (embedded) only — set TEST_DATABASE_URL to add PostgreSQL';
  process.stdout.write(`\nstrokeview integration databases: ${kinds}\n\n`);
  build();
  if (!url) return;
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`TEST_DATABASE_URL is set but the server does not answer: ${(err as Error).message}`);
  }
  try {
    const { rows } = await client.query<{ datname: string }>(`select datname from pg_database where datname like 'strokeview_test_%'`);
    for (const { datname } of rows) {
      const created = Number.parseInt(datname.split('_')[2] ?? '', 36);
      // Only databases older than a day: a parallel run's databases must survive.
      if (Number.isFinite(created) && Date.now() - created > 86_400_000) {
        await client.query(`drop database if exists ${datname} with (force)`);
      }
    }
  } finally {
    await client.end();
  }
}
