//! The audit writer: one thread that drains the bounded queue in batches, extends the hash
//! chain and commits each batch in a single SQLite transaction (group commit), then tells
//! waiting sessions their records are durable.
//!
//! When a commit fails (disk full, I/O error) the batch is kept and retried with backoff, the
//! trail is marked unhealthy so sessions refuse new statements, and waiters are told at once;
//! nothing queued is dropped. Health returns with the first successful commit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ed25519_dalek::SigningKey;
use tokio::sync::{mpsc, oneshot};

use super::chain;
use super::record::{rfc3339_micros, ConnectionMeta, Pending, TimestampFormat};
use super::trail::Destination;
use crate::store::{Checkpoint, NewRecord};

const MAX_BATCH: usize = 4096;
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How long a batch may wait for company when nobody waits for it to be durable. A commit costs
/// several page writes whatever its size (the table's last leaf and its parents, the spans, the
/// connections: 16 KiB each), so under load a few hundred records per commit instead of a
/// handful is most of the writer's cost gone. At 10,000 statements a second, 5 ms made commits
/// of about 50 records that wrote twice as much for those fixed pages as for the records
/// themselves; 20 ms makes it a fifth. A statement that changes data, a search and a flush
/// never wait for it: they end the linger at once.
const LINGER: Duration = Duration::from_millis(20);
/// Records already queued when the writer wakes that show other records are likely close
/// behind. A lone record is committed at once unless the last commit was under [`LINGER`] ago
/// (one busy client: a commit per statement would cost more than the statement).
const LINGER_FROM: usize = 2;

/// Why a record could not be made durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteFailure {
    #[error("the audit trail's disk is full")]
    DiskFull,
    #[error("the audit trail cannot be written: {0}")]
    Io(String),
    #[error("the shared store that holds the audit trail is unreachable ({0})")]
    StoreUnreachable(String),
    #[error("the audit writer has stopped")]
    Stopped,
}

pub struct Message {
    /// Taken when the batch is encoded.
    pub pending: Option<Pending>,
    pub ack: Option<oneshot::Sender<Result<i64, WriteFailure>>>,
}

/// State shared between the writer and everyone else.
#[derive(Default)]
pub struct Shared {
    pub healthy: AtomicBool,
    pub written: AtomicU64,
    pub queued: AtomicU64,
    pub last_failure: Mutex<Option<WriteFailure>>,
    /// Microseconds the last batch commit took.
    pub last_commit_us: AtomicU64,
}

pub fn spawn(
    mut db: Destination,
    key: SigningKey,
    mut rx: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("gatehouse-audit".into()).spawn(move || {
        // Until the chain's head is known nothing can be written: statements are refused
        // (unhealthy) and the writer keeps trying, so a store that is down at startup, or
        // comes back, is picked up by itself.
        let public_key = key.verifying_key().to_bytes();
        let mut backoff = Duration::from_millis(50);
        let (mut seq, mut prev) = loop {
            match db.open(&public_key) {
                Ok(Some(h)) => break h,
                Ok(None) => break (0, String::new()),
                Err(e) => {
                    let failure = classify(&e);
                    let mut last = shared.last_failure.lock().unwrap_or_else(|p| p.into_inner());
                    if last.as_ref().map(ToString::to_string) != Some(failure.to_string()) {
                        tracing::error!(error = %e, "cannot read the audit trail's head; statements are refused until it can be");
                    }
                    *last = Some(failure);
                    drop(last);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        };
        let replica = db.replica().map(str::to_string);
        shared.healthy.store(true, Ordering::SeqCst);
        let mut last_checkpoint = Instant::now() - CHECKPOINT_EVERY;
        let mut last_commit = Instant::now() - LINGER;
        let mut batch: Vec<Message> = Vec::with_capacity(MAX_BATCH);
        let mut encoded = Encoded::default();
        // Per message of the batch, the sequence number its waiter is told.
        let mut acked: Vec<i64> = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.blocking_recv() {
            let mut waited_on = first.ack.is_some();
            batch.push(first);
            waited_on |= drain(&mut rx, &mut batch);
            if !waited_on && (batch.len() >= LINGER_FROM || last_commit.elapsed() < LINGER) {
                // `Audit::record_durable` unparks this thread, so a statement waiting for its
                // record ends the linger at once.
                let deadline = Instant::now() + LINGER;
                while !waited_on && batch.len() < MAX_BATCH {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    std::thread::park_timeout(deadline - now);
                    waited_on |= drain(&mut rx, &mut batch);
                }
            }
            // Encode once; a retry re-uses the same rows, so the chain stays consistent.
            let (s, p) = encoded.encode(&mut batch, seq, &prev, replica.as_deref(), &mut acked);
            let rows = encoded.rows();
            let prepared = db.prepare(&rows);
            let mut backoff = Duration::from_millis(50);
            loop {
                let checkpoint = (last_checkpoint.elapsed() >= CHECKPOINT_EVERY).then(|| {
                    let ts = rfc3339_micros(SystemTime::now());
                    let signature = chain::sign(&key, &chain::checkpoint_message(s, &p, &ts));
                    Checkpoint { seq: s, hash: p.clone(), ts, signature }
                });
                let started = Instant::now();
                match db.append(seq, &rows, &prepared, checkpoint.as_ref()) {
                    Ok(()) => {
                        shared.last_commit_us.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                        last_commit = Instant::now();
                        if checkpoint.is_some() {
                            last_checkpoint = Instant::now();
                        }
                        if !shared.healthy.swap(true, Ordering::SeqCst) {
                            tracing::warn!("the audit trail is writable again; statements resume");
                        }
                        break;
                    }
                    Err(e) => {
                        let failure = classify(&e);
                        if shared.healthy.swap(false, Ordering::SeqCst) {
                            tracing::error!(error = %e, "cannot write the audit trail; refusing statements until it recovers");
                        }
                        *shared.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(failure.clone());
                        for m in batch.iter_mut() {
                            if let Some(ack) = m.ack.take() {
                                let _ = ack.send(Err(failure.clone()));
                            }
                        }
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
            drop(rows);
            seq = s;
            prev = p;
            shared.written.fetch_add(encoded.len() as u64, Ordering::Relaxed);
            shared.queued.fetch_sub(batch.len() as u64, Ordering::Relaxed);
            for (m, seq) in batch.drain(..).zip(acked.iter()) {
                if let Some(ack) = m.ack {
                    let _ = ack.send(Ok(*seq));
                }
            }
        }
    })
}

/// A batch as it is committed: each record's timestamp, canonical JSON and hash in one buffer,
/// with the columns the table keeps beside them. Statement records (nearly all of them) are
/// written straight from their events and take their columns from the connection's shared
/// fields, so a record costs no allocation of its own.
#[derive(Default)]
struct Encoded {
    /// Text, not bytes: every piece is written as `str`, so handing rows to the database
    /// needs no UTF-8 check of what was just encoded.
    text: String,
    rows: Vec<Row>,
    time: TimestampFormat,
    ts: String,
    /// Each connection's encoded fields, made once per batch: a batch holds a few connections'
    /// records, many each. Keyed by the address of its `ConnectionMeta`, which the batch's
    /// records keep alive until the next encode clears this.
    connections: HashMap<usize, std::ops::Range<usize>>,
    connection_text: String,
}

struct Row {
    seq: i64,
    ts: std::ops::Range<usize>,
    json: std::ops::Range<usize>,
    hash: std::ops::Range<usize>,
    columns: Columns,
}

/// The indexed columns of a record, where they live.
enum Columns {
    Connection {
        meta: Arc<ConnectionMeta>,
        event: &'static str,
    },
    Own {
        event: String,
        identity: Option<String>,
        environment: Option<String>,
        connection_id: Option<String>,
    },
}

impl Encoded {
    /// Encodes the records of `batch` after record `seq` (hash `prev`), chaining each to the one
    /// before; `acked` gets, per message, the sequence number its waiter is told (a flush: the
    /// last one before it). Returns the last sequence number and hash.
    fn encode(
        &mut self,
        batch: &mut [Message],
        mut seq: i64,
        prev: &str,
        replica: Option<&str>,
        acked: &mut Vec<i64>,
    ) -> (i64, String) {
        self.text.clear();
        self.rows.clear();
        self.connections.clear();
        self.connection_text.clear();
        acked.clear();
        let mut prev = prev.to_string();
        for m in batch.iter_mut() {
            // A message without a record is a flush: acknowledged with the last sequence
            // number before it, once everything queued ahead of it is durable.
            let Some(pending) = m.pending.take() else {
                acked.push(seq);
                continue;
            };
            seq += 1;
            let start = self.text.len();
            let (ts, json, columns) = match pending {
                Pending::Statement(ev) => {
                    self.ts.clear();
                    self.time.write(ev.at, &mut self.ts);
                    self.text.push_str(&self.ts);
                    let ts = start..self.text.len();
                    let stamp = self.ts.as_str();
                    let fields = self
                        .connections
                        .entry(Arc::as_ptr(&ev.meta) as usize)
                        .or_insert_with(|| {
                            let at = self.connection_text.len();
                            ev.meta.write_canonical_fields(&mut self.connection_text);
                            at..self.connection_text.len()
                        })
                        .clone();
                    let connection = &self.connection_text[fields];
                    ev.write_canonical_with(seq, stamp, connection, &prev, replica, &mut self.text);
                    let json = ts.end..self.text.len();
                    let columns = Columns::Connection {
                        meta: ev.meta.clone(),
                        event: ev.event,
                    };
                    (ts, json, columns)
                }
                other => {
                    let mut r = other.into_record();
                    r.seq = seq;
                    r.prev_hash = std::mem::take(&mut prev);
                    r.replica = replica.map(str::to_string);
                    self.text.push_str(&r.ts);
                    let ts = start..self.text.len();
                    self.text.push_str(&r.canonical());
                    let json = ts.end..self.text.len();
                    let columns = Columns::Own {
                        event: r.event,
                        identity: r.identity,
                        environment: r.environment,
                        connection_id: r.connection_id,
                    };
                    (ts, json, columns)
                }
            };
            let mut hex = [0u8; 64];
            let hex = chain::hash_hex_into(self.text[json.clone()].as_bytes(), &mut hex);
            let hash = self.text.len()..self.text.len() + hex.len();
            self.text.push_str(hex);
            prev.clear();
            prev.push_str(hex);
            acked.push(seq);
            self.rows.push(Row {
                seq,
                ts,
                json,
                hash,
                columns,
            });
        }
        (seq, prev)
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    /// The rows as the database takes them.
    fn rows(&self) -> Vec<NewRecord<'_>> {
        let text = |r: &std::ops::Range<usize>| &self.text[r.clone()];
        self.rows
            .iter()
            .map(|r| {
                let (event, identity, environment, connection_id) = match &r.columns {
                    Columns::Connection { meta, event } => (
                        *event,
                        Some(meta.identity.as_str()),
                        Some(meta.environment.as_str()),
                        Some(meta.connection_id.as_str()),
                    ),
                    Columns::Own {
                        event,
                        identity,
                        environment,
                        connection_id,
                    } => (
                        event.as_str(),
                        identity.as_deref(),
                        environment.as_deref(),
                        connection_id.as_deref(),
                    ),
                };
                NewRecord {
                    seq: r.seq,
                    ts: text(&r.ts),
                    event,
                    identity,
                    environment,
                    connection_id,
                    json: text(&r.json),
                    hash: text(&r.hash),
                }
            })
            .collect()
    }
}

/// Moves what is queued into `batch` (up to [`MAX_BATCH`]); true if any of it has a waiter.
fn drain(rx: &mut mpsc::Receiver<Message>, batch: &mut Vec<Message>) -> bool {
    let mut waited_on = false;
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(m) => {
                waited_on |= m.ack.is_some();
                batch.push(m);
            }
            Err(_) => break,
        }
    }
    waited_on
}

fn classify(e: &crate::store::StoreError) -> WriteFailure {
    let text = e.to_string();
    if e.is_unavailable() {
        WriteFailure::StoreUnreachable(text)
    } else if text.contains("full") {
        WriteFailure::DiskFull
    } else {
        WriteFailure::Io(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::StatementEvent;

    fn meta(identity: &str, connection_id: &str) -> Arc<ConnectionMeta> {
        Arc::new(ConnectionMeta {
            connection_id: connection_id.into(),
            identity: identity.into(),
            identity_kind: "user",
            on_behalf_of: None,
            client_addr: "127.0.0.1:5000".into(),
            application_name: Some("psql".into()),
            environment: "prod".into(),
            database: "app".into(),
            via: "direct",
        })
    }

    fn event(meta: &Arc<ConnectionMeta>, sql: &str) -> StatementEvent {
        StatementEvent {
            meta: meta.clone(),
            stmt: crate::sql::Statement::new(sql),
            event: "statement",
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            duration: Some(Duration::from_micros(80)),
            rows: Some(1),
            sqlstate: None,
            error: None,
            decision: "allow",
            rule: None,
            approval_id: None,
            sample: None,
            detected: Default::default(),
        }
    }

    #[test]
    fn interleaved_connections_each_keep_their_own_fields() {
        let (a, b) = (meta("alice", "c-a"), meta("bob", "c-b"));
        let order = [&a, &b, &b, &a, &b];
        let mut batch: Vec<Message> = order
            .iter()
            .enumerate()
            .map(|(i, m)| Message {
                pending: Some(Pending::Statement(Box::new(event(
                    m,
                    &format!("SELECT {i}"),
                )))),
                ack: None,
            })
            .collect();
        let mut encoded = Encoded::default();
        let mut acked = Vec::new();
        let (last, _) = encoded.encode(&mut batch, 0, "", None, &mut acked);
        assert_eq!(last, 5);
        let rows = encoded.rows();
        let mut prev = String::new();
        for (i, (row, m)) in rows.iter().zip(order).enumerate() {
            // Byte for byte what the record's own encoding gives, chained to the one before.
            let mut want = String::new();
            event(m, &format!("SELECT {i}")).write_canonical(
                i as i64 + 1,
                row.ts,
                &prev,
                None,
                &mut want,
            );
            assert_eq!(row.json, want, "record {}", i + 1);
            assert_eq!(row.identity, Some(m.identity.as_str()));
            assert_eq!(row.connection_id, Some(m.connection_id.as_str()));
            prev = row.hash.to_string();
        }
    }
}
