//! The audit trail: every connection, statement, login and admin action, hash-chained and
//! written in batches off the hot path.
//!
//! Sessions and handlers call [`Audit::record`] (queue, never drop: waits when the bounded queue
//! is full) or [`Audit::record_durable`] (returns once the record is committed, for statements
//! that change data). [`Audit::healthy`] is false while the trail cannot be written; callers then
//! refuse new statements (fail closed).
//!
//! Architecture invariant: the audit knows nothing about sockets; SQL lives in `store::audit_db`.

pub mod archive;
mod chain;
pub mod import;
pub mod record;
pub mod sinks;
pub mod trail;
pub mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

pub use record::{AuditRecord, ConnectionMeta, Pending, StatementEvent};
pub use trail::Trail;
pub use writer::WriteFailure;

use crate::store::postgres::audit::AuditConnection;
use crate::store::postgres::PgStore;
use crate::store::{AuditDb, StoreError};

/// Records the queue holds before callers wait, unless `[audit] queue_records` says otherwise:
/// a few hundred bytes each, so tens of MiB that carry reads through a store outage of a
/// minute or more at thousands of statements a second.
pub const DEFAULT_QUEUE_RECORDS: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] chain::KeyError),
    #[error("cannot start the audit writer: {0}")]
    Thread(std::io::Error),
}

#[derive(Clone)]
pub struct Audit {
    tx: mpsc::Sender<writer::Message>,
    shared: Arc<writer::Shared>,
    trail: Trail,
    /// The writer thread, woken when a record is waited on (it may be lingering for a batch).
    writer: std::thread::Thread,
}

pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("audit.db")
}

/// Room for one record in the writer's queue (see [`Audit::slot`]).
pub struct Slot<'a> {
    permit: mpsc::Permit<'a, writer::Message>,
    shared: &'a writer::Shared,
}

impl Slot<'_> {
    pub fn put(self, pending: Pending) {
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        self.permit.send(writer::Message {
            pending: Some(pending),
            ack: None,
        });
    }
}

fn writer_stopped(shared: &writer::Shared, message: writer::Message) {
    shared.queued.fetch_sub(1, Ordering::Relaxed);
    tracing::error!(event = ?message.pending, "the audit writer has stopped; record not written");
}

impl Audit {
    /// Opens (or creates) the trail in `data_dir` and starts its writer thread.
    pub fn open(data_dir: &Path, queue_records: usize) -> Result<Audit, AuditError> {
        let path = db_path(data_dir);
        let db = AuditDb::open(&path)?;
        let destination = trail::Destination::Local(db);
        Audit::start(data_dir, destination, Trail::Local(path), queue_records)
    }

    /// Writes this replica's chain into the shared store (signed with the key in `data_dir`).
    pub fn open_shared(
        data_dir: &Path,
        store: PgStore,
        replica: String,
        queue_records: usize,
    ) -> Result<Audit, AuditError> {
        let destination =
            trail::Destination::Shared(AuditConnection::new(store.clone(), replica.clone()));
        let trail = Trail::Shared { store, replica };
        Audit::start(data_dir, destination, trail, queue_records)
    }

    fn start(
        data_dir: &Path,
        destination: trail::Destination,
        trail: Trail,
        queue_records: usize,
    ) -> Result<Audit, AuditError> {
        // The signing key lives in `data_dir` wherever the records go.
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
            path: data_dir.into(),
            source,
        })?;
        let key = chain::load_or_create_key(data_dir)?;
        let (tx, rx) = mpsc::channel(queue_records.max(1));
        let shared = Arc::new(writer::Shared::default());
        let writer = writer::spawn(destination, key, rx, shared.clone())
            .map_err(AuditError::Thread)?
            .thread()
            .clone();
        Ok(Audit {
            tx,
            shared,
            trail,
            writer,
        })
    }

    /// Where the trail is read from.
    pub fn trail(&self) -> &Trail {
        &self.trail
    }

    /// False while the trail cannot be written.
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
    }

    /// Why the trail is unhealthy, if it is.
    pub fn failure(&self) -> Option<WriteFailure> {
        if self.healthy() {
            return None;
        }
        self.shared
            .last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .or(Some(WriteFailure::Stopped))
    }

    /// Why a statement must be refused now, if it must. While the trail cannot be written
    /// nothing runs, except that while the shared store is unreachable a statement that only
    /// reads goes on, its record held in order in the queue until the store is back (a store
    /// failover should not stop every reader); one that may write needs its record durable
    /// first, and is refused.
    pub fn refuses(&self, may_write: bool) -> Option<WriteFailure> {
        match self.failure()? {
            WriteFailure::StoreUnreachable(_) if !may_write => None,
            f => Some(f),
        }
    }

    /// Queues a record. Waits only when the queue is full, so a slow disk slows sessions rather
    /// than losing records. Cancel-safe: a record that has to wait for room is handed to a task
    /// of its own, so a caller dropped meanwhile (a relay whose client left, an HTTP request
    /// whose client hung up) does not take it along.
    pub async fn record(&self, pending: Pending) {
        if let Some(waiting) = self.enqueue(pending) {
            // Dropping a `JoinHandle` does not stop its task.
            let _ = waiting.await;
        }
    }

    /// Waits for room in the queue and holds it: what is put in the slot is queued at once.
    /// Cancel-safe and without a task of its own: a caller that holds its records elsewhere
    /// takes one out only once it has a slot. `None` once the writer has stopped.
    pub async fn slot(&self) -> Option<Slot<'_>> {
        match self.tx.reserve().await {
            Ok(permit) => Some(Slot {
                permit,
                shared: &self.shared,
            }),
            Err(_) => {
                tracing::error!("the audit writer has stopped; records not written");
                None
            }
        }
    }

    /// Queues a record from synchronous code; if the queue is full the send finishes in the
    /// background (on the current runtime).
    pub fn record_now(&self, pending: Pending) {
        drop(self.enqueue(pending));
    }

    /// Queues at once when there is room; otherwise a task waits for room and queues it (in
    /// turn: the queue's permits go to waiting senders first, so later records cannot overtake
    /// it). That task is returned.
    fn enqueue(&self, pending: Pending) -> Option<tokio::task::JoinHandle<()>> {
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        let message = writer::Message {
            pending: Some(pending),
            ack: None,
        };
        match self.tx.try_send(message) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(message)) => {
                let (tx, shared) = (self.tx.clone(), self.shared.clone());
                Some(tokio::spawn(async move {
                    if let Err(e) = tx.send(message).await {
                        writer_stopped(&shared, e.0);
                    }
                }))
            }
            Err(mpsc::error::TrySendError::Closed(message)) => {
                writer_stopped(&self.shared, message);
                None
            }
        }
    }

    /// Queues a record and waits until it is committed; returns its sequence number.
    pub async fn record_durable(&self, pending: Pending) -> Result<i64, WriteFailure> {
        let (ack, done) = oneshot::channel();
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        if self
            .tx
            .send(writer::Message {
                pending: Some(pending),
                ack: Some(ack),
            })
            .await
            .is_err()
        {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(WriteFailure::Stopped);
        }
        self.writer.unpark();
        done.await.unwrap_or(Err(WriteFailure::Stopped))
    }

    /// Waits until every record queued before this call is durable, cutting short the writer's
    /// wait for a fuller batch: a search right after a statement finds its record.
    pub async fn flush(&self) -> Result<(), WriteFailure> {
        let (ack, done) = oneshot::channel();
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        if self
            .tx
            .send(writer::Message {
                pending: None,
                ack: Some(ack),
            })
            .await
            .is_err()
        {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(WriteFailure::Stopped);
        }
        self.writer.unpark();
        done.await.unwrap_or(Err(WriteFailure::Stopped)).map(|_| ())
    }

    /// Records queued but not yet written.
    pub fn queue_depth(&self) -> u64 {
        self.shared.queued.load(Ordering::Relaxed)
    }

    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    pub fn last_commit_micros(&self) -> u64 {
        self.shared.last_commit_us.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sequence number of the last record on disk once everything queued is.
    async fn last_seq_after_flush(audit: &Audit, dir: &Path) -> Option<i64> {
        audit.flush().await.unwrap();
        let head = AuditDb::open_read_only(&db_path(dir))
            .unwrap()
            .head()
            .unwrap();
        head.map(|(seq, _)| seq)
    }

    #[tokio::test]
    async fn flush_returns_once_everything_queued_before_it_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::open(dir.path(), DEFAULT_QUEUE_RECORDS).unwrap();
        for i in 0..50 {
            let r = AuditRecord::new("test.event").details(serde_json::json!({ "i": i }));
            audit.record(Pending::Record(Box::new(r))).await;
        }
        assert_eq!(last_seq_after_flush(&audit, dir.path()).await, Some(50));
        assert_eq!(audit.written(), 50, "a flush is not a record");
        assert_eq!(audit.queue_depth(), 0);
        // A record waited on after a flush still gets its own sequence number.
        let r = AuditRecord::new("test.event");
        let seq = audit.record_durable(Pending::Record(Box::new(r))).await;
        assert_eq!(seq.ok(), Some(51));
    }

    /// Whoever records while the queue is full may be dropped while it waits (a relay whose
    /// client left, an HTTP request whose client hung up): the record is written anyway.
    #[tokio::test]
    async fn a_record_outlives_a_caller_dropped_while_the_queue_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::open(dir.path(), 1).unwrap();
        // Another writer holds the database: the audit writer stalls with what it took.
        let blocker = AuditDb::hold_write_lock(&db_path(dir.path()));
        let mut calls = 0;
        loop {
            calls += 1;
            assert!(calls < 50, "the queue of one never filled");
            let r = Pending::Record(Box::new(AuditRecord::new("test.event")));
            let waited = std::time::Duration::from_millis(300);
            if tokio::time::timeout(waited, audit.record(r)).await.is_err() {
                break;
            }
        }
        assert!(calls >= 2, "the first record finds room");
        drop(blocker);
        assert_eq!(last_seq_after_flush(&audit, dir.path()).await, Some(calls));
        assert_eq!(audit.queue_depth(), 0);
    }

    #[tokio::test]
    async fn a_slot_queues_exactly_what_is_put_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::open(dir.path(), DEFAULT_QUEUE_RECORDS).unwrap();
        // Given up unused (its holder was dropped): nothing is written, no room is lost.
        drop(audit.slot().await.expect("room"));
        audit
            .slot()
            .await
            .expect("room")
            .put(Pending::Record(Box::new(AuditRecord::new("test.slot"))));
        assert_eq!(last_seq_after_flush(&audit, dir.path()).await, Some(1));
        assert_eq!(audit.written(), 1);
        assert_eq!(audit.queue_depth(), 0);
    }
}
