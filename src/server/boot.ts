import { type Env, EnvError, parseEnv } from './env.js';

/** Prints one plain line a person can act on, then exits non-zero. Used for every boot failure. */
export function fatal(message: string, code = 1): never {
  process.stderr.write(`strokeview: ${message}\n`);
  process.exit(code);
}

/** A long-running process's work (the server, a worker alone), as `startServer`/`startWorker` return it. */
export interface Service {
  /** Settles when boot has finished; rejects with the one line to print when it failed. */
  readonly ready: Promise<void>;
  /** Drains and closes; safe during boot (which then stops before its next step) and more than once. */
  stop(signal?: string): Promise<void>;
}

/**
 * Runs a service as the process's owner — what `node dist/src/server/index.js`, `strokeview serve`
 * and `strokeview worker` all do: the environment is parsed here so a bad variable is named before
 * anything opens; SIGTERM/SIGINT drain and exit 0; a boot failure is one line on stderr and exit 1.
 * Resolves once the service is ready (the open server or queue keeps the process alive).
 */
export async function runService(start: (env: Env) => Promise<Service>): Promise<void> {
  let env: Env;
  try {
    env = parseEnv();
  } catch (err) {
    fatal(err instanceof EnvError ? `invalid environment: ${err.message}` : String(err));
  }
  const starting = start(env);
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    void starting.then((service) => service.stop(signal)).finally(() => process.exit(0));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await (
      await starting
    ).ready;
  } catch (err) {
    if (stopping) return; // the signal's stop exits
    fatal(err instanceof Error ? err.message : String(err));
  }
}

/** `promise`'s value, or undefined if it has not settled (or rejected) within `ms`. */
export async function settledWithin<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([promise.catch(() => undefined), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
