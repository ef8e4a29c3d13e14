//! Schema migrations, versioned in code. Each entry runs once, in order, inside a transaction;
//! SQLite's `user_version` records how far a database has come. Never edit a shipped entry:
//! append a new one.

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: gateway sessions issued by logins. Only the token's hash is kept.
    "CREATE TABLE sessions (
        id            TEXT PRIMARY KEY,
        token_sha256  BLOB NOT NULL UNIQUE,
        identity      TEXT NOT NULL,
        kind          TEXT NOT NULL,
        groups_json   TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL,
        revoked_at    INTEGER
    );
    CREATE INDEX sessions_identity ON sessions(identity);",
    // 2: refresh tokens and how a session was opened; grants and service accounts managed
    // through the API (config entries stay in the config and are merged in memory).
    "ALTER TABLE sessions ADD COLUMN refresh_sha256 BLOB;
    ALTER TABLE sessions ADD COLUMN refresh_expires_at INTEGER;
    ALTER TABLE sessions ADD COLUMN method TEXT NOT NULL DEFAULT 'password';
    CREATE UNIQUE INDEX sessions_refresh ON sessions(refresh_sha256);
    CREATE TABLE grants (
        id                TEXT PRIMARY KEY,
        groups_json       TEXT NOT NULL,
        environments_json TEXT NOT NULL,
        upstream_role     TEXT,
        created_at        INTEGER NOT NULL,
        created_by        TEXT NOT NULL
    );
    CREATE TABLE service_accounts (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL UNIQUE,
        kind          TEXT NOT NULL,
        token_sha256  BLOB NOT NULL UNIQUE,
        groups_json   TEXT NOT NULL,
        on_behalf_of  TEXT,
        description   TEXT,
        created_at    INTEGER NOT NULL,
        created_by    TEXT NOT NULL,
        rotated_at    INTEGER,
        expires_at    INTEGER,
        revoked_at    INTEGER
    );",
    // 3: guardrail rules managed through the API. Every change writes a whole new version (the
    // full ordered list as JSON), so history is complete and the current rules are the latest.
    "CREATE TABLE rule_versions (
        version     INTEGER PRIMARY KEY,
        created_at  INTEGER NOT NULL,
        created_by  TEXT NOT NULL,
        change      TEXT NOT NULL,
        rules_json  TEXT NOT NULL
    );",
    // 4: approvals of statements sent to review; kept across restarts.
    "CREATE TABLE approvals (
        id               TEXT PRIMARY KEY,
        state            TEXT NOT NULL,
        statement        TEXT NOT NULL,
        statement_sha256 TEXT NOT NULL,
        fingerprint      TEXT NOT NULL,
        identity         TEXT NOT NULL,
        identity_kind    TEXT NOT NULL,
        on_behalf_of     TEXT,
        environment      TEXT NOT NULL,
        database_name    TEXT NOT NULL,
        rule             TEXT NOT NULL,
        reason           TEXT NOT NULL,
        classification   TEXT,
        estimated_rows   INTEGER,
        connection_id    TEXT,
        created_at       INTEGER NOT NULL,
        decided_at       INTEGER,
        decided_by       TEXT,
        decision_reason  TEXT,
        grant_expires_at INTEGER,
        used_at          INTEGER
    );
    CREATE INDEX approvals_state ON approvals(state, created_at);
    CREATE INDEX approvals_grant ON approvals(statement_sha256, identity, environment, state);",
    // 5: group memberships managed through the API, merged into identities at authentication
    // (the IdP's and the config's groups stay where they are).
    "CREATE TABLE group_members (
        group_name TEXT NOT NULL,
        member     TEXT NOT NULL,
        added_at   INTEGER NOT NULL,
        added_by   TEXT NOT NULL,
        PRIMARY KEY (group_name, member)
    );",
    // 6: admin overrides of masking catalog tags (category NULL = confirmed not sensitive).
    "CREATE TABLE masking_overrides (
        environment  TEXT NOT NULL,
        schema_name  TEXT NOT NULL,
        table_name   TEXT NOT NULL,
        column_name  TEXT NOT NULL,
        category     TEXT,
        set_by       TEXT NOT NULL,
        set_at       INTEGER NOT NULL,
        PRIMARY KEY (environment, schema_name, table_name, column_name)
    );",
    // 7: masking exemptions: a group sees a category unmasked in an environment, maybe until a time.
    "CREATE TABLE masking_exemptions (
        id           TEXT PRIMARY KEY,
        group_name   TEXT NOT NULL,
        environment  TEXT NOT NULL,
        category     TEXT,
        column_ref   TEXT,
        expires_at   INTEGER,
        reason       TEXT,
        created_by   TEXT NOT NULL,
        created_at   INTEGER NOT NULL
    );",
    // 8: the masking catalog of each environment's database as last read (columns and the tags
    // found; never sampled values), so a restarted gateway masks by it before reading it again.
    "CREATE TABLE masking_catalogs (
        environment   TEXT NOT NULL,
        database_name TEXT NOT NULL,
        loaded_at     INTEGER NOT NULL,
        catalog_json  TEXT NOT NULL,
        PRIMARY KEY (environment, database_name)
    );",
    // 9: grants that end: an API grant may carry the time it stops letting anyone in (NULL:
    // never); the expiry sweep deletes it soon after.
    "ALTER TABLE grants ADD COLUMN expires_at INTEGER;",
    // 10: local-user lockouts, kept apart from the failure counts (which live in bounded
    // memory) so that no flood of other failures can lift one, and so a restart keeps them.
    "CREATE TABLE login_lockouts (
        name          TEXT PRIMARY KEY,
        locked_until  INTEGER NOT NULL
    );
    CREATE INDEX login_lockouts_until ON login_lockouts(locked_until);",
    // 11: grants for one person, made by approving their access request: the identity (name
    // and kind) they let in instead of groups, the approval they came from, and whether it
    // was break-glass (the requester approved it themselves).
    "ALTER TABLE grants ADD COLUMN identity TEXT;
    ALTER TABLE grants ADD COLUMN identity_kind TEXT;
    ALTER TABLE grants ADD COLUMN approval_id TEXT;
    ALTER TABLE grants ADD COLUMN break_glass INTEGER NOT NULL DEFAULT 0;",
];

pub fn migrate(conn: &mut rusqlite::Connection) -> Result<(), StoreError> {
    apply(conn, MIGRATIONS)
}

/// Brings a database to the last of `migrations` (the main store's, or another database's own
/// list, such as the audit trail's).
pub fn apply(conn: &mut rusqlite::Connection, migrations: &[&str]) -> Result<(), StoreError> {
    let current: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if current > migrations.len() {
        return Err(StoreError::TooNew {
            found: current,
            known: migrations.len(),
        });
    }
    for (i, sql) in migrations.iter().enumerate().skip(current) {
        let version = i + 1;
        let tx = conn
            .transaction()
            .map_err(|source| StoreError::Migration { version, source })?;
        tx.execute_batch(sql)
            .map_err(|source| StoreError::Migration { version, source })?;
        tx.pragma_update(None, "user_version", version as i64)
            .map_err(|source| StoreError::Migration { version, source })?;
        tx.commit()
            .map_err(|source| StoreError::Migration { version, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_schemas() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
        conn.pragma_update(None, "user_version", 999).unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(StoreError::TooNew { found: 999, .. })
        ));
    }
}
