import { execFile, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './process.js';

const run = promisify(execFile);

/** Debian's PostgreSQL binaries (the `postgresql-15` package). */
export const PG_BIN = process.env.STROKEVIEW_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/**
 * A PostgreSQL cluster of the test's own, on its own port and socket folder, that a fault test may
 * stop and start at will — the shared server on 5432 serves every other test and must never be
 * restarted. initdb refuses to run as root, so as root the cluster belongs to the `postgres` OS user.
 */
export interface ThrowawayCluster {
  /** A superuser URL (trust auth on 127.0.0.1). */
  url: string;
  port: number;
  /** `pg_ctl stop -m fast`: sessions are cut, the server is gone until `start()`. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** The server's own log (why it did not start). */
  log(): string;
  /** Stops it (immediately) and removes its folder. */
  remove(): Promise<void>;
}

interface OsUser {
  uid: number;
  gid: number;
}

function postgresUser(): OsUser | undefined {
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

const isRoot = () => process.getuid?.() === 0;

/** Why a throwaway cluster cannot be made here, or undefined when it can (for `describe.skipIf`). */
export function throwawayClusterUnsupported(): string | undefined {
  for (const bin of ['initdb', 'pg_ctl']) {
    if (!existsSync(path.join(PG_BIN, bin)))
      return `${path.join(PG_BIN, bin)} is missing (install postgresql-15 or set STROKEVIEW_TEST_PG_BIN)`;
  }
  if (isRoot()) {
    if (!postgresUser()) return 'running as root and there is no `postgres` OS user to own the cluster (initdb refuses root)';
    if (spawnSync('runuser', ['--help'], { stdio: 'ignore' }).status !== 0) return 'running as root and `runuser` is missing';
  }
  return undefined;
}

export async function startThrowawayCluster(): Promise<ThrowawayCluster> {
  const owner = isRoot() ? postgresUser() : undefined;
  const dir = mkdtempSync(path.join(tmpdir(), 'sv-pgcluster-'));
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const data = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  const port = await freePort();
  const pg = (bin: string, args: string[]) =>
    owner ? run('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, bin), ...args]) : run(path.join(PG_BIN, bin), args);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`;
  const cluster: ThrowawayCluster = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      await pg('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
    },
    async start() {
      await pg('pg_ctl', ['-D', data, '-o', options, '-l', logFile, '-w', '-t', '120', 'start']);
    },
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    async remove() {
      await pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await pg('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync']);
    await cluster.start();
  } catch (err) {
    const log = cluster.log();
    await cluster.remove();
    throw new Error(`the throwaway PostgreSQL cluster did not start: ${(err as Error).message}\n${log}`);
  }
  return cluster;
}
