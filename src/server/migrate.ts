import { fatal } from './boot.js';
import { EnvError } from './env.js';
import { migrateTask } from './tasks.js';

// `npm run migrate` (also `strokeview migrate`): brings the configured database to the latest schema and exits.
try {
  const applied = await migrateTask();
  process.stdout.write(applied.length ? `applied ${applied.length} migration(s): ${applied.join(', ')}\n` : 'schema is up to date\n');
} catch (err) {
  fatal(err instanceof EnvError ? `invalid environment: ${err.message}` : (err as Error).message);
}
