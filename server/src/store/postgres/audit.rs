//! The audit trail in the shared store: one hash chain per replica (`audit`, keyed by replica
//! and sequence number), each replica's signed checkpoints, and the public key each replica
//! signs with (`audit_chains`), so any replica or `audit verify` can check every chain.
//!
//! A record's JSON is kept as the exact text its hash covers (`TEXT`, never `jsonb`, which
//! would reorder it); searches read fields out of it with `::jsonb`. Every row also has a
//! store-wide `id` in commit order: searches page by `(ts, id)`, and sinks follow `id`.
//!
//! The writer has a connection of its own ([`AuditConnection`]), outside the pool, so API
//! traffic never makes a commit wait for a connection, and a commit's outcome is known
//! precisely even when its connection drops (see [`AuditConnection::append`]).

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::PgStore;
use crate::store::audit_db::like_escape;
use crate::store::{AuditFilter, Checkpoint, NewRecord, StoreError, StoredRecord};

const COLUMNS: &str =
    "id, replica, seq, ts, event, identity, environment, connection_id, record_json, hash";

fn row(r: &Row) -> StoredRecord {
    StoredRecord {
        id: r.get(0),
        replica: Some(r.get(1)),
        seq: r.get(2),
        ts: r.get(3),
        event: r.get(4),
        identity: r.get(5),
        environment: r.get(6),
        connection_id: r.get(7),
        json: r.get(8),
        hash: r.get(9),
    }
}

/// A replica's chain as the store lists it.
#[derive(Debug, Clone)]
pub struct Chain {
    pub replica: String,
    /// The Ed25519 public key its checkpoints are signed with; `None` when records name a
    /// replica that has no key registered (which only an edit of the store makes).
    pub public_key: Option<Vec<u8>>,
}

/// Records a batch as the writer hands them over, owned, so they can cross to the store's
/// runtime.
#[derive(Debug, Default)]
pub struct Batch {
    pub seq: Vec<i64>,
    pub ts: Vec<String>,
    pub event: Vec<String>,
    pub identity: Vec<Option<String>>,
    pub environment: Vec<Option<String>>,
    pub connection_id: Vec<Option<String>>,
    pub json: Vec<String>,
    pub hash: Vec<String>,
}

impl Batch {
    pub fn from_records(records: &[NewRecord<'_>]) -> Batch {
        let mut b = Batch::default();
        for r in records {
            b.seq.push(r.seq);
            b.ts.push(r.ts.to_string());
            b.event.push(r.event.to_string());
            b.identity.push(r.identity.map(str::to_string));
            b.environment.push(r.environment.map(str::to_string));
            b.connection_id.push(r.connection_id.map(str::to_string));
            b.json.push(r.json.to_string());
            b.hash.push(r.hash.to_string());
        }
        b
    }

    fn last(&self) -> Option<(i64, &str)> {
        Some((*self.seq.last()?, self.hash.last()?.as_str()))
    }
}

/// How long the writer waits for the store to answer one call.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The writer's own connection to the shared store, made again after it drops.
pub struct AuditConnection {
    store: PgStore,
    replica: String,
    client: Option<tokio_postgres::Client>,
}

impl AuditConnection {
    pub fn new(store: PgStore, replica: String) -> AuditConnection {
        AuditConnection {
            store,
            replica,
            client: None,
        }
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Runs `f` on the writer's connection on the store's runtime, connecting first if needed;
    /// a connection that broke is dropped so the next call makes a new one.
    fn run<T, F, Fut>(&mut self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(tokio_postgres::Client, String) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = (tokio_postgres::Client, Result<T, StoreError>)>
            + Send
            + 'static,
    {
        let client = self.client.take();
        let store = self.store.clone();
        let replica = self.replica.clone();
        let (client, result) = self.store.run_blocking(async move {
            let client = match client {
                Some(c) if !c.is_closed() => c,
                _ => match store.dedicated_connection("gatehouse-audit").await {
                    Ok(c) => c,
                    Err(e) => return (None, Err(e)),
                },
            };
            // A store that stops answering without closing the connection would otherwise hold
            // the writer (and every statement waiting for a durable record) for as long as TCP
            // takes to notice. Dropping the connection aborts an open transaction; a commit
            // that did happen is recognised by the retry.
            match tokio::time::timeout(ANSWER_TIMEOUT, f(client, replica)).await {
                Ok((client, r)) => (Some(client), r),
                Err(_) => (
                    None,
                    Err(StoreError::Unavailable(format!(
                        "no answer within {} s",
                        ANSWER_TIMEOUT.as_secs()
                    ))),
                ),
            }
        })?;
        self.client = client.filter(|c| !c.is_closed());
        result
    }

    /// Registers this replica's chain with its public key, or checks that the chain already
    /// registered under this id is signed with the same key: two replicas configured with one
    /// id, or a replica that lost its key, must not write into one chain.
    pub fn register(&mut self, public_key: Vec<u8>) -> Result<(), StoreError> {
        self.run(move |c, replica| async move {
            let r = async {
                c.execute(
                    "INSERT INTO audit_chains (replica, public_key, created_at)
                     VALUES ($1, $2, extract(epoch FROM now())::bigint)
                     ON CONFLICT (replica) DO NOTHING",
                    &[&replica, &public_key],
                )
                .await?;
                let stored: Vec<u8> = c
                    .query_one(
                        "SELECT public_key FROM audit_chains WHERE replica = $1",
                        &[&replica],
                    )
                    .await?
                    .get(0);
                if stored != public_key {
                    return Err(StoreError::Conflict(format!(
                        "the shared store's audit chain `{replica}` is signed with another key: \
                         another replica uses the id `{replica}`, or this one lost its \
                         audit-signing.key; give this replica its own server.replica_id"
                    )));
                }
                Ok(())
            }
            .await;
            (c, r)
        })
    }

    /// The last record of this replica's chain: its sequence number and hash.
    pub fn head(&mut self) -> Result<Option<(i64, String)>, StoreError> {
        self.run(|c, replica| async move {
            let r = head(&c, &replica).await;
            (c, r)
        })
    }

    /// Appends a batch (and maybe a checkpoint) in one transaction, after the chain's head
    /// `after` (sequence number, or 0 for none).
    ///
    /// A commit whose connection drops before the answer may or may not have happened: the
    /// retry then finds the batch's last record already at the head and succeeds without
    /// writing it twice; a head that is neither is another writer's (refused, never forked).
    pub fn append(
        &mut self,
        after: i64,
        batch: std::sync::Arc<Batch>,
        checkpoint: Option<Checkpoint>,
    ) -> Result<(), StoreError> {
        self.run(move |mut c, replica| async move {
            let r = append(&mut c, &replica, after, &batch, checkpoint.as_ref()).await;
            (c, r)
        })
    }
}

async fn head(
    c: &impl tokio_postgres::GenericClient,
    replica: &str,
) -> Result<Option<(i64, String)>, StoreError> {
    Ok(c.query_opt(
        "SELECT seq, hash FROM audit WHERE replica = $1 ORDER BY seq DESC LIMIT 1",
        &[&replica],
    )
    .await?
    .map(|r| (r.get(0), r.get(1))))
}

/// A batch's rows in one statement: one array per column.
async fn insert(
    tx: &tokio_postgres::Transaction<'_>,
    replica: &str,
    batch: &Batch,
) -> Result<(), StoreError> {
    if batch.seq.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO audit (replica, seq, ts, event, identity, environment, connection_id, record_json, hash)
         SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                                  $7::text[], $8::text[], $9::text[])",
        &[
            &replica,
            &batch.seq,
            &batch.ts,
            &batch.event,
            &batch.identity,
            &batch.environment,
            &batch.connection_id,
            &batch.json,
            &batch.hash,
        ],
    )
    .await?;
    Ok(())
}

async fn append(
    c: &mut tokio_postgres::Client,
    replica: &str,
    after: i64,
    batch: &Batch,
    checkpoint: Option<&Checkpoint>,
) -> Result<(), StoreError> {
    let tx = c.transaction().await?;
    let current = head(&tx, replica).await?;
    let at = current.as_ref().map_or(0, |(seq, _)| *seq);
    if at != after {
        if let (Some((seq, hash)), Some((last, last_hash))) = (&current, batch.last()) {
            if *seq == last && hash == last_hash {
                // Committed by the attempt whose answer was lost.
                return Ok(());
            }
        }
        return Err(StoreError::Conflict(format!(
            "the audit chain `{replica}` in the shared store is at record {at}, not {after}: \
             another process writes as this replica"
        )));
    }
    insert(&tx, replica, batch).await?;
    if let Some(cp) = checkpoint {
        tx.execute(
            "INSERT INTO audit_checkpoints (replica, seq, hash, ts, signature)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (replica, seq) DO UPDATE SET hash = excluded.hash, ts = excluded.ts,
                                                      signature = excluded.signature",
            &[&replica, &cp.seq, &cp.hash, &cp.ts, &cp.signature],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

impl PgStore {
    /// Every replica's chain, by id: those registered and any other that records name.
    pub async fn audit_chains(&self) -> Result<Vec<Chain>, StoreError> {
        self.exec(|c| async move {
            Ok(c.query(
                "SELECT r.replica, k.public_key
                 FROM (SELECT replica FROM audit_chains UNION SELECT DISTINCT replica FROM audit) r
                 LEFT JOIN audit_chains k USING (replica) ORDER BY r.replica",
                &[],
            )
            .await?
            .iter()
            .map(|r| Chain {
                replica: r.get(0),
                public_key: r.get(1),
            })
            .collect())
        })
        .await
    }

    /// One chain's records with sequence numbers above `after`, in order, at most `limit`.
    pub async fn audit_chain_page(
        &self,
        replica: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let replica = replica.to_string();
        self.exec(move |c| async move {
            Ok(c.query(
                &format!(
                    "SELECT {COLUMNS} FROM audit WHERE replica = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                ),
                &[&replica, &after, &limit],
            )
            .await?
            .iter()
            .map(row)
            .collect())
        })
        .await
    }

    /// One chain's signed checkpoints, in order.
    pub async fn audit_checkpoints(&self, replica: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let replica = replica.to_string();
        self.exec(move |c| async move {
            Ok(c.query(
                "SELECT seq, hash, ts, signature FROM audit_checkpoints WHERE replica = $1 ORDER BY seq",
                &[&replica],
            )
            .await?
            .iter()
            .map(|r| Checkpoint {
                seq: r.get(0),
                hash: r.get(1),
                ts: r.get(2),
                signature: r.get(3),
            })
            .collect())
        })
        .await
    }

    /// Records of every chain matching `filter`, newest first (oldest first when
    /// `ascending`) by time, at most `limit`; `before_id`/`after_id` page from a record's id,
    /// and `commit_order` orders by id alone (what a follower of the trail needs: a record
    /// committed later may carry an earlier time).
    pub async fn audit_search(
        &self,
        filter: AuditFilter,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let limit = limit.min(10_000) as i64;
        self.exec(move |c| async move {
            let mut sql = format!("SELECT {COLUMNS} FROM audit WHERE true");
            let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
            let mut add = |cond: &str, v: Box<dyn ToSql + Sync + Send>| {
                args.push(v);
                sql.push_str(&cond.replace('?', &format!("${}", args.len())));
            };
            if let Some(v) = &filter.replica {
                add(" AND replica = ?", Box::new(v.clone()));
            }
            if let Some(v) = &filter.identity {
                add(" AND identity = ?", Box::new(v.clone()));
            }
            if let Some(v) = &filter.environment {
                add(" AND environment = ?", Box::new(v.clone()));
            }
            if let Some(v) = &filter.event {
                if v.ends_with('.') {
                    add(
                        " AND event LIKE ?",
                        Box::new(format!("{}%", like_escape(v))),
                    );
                } else {
                    add(" AND event = ?", Box::new(v.clone()));
                }
            }
            if let Some(v) = &filter.connection_id {
                add(" AND connection_id = ?", Box::new(v.clone()));
            }
            if let Some(v) = &filter.from {
                add(" AND ts >= ?", Box::new(v.clone()));
            }
            if let Some(v) = &filter.to {
                add(" AND ts < ?", Box::new(v.clone()));
            }
            if let Some(v) = &filter.decision {
                add(
                    " AND record_json::jsonb->>'decision' = ?",
                    Box::new(v.clone()),
                );
            }
            if let Some(v) = &filter.statement_kind {
                add(
                    " AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(record_json::jsonb->'statement_kinds') k WHERE upper(k) = upper(?))",
                    Box::new(v.clone()),
                );
            }
            if let Some(v) = &filter.table {
                add(
                    " AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(record_json::jsonb->'tables') t WHERE t = ?)",
                    Box::new(v.clone()),
                );
            }
            if let Some(v) = &filter.text {
                add(
                    " AND record_json LIKE ?",
                    Box::new(format!("%{}%", like_escape(v))),
                );
            }
            let order = if filter.ascending { "ASC" } else { "DESC" };
            if filter.commit_order {
                if let Some(v) = filter.after_id {
                    add(" AND id > ?", Box::new(v));
                }
                if let Some(v) = filter.before_id {
                    add(" AND id < ?", Box::new(v));
                }
                add(&format!(" ORDER BY id {order} LIMIT ?"), Box::new(limit));
            } else {
                // A record's place in time order is (ts, id): page from the one named.
                if let Some(v) = filter.after_id {
                    add(
                        " AND (ts, id) > (SELECT ts, id FROM audit WHERE id = ?)",
                        Box::new(v),
                    );
                }
                if let Some(v) = filter.before_id {
                    add(
                        " AND (ts, id) < (SELECT ts, id FROM audit WHERE id = ?)",
                        Box::new(v),
                    );
                }
                add(
                    &format!(" ORDER BY ts {order}, id {order} LIMIT ?"),
                    Box::new(limit),
                );
            }
            let params: Vec<&(dyn ToSql + Sync)> =
                args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
            Ok(c.query(&sql, &params).await?.iter().map(row).collect())
        })
        .await
    }

    /// Copies a lone gateway's chain (records and checkpoints, as they are) into the store as
    /// `replica`'s, registering its public key; refuses a replica id whose chain has records.
    pub async fn import_audit_chain(
        &self,
        replica: &str,
        public_key: Vec<u8>,
        records: Vec<StoredRecord>,
        checkpoints: Vec<Checkpoint>,
    ) -> Result<usize, StoreError> {
        let replica = replica.to_string();
        self.exec(move |mut c| async move {
            let tx = c.transaction().await?;
            let existing: i64 = tx
                .query_one("SELECT count(*) FROM audit WHERE replica = $1", &[&replica])
                .await?
                .get(0);
            if existing > 0 {
                return Err(StoreError::Conflict(format!(
                    "the shared store already holds an audit chain `{replica}`"
                )));
            }
            tx.execute(
                "INSERT INTO audit_chains (replica, public_key, created_at)
                 VALUES ($1, $2, extract(epoch FROM now())::bigint)
                 ON CONFLICT (replica) DO UPDATE SET public_key = excluded.public_key",
                &[&replica, &public_key],
            )
            .await?;
            let n = records.len();
            for chunk in records.chunks(1000) {
                let rows: Vec<NewRecord<'_>> = chunk.iter().map(StoredRecord::as_new).collect();
                insert(&tx, &replica, &Batch::from_records(&rows)).await?;
            }
            for cp in &checkpoints {
                tx.execute(
                    "INSERT INTO audit_checkpoints (replica, seq, hash, ts, signature) VALUES ($1, $2, $3, $4, $5)",
                    &[&replica, &cp.seq, &cp.hash, &cp.ts, &cp.signature],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(n)
        })
        .await
    }
}
