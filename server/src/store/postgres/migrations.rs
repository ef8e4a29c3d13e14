//! The shared store's schema, versioned in code like the SQLite store's
//! (`store/migrations.rs`): each entry runs once, in order, and `gatehouse_schema` records how
//! far a database has come. Never edit a shipped entry: append a new one.
//!
//! Version 1 is the SQLite store's schema at its version 11 in PostgreSQL's types: integers
//! are `BIGINT` (Unix seconds), hashes `BYTEA`, flags `BOOLEAN`, JSON kept as the same text.
//! Grants carry a `seq` so that grants made in the same second keep their order (SQLite's
//! `rowid`).

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite store holds except the audit trail.
    "CREATE TABLE sessions (
        id                 TEXT PRIMARY KEY,
        token_sha256       BYTEA NOT NULL UNIQUE,
        identity           TEXT NOT NULL,
        kind               TEXT NOT NULL,
        groups_json        TEXT NOT NULL,
        created_at         BIGINT NOT NULL,
        expires_at         BIGINT NOT NULL,
        revoked_at         BIGINT,
        refresh_sha256     BYTEA UNIQUE,
        refresh_expires_at BIGINT,
        method             TEXT NOT NULL DEFAULT 'password'
    );
    CREATE INDEX sessions_identity ON sessions(identity);
    CREATE TABLE grants (
        seq               BIGSERIAL NOT NULL,
        id                TEXT PRIMARY KEY,
        groups_json       TEXT NOT NULL,
        environments_json TEXT NOT NULL,
        upstream_role     TEXT,
        created_at        BIGINT NOT NULL,
        created_by        TEXT NOT NULL,
        expires_at        BIGINT,
        identity          TEXT,
        identity_kind     TEXT,
        approval_id       TEXT,
        break_glass       BOOLEAN NOT NULL DEFAULT false
    );
    CREATE TABLE service_accounts (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL UNIQUE,
        kind          TEXT NOT NULL,
        token_sha256  BYTEA NOT NULL UNIQUE,
        groups_json   TEXT NOT NULL,
        on_behalf_of  TEXT,
        description   TEXT,
        created_at    BIGINT NOT NULL,
        created_by    TEXT NOT NULL,
        rotated_at    BIGINT,
        expires_at    BIGINT,
        revoked_at    BIGINT
    );
    CREATE TABLE rule_versions (
        version     BIGINT PRIMARY KEY,
        created_at  BIGINT NOT NULL,
        created_by  TEXT NOT NULL,
        change      TEXT NOT NULL,
        rules_json  TEXT NOT NULL
    );
    CREATE TABLE approvals (
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
        estimated_rows   BIGINT,
        connection_id    TEXT,
        created_at       BIGINT NOT NULL,
        decided_at       BIGINT,
        decided_by       TEXT,
        decision_reason  TEXT,
        grant_expires_at BIGINT,
        used_at          BIGINT
    );
    CREATE INDEX approvals_state ON approvals(state, created_at);
    CREATE INDEX approvals_grant ON approvals(statement_sha256, identity, environment, state);
    CREATE TABLE group_members (
        group_name TEXT NOT NULL,
        member     TEXT NOT NULL,
        added_at   BIGINT NOT NULL,
        added_by   TEXT NOT NULL,
        PRIMARY KEY (group_name, member)
    );
    CREATE TABLE masking_overrides (
        environment  TEXT NOT NULL,
        schema_name  TEXT NOT NULL,
        table_name   TEXT NOT NULL,
        column_name  TEXT NOT NULL,
        category     TEXT,
        set_by       TEXT NOT NULL,
        set_at       BIGINT NOT NULL,
        PRIMARY KEY (environment, schema_name, table_name, column_name)
    );
    CREATE TABLE masking_exemptions (
        id           TEXT PRIMARY KEY,
        group_name   TEXT NOT NULL,
        environment  TEXT NOT NULL,
        category     TEXT,
        column_ref   TEXT,
        expires_at   BIGINT,
        reason       TEXT,
        created_by   TEXT NOT NULL,
        created_at   BIGINT NOT NULL
    );
    CREATE TABLE masking_catalogs (
        environment   TEXT NOT NULL,
        database_name TEXT NOT NULL,
        loaded_at     BIGINT NOT NULL,
        catalog_json  TEXT NOT NULL,
        PRIMARY KEY (environment, database_name)
    );
    CREATE TABLE login_lockouts (
        name          TEXT PRIMARY KEY,
        locked_until  BIGINT NOT NULL
    );
    CREATE INDEX login_lockouts_until ON login_lockouts(locked_until);",
    // 2: the audit trail: a hash chain per replica, its checkpoints and signing key. `id`
    // orders rows store-wide in commit order; searches read by time, `(ts, id)`.
    "CREATE TABLE audit_chains (
        replica    TEXT PRIMARY KEY,
        public_key BYTEA NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE audit (
        id            BIGSERIAL PRIMARY KEY,
        replica       TEXT NOT NULL,
        seq           BIGINT NOT NULL,
        ts            TEXT NOT NULL,
        event         TEXT NOT NULL,
        identity      TEXT,
        environment   TEXT,
        connection_id TEXT,
        record_json   TEXT NOT NULL,
        hash          TEXT NOT NULL,
        UNIQUE (replica, seq)
    );
    CREATE INDEX audit_time ON audit(ts, id);
    CREATE INDEX audit_identity ON audit(identity, ts, id);
    CREATE INDEX audit_environment ON audit(environment, ts, id);
    CREATE INDEX audit_connection ON audit(connection_id, ts, id);
    CREATE TABLE audit_checkpoints (
        replica   TEXT NOT NULL,
        seq       BIGINT NOT NULL,
        hash      TEXT NOT NULL,
        ts        TEXT NOT NULL,
        signature BYTEA NOT NULL,
        PRIMARY KEY (replica, seq)
    );",
];

/// An arbitrary constant: the advisory lock every replica takes to migrate.
const MIGRATION_LOCK: i64 = 0x6761_7465_686f_7573; // "gatehous"

pub async fn migrate(c: &mut tokio_postgres::Client) -> Result<(), StoreError> {
    let tx = c.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS gatehouse_schema (
            version    INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let current: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM gatehouse_schema",
            &[],
        )
        .await?
        .get(0);
    let current = current as usize;
    if current > MIGRATIONS.len() {
        return Err(StoreError::TooNew {
            found: current,
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = i + 1;
        tx.batch_execute(sql)
            .await
            .map_err(|source| StoreError::PgMigration { version, source })?;
        tx.execute(
            "INSERT INTO gatehouse_schema (version) VALUES ($1)",
            &[&(version as i32)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
