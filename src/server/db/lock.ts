import { closeSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { BootError } from '../data-dir.js';

export interface DirectoryLock {
  readonly path: string;
  release(): void;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * An exclusive lock on the embedded database folder. PGlite keeps the whole database in memory
 * and writes it back on close, so two processes on one folder silently lose each other's writes:
 * the second one must be refused, naming the holder. A lock left by a dead process is taken over.
 * Hand-written because the common lock libraries use mtime staleness and cannot name the pid.
 */
export function lockDirectory(folder: string): DirectoryLock {
  const lockPath = `${folder}.lock`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      return {
        path: lockPath,
        release() {
          if (released) return;
          released = true;
          try {
            if (readFileSync(lockPath, 'utf8').trim() === String(process.pid)) rmSync(lockPath);
          } catch {
            // already gone
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new BootError(`cannot create lock ${lockPath}: ${(err as Error).message}`);
      }
    }
    let holder = Number.NaN;
    try {
      holder = Number.parseInt(readFileSync(lockPath, 'utf8').trim(), 10);
    } catch {
      continue; // removed between our open and read: try again
    }
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
      throw new BootError(
        `the embedded database ${folder} is locked by another strokeview process (pid ${holder}, lock file ${lockPath}); stop it or use another DATA_DIR`,
      );
    }
    // Stale: move it aside atomically so two processes racing for a stale lock cannot both win.
    const aside = `${lockPath}.stale-${process.pid}`;
    try {
      renameSync(lockPath, aside);
      if (readFileSync(aside, 'utf8').trim() !== String(holder)) {
        renameSync(aside, lockPath); // a live process took it over meanwhile: put its lock back
      } else {
        rmSync(aside, { force: true });
      }
    } catch {
      // someone else took it over first; loop and look again
    }
  }
  throw new BootError(`could not take the lock ${lockPath}; remove it if no strokeview process is running`);
}
