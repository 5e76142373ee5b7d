import { type Env, EnvError, parseEnv } from './env.js';
import { type Logger, createLogger } from './logger.js';

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
 * A promise rejected with nobody listening is a bug (code that started work and forgot its
 * failure: #23 found the worker's progress writes doing it when PostgreSQL restarted). Node's
 * default is to end the process on it, which would turn one failed background write into every
 * open request, upload and running job of this process lost. Instead it is logged as an error,
 * with the error and where it came from, and the process carries on: the work that rejected is
 * already over, and the state that matters is in the database under leases (a job whose attempt
 * went wrong is redelivered). Uncaught exceptions still end the process (thrown synchronously,
 * they can leave state half-changed).
 */
export function logUnhandledRejections(log: Logger): void {
  process.on('unhandledRejection', (reason) => {
    log.error(
      { err: reason, unhandled: true },
      'unhandled promise rejection (a bug: nothing handled this failure); logged, and the process keeps running',
    );
  });
}

/**
 * Runs a service as the process's owner — what `node dist/src/server/index.js`, `strokeview serve`
 * and `strokeview worker` all do: the environment is parsed here so a bad variable is named before
 * anything opens; SIGTERM/SIGINT drain and exit 0; a boot failure is one line on stderr and exit 1;
 * an unhandled rejection is logged and survived (`logUnhandledRejections`).
 * Resolves once the service is ready (the open server or queue keeps the process alive).
 */
export async function runService(start: (env: Env) => Promise<Service>): Promise<void> {
  let env: Env;
  try {
    env = parseEnv();
  } catch (err) {
    fatal(err instanceof EnvError ? `invalid environment: ${err.message}` : String(err));
  }
  logUnhandledRejections(createLogger({ level: env.LOG_LEVEL }));
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
