import path from 'node:path';
import { importIsles } from './cases/import.js';
import { fatal } from './boot.js';
import { ensureWritableDataDir } from './data-dir.js';
import { connectDatabase } from './db/connect.js';
import { migrateToLatest } from './db/migrate.js';
import { findUserByEmail } from './db/users.js';
import { EnvError, parseEnv } from './env.js';
import { FsVolumeStore } from './volumes/store.js';

// `npm run import -- <dir> [--owner email]`: imports an ISLES'22/'24 folder into the configured
// database. Cases are shared (visible to everyone) unless an owner is named.
const args = process.argv.slice(2).filter((a) => a !== '--');
const ownerAt = args.indexOf('--owner');
const ownerEmail = ownerAt >= 0 ? args[ownerAt + 1] : undefined;
const dir = args.find((a, i) => !a.startsWith('--') && (ownerAt < 0 || i !== ownerAt + 1));
if (!dir) fatal('usage: npm run import -- <folder> [--owner email]');

try {
  const env = parseEnv();
  const dataDir = ensureWritableDataDir(env.DATA_DIR);
  const database = await connectDatabase({ databaseUrl: env.DATABASE_URL, dataDir });
  try {
    await migrateToLatest(database.db);
    let ownerId: string | null = null;
    if (ownerEmail) {
      const owner = await findUserByEmail(database.db, ownerEmail);
      if (!owner) throw new Error(`no user with email ${ownerEmail}`);
      ownerId = owner.id;
    }
    const store = new FsVolumeStore(path.join(dataDir, 'volumes'));
    const report = await importIsles(database.db, store, path.resolve(dir), {
      ownerId,
      maxVoxels: env.MAX_VOXELS,
      onProgress: (line) => process.stdout.write(`${line}\n`),
    });
    for (const s of report.skipped) process.stdout.write(`skipped ${s.path}: ${s.reason}\n`);
    process.stdout.write(`\n${report.imported.length} case(s) imported, ${report.skipped.length} item(s) skipped\n`);
  } finally {
    await database.close();
  }
} catch (err) {
  fatal(err instanceof EnvError ? `invalid environment: ${err.message}` : (err as Error).message);
}
