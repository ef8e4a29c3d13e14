//! The gateway's store: sessions, API-managed grants, group memberships and service accounts,
//! guardrail rule versions, approvals, masking overrides, exemptions and catalogs, and
//! local-user lockouts. Two backends behind one set of typed methods on [`Store`]: the embedded
//! SQLite database in `data_dir` (WAL mode; the default, for one gateway) and a PostgreSQL
//! database shared by several gateway replicas (`[store] url`, in `postgres/`). Each backend
//! migrates its schema forward on open.
//!
//! Architecture invariant: SQL lives only in this module; callers use typed methods and never
//! know which backend answers. SQLite calls block, so async code reaches SQLite through
//! [`Store::run`], which moves the work off the runtime; PostgreSQL calls run on the store's
//! own runtime (`postgres/mod.rs`).

mod approvals;
mod audit_block;
mod audit_db;
mod audit_match;
mod audit_segments;
pub mod changes;
mod grants;
mod groups;
mod lockouts;
mod masking;
pub mod migrate;
mod migrations;
pub mod postgres;
mod rules;
mod service_accounts;
mod sessions;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use approvals::{
    AccessRequestDetails, ApprovalKind, ApprovalRecord, ACCESS_REQUEST_RULE, EXEMPTION_REQUEST_RULE,
};
pub use audit_db::{ArchivedRange, AuditDb, AuditFilter, Checkpoint, NewRecord, StoredRecord};
pub use changes::{Change, Notice};
pub use grants::{GrantPerson, GrantRecord};
pub use groups::GroupMemberRecord;
pub use masking::StoredCatalogRecord;
pub use rules::{RuleVersionRecord, SaveOutcome};
pub use service_accounts::{InsertOutcome, ServiceAccountRecord};
pub use sessions::{SessionLookup, SessionRecord, SessionSummary};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store migration {version} failed: {source}")]
    Migration {
        version: usize,
        source: rusqlite::Error,
    },
    #[error("the store at version {found} is newer than this gateway understands ({known}); upgrade the gateway")]
    TooNew { found: usize, known: usize },
    #[error("store query failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("shared store query failed: {0}")]
    Pg(#[from] tokio_postgres::Error),
    #[error("shared store migration {version} failed: {source}")]
    PgMigration {
        version: usize,
        source: tokio_postgres::Error,
    },
    #[error("the shared store is unreachable: {0}")]
    Unavailable(String),
    #[error("this operation needs the SQLite store")]
    NotSqlite,
    #[error("store worker failed: {0}")]
    Join(String),
    /// The store holds something that contradicts this process (another writer of its chain).
    #[error("{0}")]
    Conflict(String),
    /// A segment file of a gateway's own trail cannot be written.
    #[error("cannot write the audit trail's segment file {path}: {reason}")]
    Segment { path: PathBuf, reason: String },
    /// A block of a gateway's own trail is not what the writer writes (edited by hand).
    #[error("the audit trail is damaged: {0}")]
    MalformedAudit(#[from] audit_block::MalformedBlock),
}

impl StoreError {
    /// The shared store could not be reached (down, restarting, network), as opposed to a
    /// query it refused: the caller may try again later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Pg(e) => {
                e.is_closed()
                    || e.as_db_error().is_none_or(|d| {
                        // admin_shutdown, crash_shutdown, cannot_connect_now
                        matches!(d.code().code(), "57P01" | "57P02" | "57P03")
                    })
            }
            _ => false,
        }
    }
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens (creating if needed) `data_dir/gatehouse.db` and migrates it.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
            path: data_dir.into(),
            source,
        })?;
        let path = data_dir.join("gatehouse.db");
        let conn = rusqlite::Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Self::init(conn, path)
    }

    /// Connects to the shared PostgreSQL store and migrates it. Blocks the calling thread.
    pub fn open_postgres(settings: postgres::PgSettings) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Postgres(postgres::PgStore::open(settings)?),
        })
    }

    /// The shared store, when this is one.
    pub fn pg(&self) -> Option<&postgres::PgStore> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sqlite(_) => None,
        }
    }

    /// Whether the store answers a trivial query now (for `/healthz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg
                .exec(|c| async move {
                    c.query_one("SELECT 1", &[]).await?;
                    Ok(())
                })
                .await;
        }
        self.run(|c| {
            c.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    /// Whether several replicas may share this store.
    pub fn is_shared(&self) -> bool {
        self.pg().is_some()
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = rusqlite::Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: ":memory:".into(),
            source,
        })?;
        Self::init(conn, ":memory:".into())
    }

    fn init(mut conn: rusqlite::Connection, path: PathBuf) -> Result<Store, StoreError> {
        let pragmas = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;";
        conn.execute_batch(pragmas)
            .map_err(|source| StoreError::Open { path, source })?;
        migrations::migrate(&mut conn)?;
        Ok(Store {
            backend: Backend::Sqlite(Arc::new(Mutex::new(conn))),
        })
    }

    fn sqlite(&self) -> Result<&Arc<Mutex<rusqlite::Connection>>, StoreError> {
        match &self.backend {
            Backend::Sqlite(conn) => Ok(conn),
            Backend::Postgres(_) => Err(StoreError::NotSqlite),
        }
    }

    /// Runs blocking SQLite work on tokio's blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.sqlite()?.clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&guard)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Runs SQLite work on the calling thread (for startup and CLI commands).
    pub fn run_blocking<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let guard = self
            .sqlite()?
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&guard)
    }
}
