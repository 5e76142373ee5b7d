import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export class BootError extends Error {
  override name = 'BootError';
}

/**
 * Creates DATA_DIR if needed and proves it writable by writing and removing a probe file, so a
 * read-only mount fails at boot with a sentence instead of at the first upload.
 */
export function ensureWritableDataDir(dataDir: string): string {
  const dir = path.resolve(dataDir);
  try {
    mkdirSync(dir, { recursive: true });
    const probe = path.join(dir, `.write-probe-${process.pid}`);
    writeFileSync(probe, 'ok');
    rmSync(probe);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new BootError(`DATA_DIR ${dir} is not writable (${code}); set DATA_DIR to a writable folder`);
  }
  return dir;
}

/**
 * Outside production a missing SECRET_KEY is generated once and kept in DATA_DIR, so signed URLs
 * and sessions survive restarts on a laptop with zero set-up.
 */
export function resolveSecretKey(dataDir: string, configured: string | undefined): string {
  if (configured) return configured;
  const file = path.join(dataDir, 'secret_key');
  try {
    const existing = readFileSync(file, 'utf8').trim();
    if (existing.length >= 32) return existing;
  } catch {
    // not there yet
  }
  const key = randomBytes(32).toString('base64url');
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}

/** Removes spooled upload folders older than `olderThanMs` (0: all) — left by a process that died mid-upload. */
export function removeStaleUploads(dir: string, olderThanMs: number, now = Date.now()): number {
  let removed = 0;
  let entries: string[] = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of entries) {
    const full = path.join(dir, name);
    try {
      if (olderThanMs === 0 || now - statSync(full).mtimeMs > olderThanMs) {
        rmSync(full, { recursive: true, force: true });
        removed++;
      }
    } catch {
      // gone meanwhile
    }
  }
  return removed;
}
