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
  /** Per channel: its callbacks, and the LISTEN they wait for (sent once, by the first). */
  readonly #listeners = new Map<string, { callbacks: Set<(payload: string) => void>; subscribed: Promise<void> }>();
  #nextId = 1;
  #closed = false;
  #ready = false;
  /** Why the thread is gone, once it is: every later call rejects with it. */
  #gone: Error | undefined;
  #closing: Promise<void> | undefined;
  /** Set when this side ends the thread (close, a failed open): its exit is then expected. */
  #ending = false;
  readonly waitReady: Promise<void>;

  /** `onUnexpectedExit`: the thread failed or exited other than by close() (every pending and later call rejects). */
  constructor(options: OpenOptions, onUnexpectedExit?: (why: Error) => void) {
    // From sources (tests, tsx) the entry is TypeScript: it loads through tsx, as the CPU pool's threads do.
    const ts = import.meta.url.endsWith('.ts');
    this.#worker = new Worker(new URL(ts ? './pglite-thread-from-source.mjs' : './pglite-thread-entry.js', import.meta.url), {
      workerData: options,
    });
    let opened!: () => void;
    let refused!: (e: Error) => void;
    this.waitReady = new Promise<void>((resolve, reject) => ((opened = resolve), (refused = reject)));
    this.waitReady.catch(() => {}); // its error is open()'s
    this.#worker.on('message', (m: FromEngine) => {
      if (m.kind === 'open') {
        if (m.error) refused(deserializeError(m.error));
        else {
          this.#ready = true;
          if (this.#pending.size === 0) this.#worker.unref();
          opened();
        }
      } else if (m.kind === 'notification') {
        for (const listener of this.#listeners.get(m.channel)?.callbacks ?? []) listener(m.payload);
      } else this.#settle(m.id, m.value, m.error);
    });
    const stopped = (why: Error) => {
      if (!this.#gone && !this.#ending) onUnexpectedExit?.(why);
      this.#gone ??= why;
      this.#closed = true;
      refused(why);
      for (const id of [...this.#pending.keys()]) this.#settle(id, undefined, undefined, why);
    };
    this.#worker.on('error', (err) => stopped(new Error(`the embedded database's thread failed: ${err.message}`, { cause: err })));
    this.#worker.on('exit', (code) => stopped(new Error(`the embedded database's thread exited (code ${code})`)));
    // Held while it opens (a CLI that awaits only the open must not exit under it); after that, as
    // in-process PGlite, only a statement in flight keeps the process alive. Set after the
    // listeners: adding a 'message' listener refs the thread again.
    this.#worker.ref();
  }

  /** Starts the thread and waits for PGlite to open the folder; rejects with PGlite's reason. */
  static async open(options: OpenOptions, onUnexpectedExit?: (why: Error) => void): Promise<PgliteThread> {
    const engine = new PgliteThread(options, onUnexpectedExit);
    try {
      await engine.waitReady;
    } catch (err) {
      engine.#ending = true;
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
    if (this.#pending.size === 0 && this.#ready) this.#worker.unref();
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
      try {
        this.#worker.postMessage({ ...request, id } as ToEngine);
      } catch (err) {
        // A parameter that cannot be cloned (a function, a symbol): refused here, nothing sent.
        this.#settle(
          id,
          undefined,
          undefined,
          new Error(`a statement's parameters cannot cross to the embedded database's thread: ${(err as Error).message}`),
        );
      }
    });
  }

  async query<T>(sql: string, params?: unknown[], options?: CloneableQueryOptions): Promise<Rows<T>> {
    return await this.#call({ op: 'query', sql, ...(params ? { params } : {}), ...(options ? { options: cloneable(options) } : {}) });
  }

  async exec(sql: string, options?: CloneableQueryOptions): Promise<Rows<unknown>[]> {
    return await this.#call({ op: 'exec', sql, ...(options ? { options: cloneable(options) } : {}) });
  }

  async transaction<T>(callback: (tx: EmbeddedTransaction) => Promise<T>): Promise<T> {
    let tx: number;
    try {
      tx = await this.#call<number>({ op: 'begin' });
    } catch (err) {
      // The callback still runs, on a transaction whose every statement fails with BEGIN's error:
      // Kysely's driver waits for the callback to start before it sends anything, and would
      // otherwise wait forever (holding its one connection) when the thread is gone.
      const failed = () => Promise.reject(err as Error);
      await callback({ query: failed, exec: failed, rollback: failed }).catch(() => {});
      throw err;
    }
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
    let entry = this.#listeners.get(channel);
    if (!entry) {
      const created = { callbacks: new Set<(payload: string) => void>(), subscribed: this.#call<void>({ op: 'listen', channel }) };
      created.subscribed.catch(() => {
        if (this.#listeners.get(channel) === created) this.#listeners.delete(channel);
      });
      this.#listeners.set(channel, (entry = created));
    }
    const listening = entry;
    listening.callbacks.add(callback);
    try {
      await listening.subscribed; // a second listener waits for the first one's LISTEN too
    } catch (err) {
      listening.callbacks.delete(callback);
      throw err;
    }
    return async () => {
      listening.callbacks.delete(callback);
      if (listening.callbacks.size > 0 || this.#listeners.get(channel) !== listening) return;
      this.#listeners.delete(channel);
      if (!this.#closed) await this.#call({ op: 'unlisten', channel });
    };
  }

  /** Ends the thread at once, as a crash would (tests): PGlite is not closed, every call rejects. */
  async kill(): Promise<void> {
    await this.#worker.terminate();
  }

  /** Closes PGlite (it writes its folder back) and ends the thread. */
  close(): Promise<void> {
    if (this.#closed && !this.#closing) return Promise.resolve();
    // One close: a second caller (Kysely's destroy beside ours) waits for the first.
    this.#closing ??= (async () => {
      this.#ending = true;
      try {
        await this.#call({ op: 'close' });
      } finally {
        this.#closed = true;
        this.#gone = new Error('the embedded database is closed');
        await this.#worker.terminate();
      }
    })();
    return this.#closing;
  }
}

/** Refuses an option that is a function (parsers, serializers, onNotice) or a Blob, rather than lose it on the way. */
function cloneable(options: CloneableQueryOptions): CloneableQueryOptions {
  for (const [k, v] of Object.entries(options))
    if (v !== undefined && k !== 'rowMode' && k !== 'paramTypes')
      throw new Error(`the query option ${k} cannot cross to the embedded database's thread`);
  return options;
}
