import { type RawBuilder, sql } from 'kysely';

/**
 * Keyset pagination on (created_at, id): rows strictly after the cursor row in the list's order.
 * `table` is the table the cursor id belongs to; `alias` how the query names it.
 */
export function afterCursor(
  table: 'cases' | 'jobs' | 'users',
  cursor: string,
  order: 'asc' | 'desc',
  alias: string = table,
): RawBuilder<boolean> {
  const op = sql.raw(order === 'asc' ? '>' : '<');
  return sql<boolean>`(${sql.ref(`${alias}.created_at`)}, ${sql.ref(`${alias}.id`)}) ${op} (select created_at, id from ${sql.table(table)} where id = ${cursor})`;
}

/**
 * Lists fetch one row more than the page (`limit + 1`): the extra row only says there is a next
 * page, whose cursor is the last row shown.
 */
export function toPage<R extends { id: string }>(rows: R[], limit: number): { page: R[]; nextCursor: string | null } {
  const page = rows.slice(0, limit);
  return { page, nextCursor: rows.length > limit ? (page.at(-1)?.id ?? null) : null };
}
