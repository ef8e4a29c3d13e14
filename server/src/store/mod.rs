//! The embedded store: one SQLite database in `data_dir` (WAL mode), with its schema migrated
//! forward on open. Holds gateway sessions, API-managed grants, group memberships and service
//! accounts, guardrail rule versions and local-user lockouts; later issues add their tables as
//! migrations.
//!
//! Architecture invariant: SQL lives only in this module; callers use typed methods. Calls block,
//! so async code reaches the store through [`Store::run`], which moves the work off the runtime.

mod approvals;
mod audit_db;
mod grants;
mod groups;
mod lockouts;
mod masking;
mod migrations;
mod rules;
mod service_accounts;
mod sessions;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use approvals::{
    AccessRequestDetails, ApprovalKind, ApprovalRecord, ACCESS_REQUEST_RULE, EXEMPTION_REQUEST_RULE,
};
pub use audit_db::{ArchivedRange, AuditDb, AuditFilter, Checkpoint, NewRecord, StoredRecord};
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
    #[error("store worker failed: {0}")]
    Join(String),
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<rusqlite::Connection>>,
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
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs blocking store work on tokio's blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&guard)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Runs store work on the calling thread (for startup and CLI commands).
    pub fn run_blocking<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let guard = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&guard)
    }
}
