import pg from 'pg';

/** Says which databases the integration suites run on, and sweeps throwaway databases a killed run left. */
export default async function setup(): Promise<void> {
  const url = process.env.TEST_DATABASE_URL;
  const kinds = url
    ? 'PGlite (embedded) and PostgreSQL (TEST_DATABASE_URL)'
    : 'PGlite (embedded) only — set TEST_DATABASE_URL to add PostgreSQL';
  process.stdout.write(`\nstrokeview integration databases: ${kinds}\n\n`);
  if (!url) return;
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`TEST_DATABASE_URL is set but the server does not answer: ${(err as Error).message}`);
  }
  try {
    const { rows } = await client.query<{ datname: string }>(
      `select datname from pg_database where datname like 'strokeview_test_%'`,
    );
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
