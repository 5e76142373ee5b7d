import { fatal } from './boot.js';
import { EnvError } from './env.js';
import { importTask } from './tasks.js';

// `npm run import -- <dir> [--owner email]` (also `strokeview import`): imports an ISLES'22/'24
// folder into the configured database. Cases are shared (visible to everyone) unless an owner is named.
const args = process.argv.slice(2).filter((a) => a !== '--');
const ownerAt = args.indexOf('--owner');
const ownerEmail = ownerAt >= 0 ? args[ownerAt + 1] : undefined;
const dir = args.find((a, i) => !a.startsWith('--') && (ownerAt < 0 || i !== ownerAt + 1));
if (!dir) fatal('usage: npm run import -- <folder> [--owner email]');

try {
  const report = await importTask(dir, { ownerEmail, onLine: (line) => process.stdout.write(`${line}\n`) });
  for (const s of report.skipped) process.stdout.write(`skipped ${s.path}: ${s.reason}\n`);
  process.stdout.write(`\n${report.imported.length} case(s) imported, ${report.skipped.length} item(s) skipped\n`);
} catch (err) {
  fatal(err instanceof EnvError ? `invalid environment: ${err.message}` : (err as Error).message);
}
