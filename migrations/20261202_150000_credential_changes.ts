import { type Kysely, sql } from 'kysely';

// Frozen in time: imports nothing from src/.
// #29: every process may cache who a session or API token belongs to, so whatever changes that
// answer — a session deleted (sign-out, password change, disable, expiry), a token revoked or
// deleted, a user's role, email, password or disabled flag changed, a user deleted — says so on
// the `strokeview_credentials` channel with the user's id. The database sends it at commit, to
// every replica listening, whoever made the change (a replica, a worker, the CLI, an operator's
// SQL). Sliding renewals (last_seen_at, expires_at moved forward) and token use stamps do not.

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create function strokeview_user_credentials_changed() returns trigger language plpgsql as $$
    begin
      perform pg_notify('strokeview_credentials', old.id::text);
      return null;
    end $$
  `.execute(db);
  await sql`
    create function strokeview_owned_credentials_changed() returns trigger language plpgsql as $$
    begin
      perform pg_notify('strokeview_credentials', old.user_id::text);
      return null;
    end $$
  `.execute(db);
  await sql`
    create trigger users_credentials_changed after update on users for each row
    when ((old.email, old.role, old.password_hash, old.disabled_at) is distinct from (new.email, new.role, new.password_hash, new.disabled_at))
    execute function strokeview_user_credentials_changed()
  `.execute(db);
  await sql`create trigger users_credentials_deleted after delete on users for each row execute function strokeview_user_credentials_changed()`.execute(
    db,
  );
  await sql`create trigger sessions_deleted after delete on sessions for each row execute function strokeview_owned_credentials_changed()`.execute(
    db,
  );
  await sql`
    create trigger sessions_changed after update on sessions for each row
    when ((old.user_id, old.token_hash) is distinct from (new.user_id, new.token_hash) or new.expires_at < old.expires_at)
    execute function strokeview_owned_credentials_changed()
  `.execute(db);
  await sql`create trigger api_tokens_deleted after delete on api_tokens for each row execute function strokeview_owned_credentials_changed()`.execute(
    db,
  );
  await sql`
    create trigger api_tokens_changed after update on api_tokens for each row
    when ((old.user_id, old.token_hash, old.revoked_at, old.expires_at) is distinct from (new.user_id, new.token_hash, new.revoked_at, new.expires_at))
    execute function strokeview_owned_credentials_changed()
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const [trigger, table] of [
    ['users_credentials_changed', 'users'],
    ['users_credentials_deleted', 'users'],
    ['sessions_deleted', 'sessions'],
    ['sessions_changed', 'sessions'],
    ['api_tokens_deleted', 'api_tokens'],
    ['api_tokens_changed', 'api_tokens'],
  ] as const) {
    await sql`drop trigger if exists ${sql.raw(trigger)} on ${sql.raw(table)}`.execute(db);
  }
  await sql`drop function if exists strokeview_user_credentials_changed()`.execute(db);
  await sql`drop function if exists strokeview_owned_credentials_changed()`.execute(db);
}
