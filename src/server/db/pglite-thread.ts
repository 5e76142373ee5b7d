import { Worker } from 'node:worker_threads';
import {
  type CloneableQueryOptions,
  type FromEngine,
  type OpenOptions,
  type SerializedError,
  type ToEngine,
  deserializeError,
} from './pglite-protocol.js';

type Rows<T> = { rows: T[]; affectedRows?: number; fields: { name: string; dataTypeID: number }[] };
type Request = ToEngine extends infer R ? (R extends ToEngine ? Omit<R, 'id'> : never) : never;

/** What the server uses of an embedded engine: PGlite itself (tests, in memory) or its thread. */
export interface EmbeddedEngine {
  readonly closed: boolean;
  readonly ready: boolean;
  readonly waitReady: Promise<void>;
  query<T>(sql: string, params?: unknown[], options?: CloneableQueryOptions): Promise<Rows<T>>;
  exec(sql: string, options?: CloneableQueryOptions): Promise<Rows<unknown>[]>;
  transaction<T>(callback: (tx: EmbeddedTransaction) => Promise<T>): Promise<T>;
  listen(channel: string, callback: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface EmbeddedTransaction {
  query<T>(sql: string, params?: unknown[], options?: CloneableQueryOptions): Promise<Rows<T>>;
  exec(sql: string, options?: CloneableQueryOptions): Promise<Rows<unknown>[]>;
  rollback(): Promise<void>;
}

/**
 * PGlite on a thread of its own (#29). PGlite runs PostgreSQL in WebAssembly on whichever thread
 * holds it: in-process, its ≈ 0.7 s start on a warm restart ran on the event loop behind the
 * server's module loading (the two summed on 2 cores), and every statement's execution blocked
 * HTTP. Here the thread opens it while the server loads, and statements run beside the event
 * loop; each costs a message each way (structured clone of the parameters and the rows).
 *
 * The same contract as PGlite's own: one connection, statements in the order they are sent; a
 * transaction holds the connection until it ends (PGlite's exclusive `transaction`); a
 * notification is delivered before the answer to the statement that committed it; a failed
 * statement rejects with an Error carrying the DatabaseError's fields (code, constraint, …).
 */
export class PgliteThread implements EmbeddedEngine {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  readonly #listeners = new Map<string, Set<(payload: string) => void>>();
  #nextId = 1;
  #closed = false;
  #ready = false;
  /** Why the thread is gone, once it is: every later call rejects with it. */
  #gone: Error | undefined;
  readonly waitReady: Promise<void>;

  constructor(options: OpenOptions) {
    // From sources (tests, tsx) the entry is TypeScript: it loads through tsx, as the CPU pool's threads do.
    const ts = import.meta.url.endsWith('.ts');
    this.#worker = new Worker(new URL(ts ? './pglite-thread-from-source.mjs' : './pglite-thread-entry.js', import.meta.url), {
      workerData: options,
    });
    this.#worker.unref(); // as in-process PGlite: only a statement in flight keeps the process alive
    let opened!: () => void;
    let refused!: (e: Error) => void;
    this.waitReady = new Promise<void>((resolve, reject) => ((opened = resolve), (refused = reject)));
    this.waitReady.catch(() => {}); // its error is open()'s
    this.#worker.on('message', (m: FromEngine) => {
      if (m.kind === 'open') {
        if (m.error) refused(deserializeError(m.error));
        else {
          this.#ready = true;
          opened();
        }
      } else if (m.kind === 'notification') {
        for (const listener of this.#listeners.get(m.channel) ?? []) listener(m.payload);
      } else this.#settle(m.id, m.value, m.error);
    });
    const stopped = (why: Error) => {
      this.#gone ??= why;
      this.#closed = true;
      refused(why);
      for (const id of [...this.#pending.keys()]) this.#settle(id, undefined, undefined, why);
    };
    this.#worker.on('error', (err) => stopped(new Error(`the embedded database's thread failed: ${err.message}`, { cause: err })));
    this.#worker.on('exit', (code) => stopped(new Error(`the embedded database's thread exited (code ${code})`)));
  }

  /** Starts the thread and waits for PGlite to open the folder; rejects with PGlite's reason. */
  static async open(options: OpenOptions): Promise<PgliteThread> {
    const engine = new PgliteThread(options);
    try {
      await engine.waitReady;
    } catch (err) {
      await engine.#worker.terminate();
      throw err;
    }
    return engine;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get ready(): boolean {
    return this.#ready;
  }

  #settle(id: number, value: unknown, error?: SerializedError, thrown?: Error) {
    const waiting = this.#pending.get(id);
    if (!waiting) return;
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.#worker.unref();
    if (thrown) waiting.reject(thrown);
    else if (error) waiting.reject(deserializeError(error));
    else waiting.resolve(value);
  }

  #call<T>(request: Request): Promise<T> {
    if (this.#gone) return Promise.reject(this.#gone);
    if (this.#closed && request.op !== 'close') return Promise.reject(new Error('the embedded database is closed'));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      if (this.#pending.size === 0) this.#worker.ref();
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#worker.postMessage({ ...request, id } as ToEngine);
    });
  }

  async query<T>(sql: string, params?: unknown[], options?: CloneableQueryOptions): Promise<Rows<T>> {
    return await this.#call({ op: 'query', sql, ...(params ? { params } : {}), ...(options ? { options: cloneable(options) } : {}) });
  }

  async exec(sql: string, options?: CloneableQueryOptions): Promise<Rows<unknown>[]> {
    return await this.#call({ op: 'exec', sql, ...(options ? { options: cloneable(options) } : {}) });
  }

  async transaction<T>(callback: (tx: EmbeddedTransaction) => Promise<T>): Promise<T> {
    const tx = await this.#call<number>({ op: 'begin' });
    let ended = false;
    const tr: EmbeddedTransaction = {
      query: async <R>(sql: string, params?: unknown[], options?: CloneableQueryOptions) =>
        await this.#call<Rows<R>>({
          op: 'query',
          sql,
          tx,
          ...(params ? { params } : {}),
          ...(options ? { options: cloneable(options) } : {}),
        }),
      exec: async (sql: string, options?: CloneableQueryOptions) =>
        await this.#call<Rows<unknown>[]>({ op: 'exec', sql, tx, ...(options ? { options: cloneable(options) } : {}) }),
      rollback: async () => {
        ended = true;
        await this.#call({ op: 'end', tx, commit: false });
      },
    };
    let result: T;
    try {
      result = await callback(tr);
    } catch (err) {
      if (!ended) await this.#call({ op: 'end', tx, commit: false }).catch(() => {});
      throw err;
    }
    if (!ended) await this.#call({ op: 'end', tx, commit: true });
    return result;
  }

  async listen(channel: string, callback: (payload: string) => void): Promise<() => Promise<void>> {
    let set = this.#listeners.get(channel);
    if (!set) {
      set = new Set();
      this.#listeners.set(channel, set);
      try {
        await this.#call({ op: 'listen', channel });
      } catch (err) {
        this.#listeners.delete(channel);
        throw err;
      }
    }
    set.add(callback);
    return async () => {
      set.delete(callback);
      if (set.size > 0 || this.#listeners.get(channel) !== set) return;
      this.#listeners.delete(channel);
      if (!this.#closed) await this.#call({ op: 'unlisten', channel });
    };
  }

  /** Closes PGlite (it writes its folder back) and ends the thread. */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#call({ op: 'close' });
    } finally {
      this.#closed = true;
      this.#gone = new Error('the embedded database is closed');
      await this.#worker.terminate();
    }
  }
}

/** Refuses an option that is a function (parsers, serializers, onNotice) or a Blob, rather than lose it on the way. */
function cloneable(options: CloneableQueryOptions): CloneableQueryOptions {
  for (const [k, v] of Object.entries(options))
    if (v !== undefined && k !== 'rowMode' && k !== 'paramTypes')
      throw new Error(`the query option ${k} cannot cross to the embedded database's thread`);
  return options;
}
