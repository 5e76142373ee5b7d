import { type Compilable, CompiledQuery, type Kysely, type SelectQueryNode, type Transaction } from 'kysely';
import type { Database } from './tables.js';

/** Stands for the n-th argument while a query is built once. */
class Slot {
  constructor(readonly index: number) {}
}

interface Compiled {
  sql: string;
  /** Per parameter: the argument it takes, or -1 for a constant the builder put there itself. */
  slots: number[];
  constants: readonly unknown[];
}

/**
 * A hot read that Kysely builds and compiles once per shape and database, then runs with new
 * parameters: building and compiling a query's operation tree cost more server CPU than anything
 * else of ours in a `cases.list` (#29, ~10 % of its CPU). `build` gets placeholders for `args`: it
 * may only put them where values go (never look at, branch on or transform them). What changes the
 * statement itself goes in `shape` (which branches, how many values in a list), which `key` names:
 * one compiled statement per key (no key: built as usual, for shapes too many to keep).
 * Only plain selects: the embedded read cache must see every write's operation tree
 * (db/read-cache.ts), and a statement run from here skips that look — a read needs none.
 * In a transaction (a new Kysely each time) the query is built as usual.
 */
export function compiledSelect<Shape, Args extends unknown[], Row>(
  key: (shape: Shape) => string | undefined,
  build: (db: Kysely<Database> | Transaction<Database>, shape: Shape, ...args: Args) => Compilable<Row>,
) {
  const cache = new WeakMap<Kysely<Database>, Map<string, Compiled>>();
  return async function run(db: Kysely<Database> | Transaction<Database>, shape: Shape, ...args: Args): Promise<Row[]> {
    const k = key(shape);
    if (db.isTransaction || k === undefined) return (await db.executeQuery(build(db, shape, ...args))).rows;
    let shapes = cache.get(db);
    if (!shapes) cache.set(db, (shapes = new Map()));
    let compiled = shapes.get(k);
    if (!compiled) {
      const query = build(db, shape, ...(args.map((_, i) => new Slot(i)) as Args)).compile();
      const node = query.query as SelectQueryNode;
      if (node.kind !== 'SelectQueryNode' || node.with) throw new Error('compiledSelect takes plain selects only');
      compiled = { sql: query.sql, slots: query.parameters.map((p) => (p instanceof Slot ? p.index : -1)), constants: query.parameters };
      shapes.set(k, compiled);
    }
    const { sql, slots, constants } = compiled;
    const parameters = slots.map((i, n) => (i >= 0 ? args[i] : constants[n]));
    return (await db.executeQuery(CompiledQuery.raw(sql, parameters))).rows as Row[];
  };
}
