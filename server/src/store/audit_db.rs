//! The audit trail's own SQLite database (`data_dir/audit.db`, WAL): append-only records with
//! their hash chain, signed checkpoints, and the queries search and verification need.
//!
//! It is a separate file from the main store so the audit writer thread owns its connection and
//! never waits on API traffic, and so it can be copied or archived on its own.

use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, OptionalExtension};

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE audit (
        seq           INTEGER PRIMARY KEY,
        ts            TEXT NOT NULL,
        event         TEXT NOT NULL,
        identity      TEXT,
        environment   TEXT,
        connection_id TEXT,
        record_json   TEXT NOT NULL,
        hash          TEXT NOT NULL
    );
    CREATE INDEX audit_identity ON audit(identity, seq);
    CREATE INDEX audit_environment ON audit(environment, seq);
    CREATE INDEX audit_connection ON audit(connection_id, seq);
    CREATE TABLE audit_checkpoints (
        seq        INTEGER PRIMARY KEY,
        hash       TEXT NOT NULL,
        ts         TEXT NOT NULL,
        signature  BLOB NOT NULL
    );",
    // 2: archived ranges: records moved out of the live trail into verified files.
    "CREATE TABLE audit_archive (
        first_seq   INTEGER PRIMARY KEY,
        last_seq    INTEGER NOT NULL,
        last_hash   TEXT NOT NULL,
        file        TEXT NOT NULL,
        file_sha256 TEXT NOT NULL,
        archived_at TEXT NOT NULL
    );",
    // 3: a connection's records are found through the range of sequence numbers it spans, kept
    // per connection, instead of an index entry per record: the index's leaf pages, one per open
    // connection, were rewritten by every batch (about a sixth of the writer's cost).
    "DROP INDEX audit_connection;
    CREATE TABLE audit_connections (
        connection_id TEXT PRIMARY KEY,
        first_seq     INTEGER NOT NULL,
        last_seq      INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO audit_connections (connection_id, first_seq, last_seq)
        SELECT connection_id, min(seq), max(seq) FROM audit
        WHERE connection_id IS NOT NULL GROUP BY connection_id;",
    // 4: the identity and environment indexes, an entry per record in two more B-trees (a
    // third of the writer's insert cost), become spans too: per identity and per environment,
    // ranges of sequence numbers that hold all of its records, extended batch by batch while
    // its records keep coming (see `SPAN_GAP`). An existing trail gets one span per value.
    "DROP INDEX audit_identity;
    DROP INDEX audit_environment;
    CREATE TABLE audit_spans (
        kind      TEXT NOT NULL,
        value     TEXT NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq  INTEGER NOT NULL,
        PRIMARY KEY (kind, value, first_seq)
    ) WITHOUT ROWID;
    INSERT INTO audit_spans (kind, value, first_seq, last_seq)
        SELECT 'identity', identity, min(seq), max(seq) FROM audit
        WHERE identity IS NOT NULL GROUP BY identity;
    INSERT INTO audit_spans (kind, value, first_seq, last_seq)
        SELECT 'environment', environment, min(seq), max(seq) FROM audit
        WHERE environment IS NOT NULL GROUP BY environment;",
];

/// How far apart two records of one identity (or environment) may be and still share a span:
/// a search by identity reads at most this many other records between two of its own, and
/// a value seen in every batch keeps one span for as long as it is busy.
const SPAN_GAP: i64 = 4096;

/// The kinds of span in `audit_spans`, by the column they follow. One table for both, so a
/// batch's span updates dirty one page, not one per kind.
const SPAN_KINDS: [&str; 2] = ["identity", "environment"];

/// A record as stored: the indexed columns and the canonical JSON the hash covers.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredRecord {
    /// Its place in searches and the cursor that pages them: `seq` in a gateway's own trail;
    /// in a shared store, the store-wide row id (each replica's chain has its own `seq`s).
    #[serde(skip)]
    pub id: i64,
    /// The replica whose chain holds it, in a shared store.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub replica: Option<String>,
    pub seq: i64,
    pub ts: String,
    pub event: String,
    pub identity: Option<String>,
    pub environment: Option<String>,
    pub connection_id: Option<String>,
    pub json: String,
    pub hash: String,
}

/// A record to append, borrowed from the writer's encoded batch.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    pub seq: i64,
    pub ts: &'a str,
    pub event: &'a str,
    pub identity: Option<&'a str>,
    pub environment: Option<&'a str>,
    pub connection_id: Option<&'a str>,
    pub json: &'a str,
    pub hash: &'a str,
}

impl StoredRecord {
    /// This record as one to append (tests, and trails built record by record).
    pub fn as_new(&self) -> NewRecord<'_> {
        NewRecord {
            seq: self.seq,
            ts: &self.ts,
            event: &self.event,
            identity: self.identity.as_deref(),
            environment: self.environment.as_deref(),
            connection_id: self.connection_id.as_deref(),
            json: &self.json,
            hash: &self.hash,
        }
    }
}

/// A signed statement that record `seq` had hash `hash` at time `ts`.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub ts: String,
    pub signature: Vec<u8>,
}

/// A range of records moved into an archive file.
#[derive(Debug, Clone)]
pub struct ArchivedRange {
    pub first_seq: i64,
    pub last_seq: i64,
    pub last_hash: String,
    /// File name inside `data_dir/archive/`.
    pub file: String,
    pub file_sha256: String,
    pub archived_at: String,
}

/// Search criteria; every field narrows the result.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub identity: Option<String>,
    pub environment: Option<String>,
    /// Exact event, or a prefix ending in `.` (e.g. `admin.`).
    pub event: Option<String>,
    pub connection_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub decision: Option<String>,
    pub statement_kind: Option<String>,
    pub table: Option<String>,
    /// Free text, matched anywhere in the record.
    pub text: Option<String>,
    /// One replica's chain (a shared store; a gateway's own trail is one chain already).
    pub replica: Option<String>,
    /// Only records before the one with this id (for paging newest-first).
    pub before_id: Option<i64>,
    /// Only records after the one with this id (for paging oldest-first, e.g. exports).
    pub after_id: Option<i64>,
    pub ascending: bool,
    /// Order by commit (id) rather than time: what follows the trail as it grows needs it,
    /// since a record committed later may carry an earlier time. A gateway's own trail is in
    /// both orders at once.
    pub commit_order: bool,
}

pub struct AuditDb {
    conn: rusqlite::Connection,
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRecord> {
    Ok(StoredRecord {
        id: r.get(0)?,
        replica: None,
        seq: r.get(0)?,
        ts: r.get(1)?,
        event: r.get(2)?,
        identity: r.get(3)?,
        environment: r.get(4)?,
        connection_id: r.get(5)?,
        json: r.get(6)?,
        hash: r.get(7)?,
    })
}

const COLUMNS: &str = "seq, ts, event, identity, environment, connection_id, record_json, hash";

impl AuditDb {
    /// Opens for writing (creating and migrating as needed).
    pub fn open(path: &Path) -> Result<AuditDb, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.into(),
                source,
            })?;
        }
        let mut conn = rusqlite::Connection::open(path).map_err(|source| StoreError::Open {
            path: path.into(),
            source,
        })?;
        // WAL with synchronous=NORMAL: a commit survives the gateway being killed (it is in the
        // OS's hands once written); group commit keeps the cost per record small. A 16 MiB page
        // cache keeps the index pages appends touch in memory instead of re-reading them, and
        // checkpointing every 2048 pages (32 MiB of WAL) rather than 1000 copies an index page appended to over
        // and over into the database file once instead of many times. 16 KiB pages (new trails
        // only; SQLite keeps an existing file's) write a batch in a quarter of the WAL frames,
        // each frame being two write calls.
        conn.execute_batch(
            "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;
             PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 2048;",
        )
        .map_err(|source| StoreError::Open {
            path: path.into(),
            source,
        })?;
        super::migrations::apply(&mut conn, MIGRATIONS)?;
        Ok(AuditDb { conn })
    }

    /// Opens an existing trail without writing to it (verification, search).
    pub fn open_read_only(path: &Path) -> Result<AuditDb, StoreError> {
        let conn =
            rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|source| StoreError::Open {
                    path: path.into(),
                    source,
                })?;
        conn.execute_batch("PRAGMA busy_timeout = 5000;")
            .map_err(|source| StoreError::Open {
                path: path.into(),
                source,
            })?;
        Ok(AuditDb { conn })
    }

    /// The last record's sequence number and hash.
    pub fn head(&self) -> Result<Option<(i64, String)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Appends records (and optionally a checkpoint) in one transaction: all or nothing.
    pub fn append(
        &mut self,
        records: &[NewRecord<'_>],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(INSERT)?;
            for r in records {
                insert_with(&mut insert, r)?;
            }
            drop(insert);
            // A batch holds a handful of connections: one upsert each.
            let spans = batch_spans(records, |r| r.connection_id);
            let mut upsert = tx.prepare_cached(
                "INSERT INTO audit_connections (connection_id, first_seq, last_seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT (connection_id) DO UPDATE SET last_seq = excluded.last_seq",
            )?;
            for (id, first, last) in spans {
                upsert.execute(params![id, first, last])?;
            }
            extend_spans(&tx, SPAN_KINDS[0], &batch_spans(records, |r| r.identity))?;
            extend_spans(&tx, SPAN_KINDS[1], &batch_spans(records, |r| r.environment))?;
            if let Some(c) = checkpoint {
                tx.execute(
                    "INSERT OR REPLACE INTO audit_checkpoints (seq, hash, ts, signature) VALUES (?1, ?2, ?3, ?4)",
                    params![c.seq, c.hash, c.ts, c.signature],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Calls `f` on every record in sequence order; stops early when `f` returns false.
    pub fn scan(&self, mut f: impl FnMut(StoredRecord) -> bool) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            if !f(read_row(row)?) {
                break;
            }
        }
        Ok(())
    }

    /// Archived ranges, oldest first.
    pub fn archives(&self) -> Result<Vec<ArchivedRange>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT first_seq, last_seq, last_hash, file, file_sha256, archived_at FROM audit_archive ORDER BY first_seq")?;
        let rows = stmt.query_map([], |r| {
            Ok(ArchivedRange {
                first_seq: r.get(0)?,
                last_seq: r.get(1)?,
                last_hash: r.get(2)?,
                file: r.get(3)?,
                file_sha256: r.get(4)?,
                archived_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest record sequence whose timestamp is before `ts`.
    pub fn last_seq_before(&self, ts: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT max(seq) FROM audit WHERE ts < ?1", [ts], |r| {
                r.get(0)
            })?)
    }

    /// Records `first..=last` in order.
    pub fn range(&self, first: i64, last: i64) -> Result<Vec<StoredRecord>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM audit WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq"
        ))?;
        let rows = stmt.query_map([first, last], read_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that `range` now lives in its file and removes it from the live trail, atomically.
    pub fn commit_archive(&mut self, range: &ArchivedRange) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO audit_archive (first_seq, last_seq, last_hash, file, file_sha256, archived_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![range.first_seq, range.last_seq, range.last_hash, range.file, range.file_sha256, range.archived_at],
        )?;
        tx.execute("DELETE FROM audit WHERE seq <= ?1", [range.last_seq])?;
        tx.execute(
            "DELETE FROM audit_connections WHERE last_seq <= ?1",
            [range.last_seq],
        )?;
        tx.execute(
            "DELETE FROM audit_spans WHERE last_seq <= ?1",
            [range.last_seq],
        )?;
        tx.execute(
            "DELETE FROM audit_checkpoints WHERE seq <= ?1",
            [range.last_seq],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, hash, ts, signature FROM audit_checkpoints ORDER BY seq")?;
        let rows = stmt.query_map([], |r| {
            Ok(Checkpoint {
                seq: r.get(0)?,
                hash: r.get(1)?,
                ts: r.get(2)?,
                signature: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn record(&self, seq: i64) -> Result<Option<StoredRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM audit WHERE seq = ?1"),
                [seq],
                read_row,
            )
            .optional()?)
    }

    /// Records matching `filter`, newest first (or oldest first when `ascending`), at most `limit`.
    ///
    /// A connection is found through its span; an identity or environment (without a
    /// connection) through theirs, span by span in the order asked for until `limit` records
    /// are found, so a search reads the ranges that hold the value's records, never the whole
    /// trail.
    pub fn search(
        &self,
        filter: &AuditFilter,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let limit = limit.min(10_000);
        let mut sql = format!("SELECT {COLUMNS} FROM audit WHERE 1=1");
        let mut args: Vec<Value> = Vec::new();
        let mut add = |cond: &str, v: Value| {
            args.push(v);
            sql.push_str(&cond.replace('?', &format!("?{}", args.len())));
        };
        if let Some(v) = &filter.identity {
            add(" AND identity = ?", v.clone().into());
        }
        if let Some(v) = &filter.environment {
            add(" AND environment = ?", v.clone().into());
        }
        if let Some(v) = &filter.event {
            if v.ends_with('.') {
                add(
                    " AND event LIKE ? ESCAPE '\\'",
                    format!("{}%", like_escape(v)).into(),
                );
            } else {
                add(" AND event = ?", v.clone().into());
            }
        }
        if let Some(v) = &filter.connection_id {
            // The span bounds turn this into a scan of the connection's range of rowids.
            add(
                " AND connection_id = ? AND seq BETWEEN \
                 (SELECT first_seq FROM audit_connections WHERE connection_id = ?) AND \
                 (SELECT last_seq FROM audit_connections WHERE connection_id = ?)",
                v.clone().into(),
            );
        }
        if let Some(v) = &filter.from {
            add(" AND ts >= ?", v.clone().into());
        }
        if let Some(v) = &filter.to {
            add(" AND ts < ?", v.clone().into());
        }
        if let Some(v) = &filter.decision {
            add(
                " AND json_extract(record_json, '$.decision') = ?",
                v.clone().into(),
            );
        }
        if let Some(v) = &filter.statement_kind {
            add(" AND EXISTS (SELECT 1 FROM json_each(record_json, '$.statement_kinds') WHERE upper(value) = upper(?))", v.clone().into());
        }
        if let Some(v) = &filter.table {
            add(
                " AND EXISTS (SELECT 1 FROM json_each(record_json, '$.tables') WHERE value = ?)",
                v.clone().into(),
            );
        }
        if let Some(v) = &filter.text {
            add(
                " AND record_json LIKE ? ESCAPE '\\'",
                format!("%{}%", like_escape(v)).into(),
            );
        }
        let after = filter.after_id.unwrap_or(i64::MIN);
        let before = filter.before_id.unwrap_or(i64::MAX);
        add(" AND seq > ?", after.into());
        add(" AND seq < ?", before.into());
        let order = if filter.ascending { "ASC" } else { "DESC" };
        // The span source, when one narrows the search better than the whole trail.
        let source = match (&filter.connection_id, &filter.identity, &filter.environment) {
            (Some(_), _, _) => None,
            (None, Some(v), _) => Some((SPAN_KINDS[0], v)),
            (None, None, Some(v)) => Some((SPAN_KINDS[1], v)),
            (None, None, None) => None,
        };
        let Some((kind, value)) = source else {
            sql.push_str(&format!(" ORDER BY seq {order} LIMIT {limit}"));
            let mut stmt = self.conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(args.iter()), read_row)?;
            return Ok(rows.collect::<Result<_, _>>()?);
        };
        let spans: Vec<(i64, i64)> = self
            .conn
            .prepare(&format!(
                "SELECT first_seq, last_seq FROM audit_spans WHERE kind = ?1 AND value = ?2 \
                 AND last_seq > ?3 AND first_seq < ?4 ORDER BY first_seq {order}"
            ))?
            .query_map(params![kind, value, after, before], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let n = args.len();
        sql.push_str(&format!(
            " AND seq BETWEEN ?{} AND ?{} ORDER BY seq {order} LIMIT ?{}",
            n + 1,
            n + 2,
            n + 3
        ));
        let mut stmt = self.conn.prepare(&sql)?;
        let mut found = Vec::new();
        for (first, last) in spans {
            if found.len() >= limit {
                break;
            }
            let rest = (limit - found.len()) as i64;
            let bounds = [Value::from(first), Value::from(last), Value::from(rest)];
            let rows =
                stmt.query_map(params_from_iter(args.iter().chain(bounds.iter())), read_row)?;
            for r in rows {
                found.push(r?);
            }
        }
        Ok(found)
    }
}

/// Per distinct value of `key` in a batch, its first and last sequence numbers there.
fn batch_spans<'a>(
    records: &[NewRecord<'a>],
    key: impl Fn(&NewRecord<'a>) -> Option<&'a str>,
) -> Vec<(&'a str, i64, i64)> {
    let mut spans: Vec<(&'a str, i64, i64)> = Vec::new();
    for r in records {
        let Some(v) = key(r) else { continue };
        match spans.iter_mut().find(|(c, _, _)| *c == v) {
            Some(span) => span.2 = r.seq,
            None => spans.push((v, r.seq, r.seq)),
        }
    }
    spans
}

/// Extends each value's latest span to cover its records in this batch, or starts a new span
/// when its last record is more than [`SPAN_GAP`] behind.
fn extend_spans(
    tx: &rusqlite::Transaction<'_>,
    kind: &str,
    spans: &[(&str, i64, i64)],
) -> rusqlite::Result<()> {
    if spans.is_empty() {
        return Ok(());
    }
    let mut latest = tx.prepare_cached(
        "SELECT first_seq, last_seq FROM audit_spans WHERE kind = ?1 AND value = ?2 \
         ORDER BY first_seq DESC LIMIT 1",
    )?;
    let mut extend = tx.prepare_cached(
        "UPDATE audit_spans SET last_seq = ?4 WHERE kind = ?1 AND value = ?2 AND first_seq = ?3",
    )?;
    let mut start = tx.prepare_cached(
        "INSERT INTO audit_spans (kind, value, first_seq, last_seq) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for &(value, first, last) in spans {
        let current: Option<(i64, i64)> = latest
            .query_row([kind, value], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match current {
            Some((from, to)) if first - to <= SPAN_GAP => {
                extend.execute(params![kind, value, from, last.max(to)])?;
            }
            _ => {
                start.execute(params![kind, value, first, last])?;
            }
        }
    }
    Ok(())
}

const INSERT: &str =
    "INSERT INTO audit (seq, ts, event, identity, environment, connection_id, record_json, hash)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// One record into the audit table (tests that build old trails).
#[cfg(test)]
fn insert_record(conn: &rusqlite::Connection, r: &NewRecord<'_>) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(INSERT)?;
    insert_with(&mut insert, r)
}

/// One record through the batch's insert statement, prepared once per batch rather than
/// looked up in the statement cache (hashing the SQL text) per record.
fn insert_with(insert: &mut rusqlite::Statement<'_>, r: &NewRecord<'_>) -> rusqlite::Result<()> {
    insert.execute(params![
        r.seq,
        r.ts,
        r.event,
        r.identity,
        r.environment,
        r.connection_id,
        r.json,
        r.hash
    ])?;
    Ok(())
}

/// `s` matched literally by `LIKE` (backslash escapes, SQLite's `ESCAPE '\\'` and
/// PostgreSQL's default alike).
pub(crate) fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: i64, connection: Option<&str>) -> StoredRecord {
        StoredRecord {
            id: seq,
            replica: None,
            seq,
            ts: format!("2026-01-01T00:00:{:02}Z", seq % 60),
            event: "statement".into(),
            identity: Some("alice".into()),
            environment: Some("prod".into()),
            connection_id: connection.map(str::to_string),
            json: format!("{{\"seq\":{seq}}}"),
            hash: format!("{seq:064x}"),
        }
    }

    fn append(db: &mut AuditDb, records: &[StoredRecord]) {
        let rows: Vec<NewRecord<'_>> = records.iter().map(StoredRecord::as_new).collect();
        db.append(&rows, None).unwrap();
    }

    fn seqs(db: &AuditDb, connection: &str) -> Vec<i64> {
        let filter = AuditFilter {
            connection_id: Some(connection.into()),
            ascending: true,
            ..Default::default()
        };
        db.search(&filter, 100)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect()
    }

    #[test]
    fn connection_search_follows_spans_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = AuditDb::open(&dir.path().join("audit.db")).unwrap();
        // Two connections interleaved over two batches, and a record of no connection.
        append(
            &mut db,
            &[rec(1, Some("a")), rec(2, Some("b")), rec(3, None)],
        );
        append(
            &mut db,
            &[rec(4, Some("a")), rec(5, Some("b")), rec(6, Some("a"))],
        );
        assert_eq!(seqs(&db, "a"), vec![1, 4, 6]);
        assert_eq!(seqs(&db, "b"), vec![2, 5]);
        assert!(seqs(&db, "unknown").is_empty());

        // Archiving the oldest records drops the spans that ended there, not the live ones.
        db.commit_archive(&ArchivedRange {
            first_seq: 1,
            last_seq: 5,
            last_hash: format!("{:064x}", 5),
            file: "a.jsonl".into(),
            file_sha256: String::new(),
            archived_at: "2026-01-02T00:00:00Z".into(),
        })
        .unwrap();
        assert_eq!(seqs(&db, "a"), vec![6]);
        assert!(seqs(&db, "b").is_empty());
        let spans: i64 = db
            .conn
            .query_row("SELECT count(*) FROM audit_connections", [], |r| r.get(0))
            .unwrap();
        assert_eq!(spans, 1);
    }

    fn spans(db: &AuditDb, kind: &str, v: &str) -> i64 {
        db.conn
            .query_row(
                "SELECT count(*) FROM audit_spans WHERE kind = ?1 AND value = ?2",
                [kind, v],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn rec_by(seq: i64, identity: &str, environment: &str) -> StoredRecord {
        StoredRecord {
            identity: Some(identity.into()),
            environment: Some(environment.into()),
            ..rec(seq, None)
        }
    }

    #[test]
    fn identity_and_environment_search_find_what_a_full_scan_finds() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = AuditDb::open(&dir.path().join("audit.db")).unwrap();
        // Three batches: interleaved identities, then a long run of others (bob's next record
        // is more than SPAN_GAP away), then bob again; carol only once.
        let who = |seq: i64| match seq % 5 {
            0 | 1 => ("alice", "prod"),
            2 => ("bob", "staging"),
            _ => ("dave", "prod"),
        };
        let mut all = Vec::new();
        let first: Vec<StoredRecord> = (1..=40).map(|s| rec_by(s, who(s).0, who(s).1)).collect();
        append(&mut db, &first);
        all.extend(first);
        let gap: Vec<StoredRecord> = (41..=41 + SPAN_GAP + 10)
            .map(|s| rec_by(s, "dave", "prod"))
            .collect();
        append(&mut db, &gap);
        all.extend(gap);
        let tail: Vec<StoredRecord> = (42 + SPAN_GAP + 10..=42 + SPAN_GAP + 40)
            .map(|s| {
                if s == 42 + SPAN_GAP + 20 {
                    rec_by(s, "carol", "dev")
                } else {
                    rec_by(s, who(s).0, who(s).1)
                }
            })
            .collect();
        append(&mut db, &tail);
        all.extend(tail);
        assert_eq!(spans(&db, "identity", "bob"), 2);
        assert_eq!(spans(&db, "identity", "dave"), 1);
        assert_eq!(spans(&db, "environment", "staging"), 2);
        for (identity, environment) in [
            (Some("alice"), None),
            (Some("bob"), None),
            (Some("carol"), None),
            (Some("nobody"), None),
            (None, Some("staging")),
            (None, Some("dev")),
            (Some("bob"), Some("staging")),
            (Some("bob"), Some("prod")),
        ] {
            for ascending in [false, true] {
                for limit in [1, 3, 10, 100, 10_000] {
                    for (after, before) in [
                        (None, None),
                        (Some(20), None),
                        (None, Some(4150)),
                        (Some(5), Some(4160)),
                    ] {
                        let filter = AuditFilter {
                            identity: identity.map(str::to_string),
                            environment: environment.map(str::to_string),
                            after_id: after,
                            before_id: before,
                            ascending,
                            ..Default::default()
                        };
                        let got: Vec<i64> = db
                            .search(&filter, limit)
                            .unwrap()
                            .iter()
                            .map(|r| r.seq)
                            .collect();
                        let mut want: Vec<i64> = all
                            .iter()
                            .filter(|r| identity.is_none_or(|i| r.identity.as_deref() == Some(i)))
                            .filter(|r| {
                                environment.is_none_or(|e| r.environment.as_deref() == Some(e))
                            })
                            .filter(|r| {
                                after.is_none_or(|a| r.seq > a) && before.is_none_or(|b| r.seq < b)
                            })
                            .map(|r| r.seq)
                            .collect();
                        if !ascending {
                            want.reverse();
                        }
                        want.truncate(limit);
                        assert_eq!(got, want, "{identity:?} {environment:?} asc={ascending} limit={limit} {after:?}..{before:?}");
                    }
                }
            }
        }
        // Archiving drops the spans that ended in the archived range.
        db.commit_archive(&ArchivedRange {
            first_seq: 1,
            last_seq: 40,
            last_hash: format!("{:064x}", 40),
            file: "a.jsonl".into(),
            file_sha256: String::new(),
            archived_at: "2026-01-02T00:00:00Z".into(),
        })
        .unwrap();
        assert_eq!(spans(&db, "identity", "bob"), 1);
        let filter = AuditFilter {
            identity: Some("bob".into()),
            ..Default::default()
        };
        assert!(db.search(&filter, 100).unwrap().iter().all(|r| r.seq > 40));
    }

    #[test]
    fn the_writer_keeps_no_index_entry_per_record_by_identity_or_environment() {
        let dir = tempfile::tempdir().unwrap();
        let db = AuditDb::open(&dir.path().join("audit.db")).unwrap();
        let indexes: Vec<String> = db
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(indexes.is_empty(), "{indexes:?}");
    }

    #[test]
    fn connection_search_scans_only_the_span() {
        let dir = tempfile::tempdir().unwrap();
        let db = AuditDb::open(&dir.path().join("audit.db")).unwrap();
        let plan: Vec<String> = db
            .conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT seq FROM audit WHERE connection_id = ?1 AND seq BETWEEN \
                 (SELECT first_seq FROM audit_connections WHERE connection_id = ?1) AND \
                 (SELECT last_seq FROM audit_connections WHERE connection_id = ?1)",
            )
            .unwrap()
            .query_map(["a"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|p| p.contains("SEARCH audit USING INTEGER PRIMARY KEY")),
            "{plan:?}"
        );
    }

    #[test]
    fn upgrading_a_trail_fills_the_spans_of_its_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        {
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            super::super::migrations::apply(&mut conn, &MIGRATIONS[..2]).unwrap();
            for (seq, c) in [(1, "a"), (2, "b"), (3, "a")] {
                insert_record(&conn, &rec(seq, Some(c)).as_new()).unwrap();
            }
        }
        let db = AuditDb::open(&path).unwrap();
        assert_eq!(seqs(&db, "a"), vec![1, 3]);
        assert_eq!(seqs(&db, "b"), vec![2]);
        // And the spans of its identities and environments (migration 4).
        for filter in [
            AuditFilter {
                identity: Some("alice".into()),
                ..Default::default()
            },
            AuditFilter {
                environment: Some("prod".into()),
                ..Default::default()
            },
        ] {
            let found: Vec<i64> = db
                .search(&filter, 10)
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect();
            assert_eq!(found, vec![3, 2, 1]);
        }
    }
}
