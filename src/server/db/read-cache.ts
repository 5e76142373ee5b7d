import type {
  KyselyPlugin,
  OperationNode,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryResult,
  RawNode,
  RootOperationNode,
  SelectQueryNode,
  UnknownRow,
} from 'kysely';

/**
 * Results of hot reads (the case list), kept while nothing has written — embedded database only
 * (#29): its lock makes this process the database's one user, and every statement this process
 * runs through Kysely passes `plugin()`, so no write can happen that the cache does not see. Any
 * statement that is not a plain read (insert, update, delete, DDL, raw SQL that is not a bare
 * `select`, a select with a data-modifying WITH), inside a transaction or not, from any module, drops every entry — before it runs and
 * again after it finished (or failed) — so a read that overlapped a write is never kept, and a
 * transaction's rollback cannot leave its uncommitted rows behind. Coarse on purpose: on a
 * classroom demo reads outnumber writes by far, and one counter is easy to prove right.
 * pg-boss writes through its own adapter, unseen: a cached read must not read its `pgboss` tables
 * (the case list reads cases, case_volumes, study_cases, study_members); nor may one depend on a
 * function that writes when selected (none in this schema).
 * Values are shared between requests: callers must not change them.
 */
export class ReadCache {
  #generation = 0;
  readonly #entries = new Map<string, Promise<unknown>>();
  readonly #writes = new WeakSet<object>();
  readonly #max: number;
  /** Reads answered from the cache / loaded (for tests and the bench). */
  hits = 0;
  loads = 0;

  constructor(opts: { maxEntries?: number } = {}) {
    this.#max = opts.maxEntries ?? 1000;
  }

  /** Drops every entry: a write began or ended. */
  invalidate(): void {
    this.#generation++;
    this.#entries.clear();
  }

  /**
   * `key`'s value from the cache, or `load()`'s, kept if no write began or ended while it ran.
   * Concurrent readers of one key share one load; a failed load is not kept.
   */
  read<T>(key: string, load: () => Promise<T>): Promise<T> {
    const cached = this.#entries.get(key);
    if (cached) {
      this.hits++;
      return cached as Promise<T>;
    }
    this.loads++;
    const generation = this.#generation;
    const loading = load();
    if (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(key, loading);
    loading.then(
      () => {
        // A write began or ended meanwhile: the entry was dropped then; nothing to keep.
        if (generation !== this.#generation) this.#entries.delete(key);
      },
      () => {
        if (this.#entries.get(key) === loading) this.#entries.delete(key);
      },
    );
    return loading;
  }

  /** The Kysely plugin that sees every statement (installed on the embedded database's Kysely). */
  plugin(): KyselyPlugin {
    return {
      transformQuery: ({ node, queryId }: PluginTransformQueryArgs): RootOperationNode => {
        if (mayWrite(node)) {
          this.#writes.add(queryId);
          this.invalidate();
        }
        return node;
      },
      transformResult: async ({ queryId, result }: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> => {
        if (this.#writes.has(queryId)) this.invalidate();
        return result;
      },
    };
  }
}

const READ_ONLY_RAW = /^\s*select\b/i;
const WRITE_WORD =
  /\b(insert|update|delete|merge|truncate|copy|call|do|alter|create|drop|grant|revoke|vacuum|reindex|cluster|refresh|lock)\b/i;

/**
 * Everything but a select may write — and a select whose WITH holds anything but selects (a
 * data-modifying CTE); raw SQL counts as a read only when it is a bare select with no writing word.
 */
function mayWrite(node: OperationNode): boolean {
  if (node.kind === 'SelectQueryNode') return ((node as SelectQueryNode).with?.expressions ?? []).some((cte) => mayWrite(cte.expression));
  if (node.kind === 'RawNode') {
    const text = (node as RawNode).sqlFragments.join(' ');
    return !(READ_ONLY_RAW.test(text) && !WRITE_WORD.test(text));
  }
  return true;
}
