// The messages between the server and the embedded database's thread (pglite-thread.ts ⇄
// pglite-thread-entry.ts). Values cross by structured clone: rows, Dates, Uint8Arrays, bigints.

export interface OpenOptions {
  /** The database folder; none: in memory (tests). */
  readonly dataDir?: string;
  /** Added to PGlite's own `defaultStartParams`. */
  readonly moreStartParams: string[];
}

/** The query options that can cross a thread (PGlite's parsers and serializers are functions: not these). */
export interface CloneableQueryOptions {
  rowMode?: 'array' | 'object';
  paramTypes?: number[];
}

type Request =
  | { op: 'query'; sql: string; params?: unknown[]; options?: CloneableQueryOptions }
  | { op: 'exec'; sql: string; options?: CloneableQueryOptions }
  | { op: 'begin' }
  | { op: 'end'; commit: boolean }
  | { op: 'listen'; channel: string }
  | { op: 'unlisten'; channel: string }
  | { op: 'close' };

export type ToEngine = Request & { id: number; tx?: number };

export type FromEngine =
  | { kind: 'open'; error?: SerializedError }
  | { kind: 'reply'; id: number; value?: unknown; error?: SerializedError }
  | { kind: 'notification'; channel: string; payload: string };

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  /** A DatabaseError's fields (code, detail, constraint, …): a clone keeps only message and stack. */
  fields: Record<string, unknown>;
}

export function serializeError(err: unknown): SerializedError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err), fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(err)) {
    if (typeof v === 'function' || k === 'queryOptions') continue; // parsers and the like cannot cross
    try {
      structuredClone(v);
      fields[k] = v;
    } catch {
      fields[k] = String(v);
    }
  }
  return { name: err.name, message: err.message, ...(err.stack ? { stack: err.stack } : {}), fields };
}

/** The error as the caller's thread sees it: an Error with the same name, message and fields. */
export function deserializeError(e: SerializedError): Error {
  const err = Object.assign(new Error(e.message), e.fields);
  Object.defineProperty(err, 'name', { value: e.name, configurable: true, writable: true });
  if (e.stack) err.stack = e.stack;
  return err;
}
