//! Where the trail lives: a gateway's own SQLite file (`data_dir/audit.db`), or, when replicas
//! share a PostgreSQL store, this replica's chain there beside every other replica's. The
//! writer appends through [`Destination`]; searches, exports and sinks read through [`Trail`].

use std::path::PathBuf;
use std::sync::Arc;

use crate::store::postgres::audit::{AuditConnection, Batch};
use crate::store::postgres::PgStore;
use crate::store::{AuditDb, AuditFilter, Checkpoint, NewRecord, StoreError, StoredRecord};

/// How readers reach the trail; cheap to clone.
#[derive(Clone)]
pub enum Trail {
    Local(PathBuf),
    Shared { store: PgStore, replica: String },
}

impl Trail {
    /// Records matching `filter` (see [`AuditFilter`]), at most `limit`: in a shared store,
    /// every replica's unless the filter names one.
    pub async fn search(
        &self,
        filter: AuditFilter,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        match self {
            Trail::Local(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    AuditDb::open_read_only(&path)?.search(&filter, limit)
                })
                .await
                .map_err(|e| StoreError::Join(e.to_string()))?
            }
            Trail::Shared { store, .. } => store.audit_search(filter, limit).await,
        }
    }

    /// This replica's own chain, for what follows only what it wrote (sinks).
    pub fn own_chain(&self) -> Option<&str> {
        match self {
            Trail::Local(_) => None,
            Trail::Shared { replica, .. } => Some(replica),
        }
    }
}

/// Where the writer appends.
pub enum Destination {
    Local(AuditDb),
    Shared(AuditConnection),
}

/// A batch ready for its destination; made once, so a retry writes the same rows.
pub enum Prepared {
    Local,
    Shared(Arc<Batch>),
}

impl Destination {
    /// The replica id records carry, in a shared store.
    pub fn replica(&self) -> Option<&str> {
        match self {
            Destination::Local(_) => None,
            Destination::Shared(c) => Some(c.replica()),
        }
    }

    /// Checks the chain may be written with `public_key` (a shared store's chain is bound to
    /// the key that signs it), then reads its head.
    pub fn open(&mut self, public_key: &[u8]) -> Result<Option<(i64, String)>, StoreError> {
        match self {
            Destination::Local(db) => db.head(),
            Destination::Shared(c) => {
                c.register(public_key.to_vec())?;
                c.head()
            }
        }
    }

    pub fn prepare(&self, rows: &[NewRecord<'_>]) -> Prepared {
        match self {
            Destination::Local(_) => Prepared::Local,
            Destination::Shared(_) => Prepared::Shared(Arc::new(Batch::from_records(rows))),
        }
    }

    /// Appends `rows` (prepared as `prepared`) after record `after`, all or nothing.
    pub fn append(
        &mut self,
        after: i64,
        rows: &[NewRecord<'_>],
        prepared: &Prepared,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<(), StoreError> {
        match (self, prepared) {
            (Destination::Local(db), _) => db.append(rows, checkpoint),
            (Destination::Shared(c), Prepared::Shared(batch)) => {
                c.append(after, batch.clone(), checkpoint.cloned())
            }
            (Destination::Shared(c), Prepared::Local) => c.append(
                after,
                Arc::new(Batch::from_records(rows)),
                checkpoint.cloned(),
            ),
        }
    }
}
