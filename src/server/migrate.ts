import { fatal } from './boot.js';
import { ensureWritableDataDir } from './data-dir.js';
import { connectDatabase } from './db/connect.js';
import { migrateToLatest } from './db/migrate.js';
import { EnvError, parseEnv } from './env.js';

// `npm run migrate`: brings the configured database to the latest schema and exits.
try {
  const env = parseEnv();
  const dataDir = ensureWritableDataDir(env.DATA_DIR);
  const database = await connectDatabase({ databaseUrl: env.DATABASE_URL, dataDir });
  try {
    const applied = await migrateToLatest(database.db);
    process.stdout.write(
      applied.length
        ? `applied ${applied.length} migration(s): ${applied.join(', ')}\n`
        : 'schema is up to date\n',
    );
  } finally {
    await database.close();
  }
} catch (err) {
  fatal(err instanceof EnvError ? `invalid environment: ${err.message}` : (err as Error).message);
}
