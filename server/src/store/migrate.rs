//! `gatehouse-server migrate-store`: copies one gateway's SQLite store (`data_dir/gatehouse.db`)
//! into an empty shared PostgreSQL store, table by table in one transaction, so a gateway that
//! ran alone can become the first of several replicas with its sessions, API grants,
//! memberships, service accounts, rule versions, approvals, masking settings and lockouts.
//! The audit trail is not in this store (`audit.db` stays in `data_dir`).

use std::path::Path;

use tokio_postgres::types::ToSql;

use super::postgres::PgStore;
use super::{migrations, StoreError};

#[derive(Clone, Copy)]
enum Ty {
    Text,
    Int,
    Blob,
    Bool,
}

use Ty::*;

/// A table: its name, the order its rows are copied in, its columns and their types.
type Table = (&'static str, &'static str, &'static [(&'static str, Ty)]);

/// A table's rows read from SQLite: its name, its columns, the rows.
type Rows = (&'static str, Vec<&'static str>, Vec<Vec<Val>>);

/// Every table of the store, its columns and their types, in an order that keeps meaning
/// (grants oldest first, as `rowid` ordered them).
const TABLES: &[Table] = &[
    (
        "sessions",
        "rowid",
        &[
            ("id", Text),
            ("token_sha256", Blob),
            ("identity", Text),
            ("kind", Text),
            ("groups_json", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
            ("refresh_sha256", Blob),
            ("refresh_expires_at", Int),
            ("method", Text),
        ],
    ),
    (
        "grants",
        "created_at, rowid",
        &[
            ("id", Text),
            ("groups_json", Text),
            ("environments_json", Text),
            ("upstream_role", Text),
            ("created_at", Int),
            ("created_by", Text),
            ("expires_at", Int),
            ("identity", Text),
            ("identity_kind", Text),
            ("approval_id", Text),
            ("break_glass", Bool),
        ],
    ),
    (
        "service_accounts",
        "rowid",
        &[
            ("id", Text),
            ("name", Text),
            ("kind", Text),
            ("token_sha256", Blob),
            ("groups_json", Text),
            ("on_behalf_of", Text),
            ("description", Text),
            ("created_at", Int),
            ("created_by", Text),
            ("rotated_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
        ],
    ),
    (
        "rule_versions",
        "version",
        &[
            ("version", Int),
            ("created_at", Int),
            ("created_by", Text),
            ("change", Text),
            ("rules_json", Text),
        ],
    ),
    (
        "approvals",
        "rowid",
        &[
            ("id", Text),
            ("state", Text),
            ("statement", Text),
            ("statement_sha256", Text),
            ("fingerprint", Text),
            ("identity", Text),
            ("identity_kind", Text),
            ("on_behalf_of", Text),
            ("environment", Text),
            ("database_name", Text),
            ("rule", Text),
            ("reason", Text),
            ("classification", Text),
            ("estimated_rows", Int),
            ("connection_id", Text),
            ("created_at", Int),
            ("decided_at", Int),
            ("decided_by", Text),
            ("decision_reason", Text),
            ("grant_expires_at", Int),
            ("used_at", Int),
        ],
    ),
    (
        "group_members",
        "rowid",
        &[
            ("group_name", Text),
            ("member", Text),
            ("added_at", Int),
            ("added_by", Text),
        ],
    ),
    (
        "masking_overrides",
        "rowid",
        &[
            ("environment", Text),
            ("schema_name", Text),
            ("table_name", Text),
            ("column_name", Text),
            ("category", Text),
            ("set_by", Text),
            ("set_at", Int),
        ],
    ),
    (
        "masking_exemptions",
        "rowid",
        &[
            ("id", Text),
            ("group_name", Text),
            ("environment", Text),
            ("category", Text),
            ("column_ref", Text),
            ("expires_at", Int),
            ("reason", Text),
            ("created_by", Text),
            ("created_at", Int),
        ],
    ),
    (
        "masking_catalogs",
        "rowid",
        &[
            ("environment", Text),
            ("database_name", Text),
            ("loaded_at", Int),
            ("catalog_json", Text),
        ],
    ),
    (
        "login_lockouts",
        "rowid",
        &[("name", Text), ("locked_until", Int)],
    ),
];

/// One value on its way from SQLite to PostgreSQL.
#[derive(Debug)]
enum Val {
    Text(Option<String>),
    Int(Option<i64>),
    Blob(Option<Vec<u8>>),
    Bool(bool),
}

impl Val {
    fn sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Val::Text(v) => v,
            Val::Int(v) => v,
            Val::Blob(v) => v,
            Val::Bool(v) => v,
        }
    }
}

/// Rows copied per table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: &'static str,
    pub rows: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot open the SQLite store {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the shared store already holds state (table `{0}` has rows): migrate into an empty store"
    )]
    NotEmpty(&'static str),
}

/// Copies the SQLite store at `from` (the database file, or the `data_dir` holding
/// `gatehouse.db`) into `to`, which must hold no state yet. The source is first brought to
/// this gateway's schema. Stop the gateway that uses `from` before copying.
pub fn sqlite_to_postgres(from: &Path, to: &PgStore) -> Result<Vec<Copied>, MigrateError> {
    let path = if from.is_dir() {
        from.join("gatehouse.db")
    } else {
        from.to_path_buf()
    };
    if !path.exists() {
        return Err(MigrateError::Open {
            path,
            source: rusqlite::Error::InvalidPath("no such file".into()),
        });
    }
    let mut conn = rusqlite::Connection::open(&path).map_err(|source| MigrateError::Open {
        path: path.clone(),
        source,
    })?;
    migrations::migrate(&mut conn)?;
    let mut tables: Vec<Rows> = Vec::new();
    for (table, order, columns) in TABLES {
        let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {} FROM {table} ORDER BY {order}",
                names.join(", ")
            ))
            .map_err(StoreError::from)?;
        let rows = stmt
            .query_map([], |r| {
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, ty))| {
                        Ok(match ty {
                            Text => Val::Text(r.get(i)?),
                            Int => Val::Int(r.get(i)?),
                            Blob => Val::Blob(r.get(i)?),
                            Bool => Val::Bool(r.get::<_, Option<bool>>(i)?.unwrap_or(false)),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Val>>>()
            })
            .map_err(StoreError::from)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(StoreError::from)?;
        tables.push((table, names, rows));
    }
    let copied = to.blocking(move |mut c| async move {
        let tx = c.transaction().await?;
        for (table, _, _) in &tables {
            let n: i64 = tx
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await?
                .get(0);
            if n > 0 {
                return Ok(Err(MigrateError::NotEmpty(table)));
            }
        }
        let mut copied = Vec::new();
        for (table, names, rows) in &tables {
            let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
            let stmt = tx
                .prepare(&format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    names.join(", "),
                    placeholders.join(", ")
                ))
                .await?;
            for row in rows {
                let params: Vec<&(dyn ToSql + Sync)> = row.iter().map(Val::sql).collect();
                tx.execute(&stmt, &params).await?;
            }
            copied.push(Copied {
                table,
                rows: rows.len(),
            });
        }
        tx.commit().await?;
        Ok(Ok(copied))
    })??;
    Ok(copied)
}
