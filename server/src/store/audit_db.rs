//! The audit trail's own SQLite database (`data_dir/audit.db`, WAL): the index of the blocks of
//! records (their text in segment files, `audit_segments`), signed checkpoints, and the queries
//! search and verification need.
//!
//! It is a separate file from the main store so the audit writer thread owns its connection and
//! never waits on API traffic, and so it can be copied or archived on its own (with its
//! `audit-segments/` directory).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{params, OptionalExtension};

use super::audit_block::{self, MalformedBlock};
use super::audit_match::RecordMatcher;
use super::audit_segments::{self, Place, SegmentReader, SegmentWriter};
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
    // 5: a row per committed batch instead of per record (see `audit_block`): each record's
    // line in COPY text format, in sequence order, 1024 records to a block for an existing
    // trail. A tampered trail is carried over as it is, for `audit verify` to find.
    r"CREATE TABLE audit_blocks (
        first_seq INTEGER PRIMARY KEY,
        last_seq  INTEGER NOT NULL,
        min_ts    TEXT NOT NULL,
        max_ts    TEXT NOT NULL,
        records   TEXT NOT NULL
    );
    INSERT INTO audit_blocks (first_seq, last_seq, min_ts, max_ts, records)
        SELECT min(seq), max(seq), min(ts), max(ts), group_concat(line, '' ORDER BY seq)
        FROM (SELECT seq, ts, seq
            || char(9) || replace(replace(replace(ts, '\', '\\'), char(9), '\t'), char(10), '\n')
            || char(9) || replace(replace(replace(event, '\', '\\'), char(9), '\t'), char(10), '\n')
            || char(9) || coalesce(replace(replace(replace(identity, '\', '\\'), char(9), '\t'), char(10), '\n'), '\N')
            || char(9) || coalesce(replace(replace(replace(environment, '\', '\\'), char(9), '\t'), char(10), '\n'), '\N')
            || char(9) || coalesce(replace(replace(replace(connection_id, '\', '\\'), char(9), '\t'), char(10), '\n'), '\N')
            || char(9) || replace(replace(replace(hash, '\', '\\'), char(9), '\t'), char(10), '\n')
            || char(9) || replace(replace(replace(record_json, '\', '\\'), char(9), '\t'), char(10), '\n')
            || char(10) AS line
            FROM audit)
        GROUP BY seq >> 10;
    DROP TABLE audit;",
    // 6: a block's text lives in a segment file (see `audit_segments`) and its row keeps only
    // its place; `records` is '' for such a block. Blocks written before keep their text here.
    "ALTER TABLE audit_blocks ADD COLUMN segment INTEGER;
    ALTER TABLE audit_blocks ADD COLUMN seg_offset INTEGER;
    ALTER TABLE audit_blocks ADD COLUMN seg_length INTEGER;",
];

/// The columns that say where a block's text is, for [`stored`], after its first sequence
/// number.
const TEXT_COLUMNS: &str = "records, segment, seg_offset, seg_length";

/// Where a block row's text is.
enum Stored {
    /// In the row (written before segments, or by an archive that split a block); `None` when
    /// it is not UTF-8 text.
    Row(Option<String>),
    At(Place),
}

/// Reads [`TEXT_COLUMNS`] from `at` on.
fn stored(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Stored> {
    if let Some(segment) = r.get::<_, Option<i64>>(at + 1)? {
        return Ok(Stored::At(Place {
            segment,
            offset: r.get(at + 2)?,
            length: r.get(at + 3)?,
        }));
    }
    // Text as the writer stores it; a blob put there by hand is read the same way.
    Ok(Stored::Row(match r.get_ref(at)? {
        ValueRef::Text(b) | ValueRef::Blob(b) => String::from_utf8(b.to_vec()).ok(),
        _ => None,
    }))
}

impl Stored {
    /// The block's text.
    fn text(self, first_seq: i64, segments: &mut SegmentReader<'_>) -> Result<String, StoreError> {
        match self {
            Stored::Row(Some(text)) => Ok(text),
            Stored::Row(None) => Err(MalformedBlock {
                first_seq,
                reason: "is not UTF-8 text".into(),
            }
            .into()),
            Stored::At(place) => segments.read(first_seq, place),
        }
    }
}

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
    /// The block being appended, kept between batches.
    text: String,
    segment_dir: PathBuf,
    segments: SegmentWriter,
}

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
        let segment_dir = audit_segments::dir_for(path);
        let mut db = AuditDb {
            conn,
            text: String::new(),
            segments: SegmentWriter::new(segment_dir.clone()),
            segment_dir,
        };
        db.drop_lost_blocks()?;
        Ok(db)
    }

    /// After a power loss: the rows of blocks newer than the last signed checkpoint whose bytes
    /// never reached their segment file (see `audit_segments`), newest first until one is
    /// whole. Their records were lost with the machine; the chain goes on from the last one
    /// kept. A block missing at or before a checkpoint is not a power loss's and stays, for
    /// `audit verify` to report.
    fn drop_lost_blocks(&mut self) -> Result<(), StoreError> {
        let checkpoint: i64 = self.conn.query_row(
            "SELECT coalesce(max(seq), 0) FROM audit_checkpoints",
            [],
            |r| r.get(0),
        )?;
        let newest: Vec<(i64, i64, Place)> = self
            .conn
            .prepare(
                "SELECT first_seq, last_seq, segment, seg_offset, seg_length FROM audit_blocks \
                 WHERE segment IS NOT NULL AND first_seq > ?1 ORDER BY first_seq DESC",
            )?
            .query_map([checkpoint], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    Place {
                        segment: r.get(2)?,
                        offset: r.get(3)?,
                        length: r.get(4)?,
                    },
                ))
            })?
            .collect::<Result<_, _>>()?;
        let reader = SegmentReader::new(&self.segment_dir);
        let lost: Vec<&(i64, i64, Place)> = newest
            .iter()
            .take_while(|(_, _, place)| !reader.present(*place))
            .collect();
        if let (Some(newest), Some(oldest)) = (lost.first(), lost.last()) {
            tracing::error!(
                first = oldest.0,
                last = newest.1,
                "audit records after the last signed checkpoint never reached their segment file (a power loss?); the trail goes on from the record before them"
            );
            self.conn
                .execute("DELETE FROM audit_blocks WHERE first_seq >= ?1", [oldest.0])?;
        }
        Ok(())
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
        let segment_dir = audit_segments::dir_for(path);
        Ok(AuditDb {
            conn,
            text: String::new(),
            segments: SegmentWriter::new(segment_dir.clone()),
            segment_dir,
        })
    }

    /// Takes the database's write lock, as another writer would, until the value is dropped:
    /// tests stall the audit writer with it.
    #[cfg(test)]
    pub fn hold_write_lock(path: &Path) -> impl Drop {
        struct Held(rusqlite::Connection);
        impl Drop for Held {
            fn drop(&mut self) {
                let _ = self.0.execute_batch("COMMIT");
            }
        }
        let conn = rusqlite::Connection::open(path).expect("open the trail");
        conn.execute_batch("BEGIN IMMEDIATE")
            .expect("take the write lock");
        Held(conn)
    }

    /// The last record's sequence number and hash.
    pub fn head(&self) -> Result<Option<(i64, String)>, StoreError> {
        let last: Option<(i64, Stored)> = self
            .conn
            .query_row(
                &format!(
                    "SELECT first_seq, {TEXT_COLUMNS} FROM audit_blocks ORDER BY first_seq DESC LIMIT 1"
                ),
                [],
                |r| Ok((r.get(0)?, stored(r, 1)?)),
            )
            .optional()?;
        let Some((first, stored)) = last else {
            return Ok(None);
        };
        let text = stored.text(first, &mut SegmentReader::new(&self.segment_dir))?;
        match audit_block::last_record(first, &text) {
            Some(r) => {
                let r = r?;
                Ok(Some((r.seq, r.hash)))
            }
            None => Err(MalformedBlock {
                first_seq: first,
                reason: "holds no records".into(),
            }
            .into()),
        }
    }

    /// Appends records (and optionally a checkpoint) in one transaction: all or nothing. The
    /// records are one block, so they must follow each other (as the writer numbers them).
    pub fn append(
        &mut self,
        records: &[NewRecord<'_>],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<(), StoreError> {
        let AuditDb {
            conn,
            text,
            segments,
            ..
        } = self;
        // The block goes to its segment first: a row never points at bytes not yet written.
        let block = match (records.first(), records.last()) {
            (Some(first), Some(last)) => {
                text.clear();
                let (mut min_ts, mut max_ts) = (first.ts, first.ts);
                for r in records {
                    audit_block::push_line(text, r);
                    min_ts = min_ts.min(r.ts);
                    max_ts = max_ts.max(r.ts);
                }
                let place = segments.append(first.seq, text.as_bytes())?;
                if checkpoint.is_some() {
                    // A signed checkpoint vouches for every record before it: their bytes are
                    // on disk before it can be (see `audit_segments` for the crash rules).
                    segments.sync()?;
                }
                Some((first.seq, last.seq, min_ts, max_ts, place))
            }
            _ => None,
        };
        let tx = conn.transaction()?;
        {
            if let Some((first, last, min_ts, max_ts, place)) = block {
                tx.prepare_cached(
                    "INSERT INTO audit_blocks \
                     (first_seq, last_seq, min_ts, max_ts, records, segment, seg_offset, seg_length) \
                     VALUES (?1, ?2, ?3, ?4, '', ?5, ?6, ?7)",
                )?
                .execute(params![
                    first,
                    last,
                    min_ts,
                    max_ts,
                    place.segment,
                    place.offset,
                    place.length
                ])?;
            }
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

    /// Calls `visit` with each block holding records in `lo..=hi` (first sequence number and
    /// text), in sequence order or newest first, skipping blocks wholly outside
    /// `from..to` by time; stops when `visit` returns false.
    fn blocks(
        &self,
        (lo, hi): (i64, i64),
        (from, to): (Option<&str>, Option<&str>),
        ascending: bool,
        mut visit: impl FnMut(i64, &str) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let order = if ascending { "ASC" } else { "DESC" };
        // Both bounds on the primary key: blocks do not overlap, so the first that can hold
        // `lo` is the last one starting at or before it.
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT first_seq, {TEXT_COLUMNS} FROM audit_blocks \
             WHERE first_seq <= ?2 \
               AND first_seq >= coalesce((SELECT max(first_seq) FROM audit_blocks WHERE first_seq <= ?1), ?1) \
               AND last_seq >= ?1 \
               AND (?3 IS NULL OR max_ts >= ?3) AND (?4 IS NULL OR min_ts < ?4) \
             ORDER BY first_seq {order}"
        ))?;
        let mut rows = stmt.query(params![lo, hi, from, to])?;
        let mut segments = SegmentReader::new(&self.segment_dir);
        while let Some(row) = rows.next()? {
            let first: i64 = row.get(0)?;
            let text = stored(row, 1)?.text(first, &mut segments)?;
            if !visit(first, &text)? {
                break;
            }
        }
        Ok(())
    }

    /// Calls `visit` on each record of `lo..=hi` in sequence order until it returns false.
    fn each_in(
        &self,
        (lo, hi): (i64, i64),
        mut visit: impl FnMut(StoredRecord) -> bool,
    ) -> Result<(), StoreError> {
        self.blocks((lo, hi), (None, None), true, |first, text| {
            for r in audit_block::records(first, text) {
                let r = r?;
                if (lo..=hi).contains(&r.seq) && !visit(r) {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// Calls `f` on every record in sequence order; stops early when `f` returns false.
    pub fn scan(&self, f: impl FnMut(StoredRecord) -> bool) -> Result<(), StoreError> {
        self.each_in((i64::MIN, i64::MAX), f)
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
        // It is in the newest block holding any record that old.
        let block: Option<(i64, Stored)> = self
            .conn
            .query_row(
                &format!(
                    "SELECT first_seq, {TEXT_COLUMNS} FROM audit_blocks WHERE min_ts < ?1 \
                     ORDER BY first_seq DESC LIMIT 1"
                ),
                [ts],
                |r| Ok((r.get(0)?, stored(r, 1)?)),
            )
            .optional()?;
        let Some((first, stored)) = block else {
            return Ok(None);
        };
        let text = stored.text(first, &mut SegmentReader::new(&self.segment_dir))?;
        let mut last = None;
        for r in audit_block::records(first, &text) {
            let r = r?;
            if r.ts.as_str() < ts {
                last = last.max(Some(r.seq));
            }
        }
        Ok(last)
    }

    /// Records `first..=last` in order.
    pub fn range(&self, first: i64, last: i64) -> Result<Vec<StoredRecord>, StoreError> {
        let mut found = Vec::new();
        self.each_in((first, last), |r| {
            found.push(r);
            true
        })?;
        Ok(found)
    }

    /// Records that `range` now lives in its file and removes it from the live trail, atomically.
    pub fn commit_archive(&mut self, range: &ArchivedRange) -> Result<(), StoreError> {
        let end = range.last_seq;
        let tx = self.conn.transaction()?;
        // The block the range ends inside keeps its later records, as a block of their own;
        // read in the same transaction that rewrites it.
        let straddling: Option<(i64, Stored)> = tx
            .query_row(
                &format!(
                    "SELECT first_seq, {TEXT_COLUMNS} FROM audit_blocks \
                     WHERE first_seq <= ?1 AND last_seq > ?1"
                ),
                [end],
                |r| Ok((r.get(0)?, stored(r, 1)?)),
            )
            .optional()?;
        let mut kept = Vec::new();
        if let Some((first, stored)) = straddling {
            let text = stored.text(first, &mut SegmentReader::new(&self.segment_dir))?;
            for r in audit_block::records(first, &text) {
                let r = r?;
                if r.seq > end {
                    kept.push(r);
                }
            }
        }
        tx.execute(
            "INSERT INTO audit_archive (first_seq, last_seq, last_hash, file, file_sha256, archived_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![range.first_seq, range.last_seq, range.last_hash, range.file, range.file_sha256, range.archived_at],
        )?;
        tx.execute("DELETE FROM audit_blocks WHERE first_seq <= ?1", [end])?;
        if let (Some(first), Some(last)) = (kept.first(), kept.last()) {
            let mut text = String::new();
            for r in &kept {
                audit_block::push_line(&mut text, &r.as_new());
            }
            let min_ts = kept.iter().map(|r| r.ts.as_str()).min();
            let max_ts = kept.iter().map(|r| r.ts.as_str()).max();
            tx.execute(
                "INSERT INTO audit_blocks (first_seq, last_seq, min_ts, max_ts, records) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![first.seq, last.seq, min_ts, max_ts, text],
            )?;
        }
        tx.execute("DELETE FROM audit_connections WHERE last_seq <= ?1", [end])?;
        tx.execute("DELETE FROM audit_spans WHERE last_seq <= ?1", [end])?;
        tx.execute("DELETE FROM audit_checkpoints WHERE seq <= ?1", [end])?;
        tx.commit()?;
        // Segments no block points into any more give their space back. A failure leaves
        // files nothing reads; the next archive tries again.
        let referenced: BTreeSet<i64> = self
            .conn
            .prepare("SELECT DISTINCT segment FROM audit_blocks WHERE segment IS NOT NULL")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if let Err(e) = audit_segments::remove_unreferenced(&self.segment_dir, &referenced) {
            tracing::warn!(error = %e, dir = %self.segment_dir.display(), "cannot remove archived audit segments");
        }
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
        let mut found = None;
        self.each_in((seq, seq), |r| {
            found = Some(r);
            false
        })?;
        Ok(found)
    }

    /// Records matching `filter`, newest first (or oldest first when `ascending`), at most `limit`.
    ///
    /// A connection is found through its span; an identity or environment (without a
    /// connection) through theirs, span by span in the order asked for until `limit` records
    /// are found, so a search reads the blocks that hold the value's records, never the whole
    /// trail. Blocks wholly outside the time range asked for are not read either.
    pub fn search(
        &self,
        filter: &AuditFilter,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let limit = limit.min(10_000);
        let lo = filter.after_id.map_or(i64::MIN, |a| a.saturating_add(1));
        let hi = filter.before_id.map_or(i64::MAX, |b| b.saturating_sub(1));
        let mut found = Vec::new();
        if lo > hi || limit == 0 {
            return Ok(found);
        }
        let matcher = RecordMatcher::new(filter);
        let times = (filter.from.as_deref(), filter.to.as_deref());
        for (a, b) in self.windows(filter, lo, hi)? {
            let mut keep = |r: StoredRecord| {
                if (a..=b).contains(&r.seq) && matcher.matches(&r) {
                    found.push(r);
                }
                found.len() < limit
            };
            self.blocks((a, b), times, filter.ascending, |first, text| {
                let records = audit_block::records(first, text);
                let more = if filter.ascending {
                    visit_all(records, &mut keep)?
                } else {
                    visit_all(records.rev(), &mut keep)?
                };
                Ok(more)
            })?;
            if found.len() >= limit {
                break;
            }
        }
        Ok(found)
    }

    /// The ranges of sequence numbers within `lo..=hi` that can hold what `filter` asks for,
    /// in the order it asks for: the connection's span, the identity's or environment's spans,
    /// or everything.
    fn windows(
        &self,
        filter: &AuditFilter,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let spans: Vec<(i64, i64)> = match (
            &filter.connection_id,
            &filter.identity,
            &filter.environment,
        ) {
            (Some(c), _, _) => self
                .conn
                .query_row(
                    "SELECT first_seq, last_seq FROM audit_connections WHERE connection_id = ?1",
                    [c],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .into_iter()
                .collect(),
            (None, Some(v), _) => self.spans(SPAN_KINDS[0], v, lo, hi, filter.ascending)?,
            (None, None, Some(v)) => self.spans(SPAN_KINDS[1], v, lo, hi, filter.ascending)?,
            (None, None, None) => vec![(lo, hi)],
        };
        Ok(spans
            .into_iter()
            .map(|(a, b)| (a.max(lo), b.min(hi)))
            .filter(|(a, b)| a <= b)
            .collect())
    }

    fn spans(
        &self,
        kind: &str,
        value: &str,
        lo: i64,
        hi: i64,
        ascending: bool,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let order = if ascending { "ASC" } else { "DESC" };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT first_seq, last_seq FROM audit_spans WHERE kind = ?1 AND value = ?2 \
             AND last_seq >= ?3 AND first_seq <= ?4 ORDER BY first_seq {order}"
        ))?;
        let spans = stmt
            .query_map(params![kind, value, lo, hi], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(spans)
    }
}

/// Feeds decoded records to `keep` until it returns false; false if it did.
fn visit_all(
    records: impl Iterator<Item = Result<StoredRecord, MalformedBlock>>,
    keep: &mut impl FnMut(StoredRecord) -> bool,
) -> Result<bool, StoreError> {
    for r in records {
        if !keep(r?) {
            return Ok(false);
        }
    }
    Ok(true)
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

    /// The sequence numbers a search finds, in its order.
    fn found(db: &AuditDb, filter: &AuditFilter, limit: usize) -> Vec<i64> {
        db.search(filter, limit)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect()
    }

    fn seqs(db: &AuditDb, connection: &str) -> Vec<i64> {
        let filter = AuditFilter {
            connection_id: Some(connection.into()),
            ascending: true,
            ..Default::default()
        };
        found(db, &filter, 100)
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
                        let got = found(&db, &filter, limit);
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
    fn a_batch_is_one_row_and_reads_back_record_by_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = AuditDb::open(&dir.path().join("audit.db")).unwrap();
        let first: Vec<StoredRecord> = (1..=500).map(|s| rec(s, Some("a"))).collect();
        append(&mut db, &first);
        append(&mut db, &[rec(501, Some("b"))]);
        let blocks: i64 = db
            .conn
            .query_row("SELECT count(*) FROM audit_blocks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(blocks, 2);
        // Their text is in one segment file, one after the other; the rows hold their places.
        let places: Vec<(String, i64, i64, i64)> = db
            .conn
            .prepare("SELECT records, segment, seg_offset, seg_length FROM audit_blocks ORDER BY first_seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(places[0].0, "");
        assert_eq!((places[0].1, places[0].2), (1, 0));
        assert_eq!((places[1].1, places[1].2), (1, places[0].3));
        let file = dir
            .path()
            .join("audit-segments")
            .join(audit_segments::file_name(1));
        let size = std::fs::metadata(&file).unwrap().len() as i64;
        assert_eq!(size, places[0].3 + places[1].3);
        assert_eq!(db.head().unwrap(), Some((501, format!("{:064x}", 501))));
        let all: Vec<i64> = db.range(1, 501).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(all, (1..=501).collect::<Vec<_>>());
        assert_eq!(db.range(499, 501).unwrap().len(), 3);
        assert_eq!(db.record(250).unwrap().unwrap().json, "{\"seq\":250}");
        assert!(db.record(502).unwrap().is_none());
        assert_eq!(found(&db, &AuditFilter::default(), 3), vec![501, 500, 499]);
        let after = AuditFilter {
            after_id: Some(498),
            ascending: true,
            ..Default::default()
        };
        assert_eq!(found(&db, &after, 10), vec![499, 500, 501]);
    }

    #[test]
    fn block_reads_use_the_primary_key_on_both_ends() {
        let dir = tempfile::tempdir().unwrap();
        let db = AuditDb::open(&dir.path().join("audit.db")).unwrap();
        let plan: Vec<String> = db
            .conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT first_seq, records FROM audit_blocks \
                 WHERE first_seq <= ?2 \
                   AND first_seq >= coalesce((SELECT max(first_seq) FROM audit_blocks WHERE first_seq <= ?1), ?1) \
                   AND last_seq >= ?1 ORDER BY first_seq",
            )
            .unwrap()
            .query_map([1, 2], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p
                .contains("SEARCH audit_blocks USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)")),
            "{plan:?}"
        );
    }

    /// Archives records 1 to 4 (the file itself is the archiver's business, not tested here).
    fn archive_through_4(db: &mut AuditDb) {
        db.commit_archive(&ArchivedRange {
            first_seq: 1,
            last_seq: 4,
            last_hash: format!("{:064x}", 4),
            file: "a.jsonl".into(),
            file_sha256: String::new(),
            archived_at: "2026-01-02T00:00:00Z".into(),
        })
        .unwrap();
    }

    #[test]
    fn archiving_inside_a_block_keeps_its_later_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = AuditDb::open(&dir.path().join("audit.db")).unwrap();
        let records: Vec<StoredRecord> = (1..=10).map(|s| rec(s, Some("a"))).collect();
        append(&mut db, &records);
        assert_eq!(db.last_seq_before("2026-01-01T00:00:05Z").unwrap(), Some(4));
        archive_through_4(&mut db);
        let left: Vec<i64> = db.range(1, 100).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(left, (5..=10).collect::<Vec<_>>());
        assert_eq!(seqs(&db, "a"), (5..=10).collect::<Vec<_>>());
        assert_eq!(db.head().unwrap().unwrap().0, 10);
    }

    #[test]
    fn a_hand_edited_block_is_named_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = AuditDb::open(&dir.path().join("audit.db")).unwrap();
        append(&mut db, &[rec(1, Some("a")), rec(2, Some("a"))]);
        // Edited in its segment file, keeping its length: a tab becomes a space.
        let file = dir
            .path()
            .join("audit-segments")
            .join(audit_segments::file_name(1));
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replacen("\tstatement", " statement", 1)).unwrap();
        let err = db.scan(|_| true).unwrap_err();
        assert!(matches!(err, StoreError::MalformedAudit(_)), "{err}");
        assert!(err.to_string().contains("the block from record 1"), "{err}");
        // A block kept in its row (an older trail's) is read the same way.
        let mut line = String::new();
        audit_block::push_line(&mut line, &rec(3, Some("a")).as_new());
        db.conn
            .execute(
                "INSERT INTO audit_blocks (first_seq, last_seq, min_ts, max_ts, records) VALUES (3, 3, '0', '9', ?1)",
                [line.replacen('\t', " ", 1)],
            )
            .unwrap();
        let err = db.range(3, 3).unwrap_err();
        assert!(err.to_string().contains("the block from record 3"), "{err}");
    }

    #[test]
    fn blocks_a_power_loss_kept_from_their_segment_are_dropped_after_the_last_checkpoint_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let mut db = AuditDb::open(&path).unwrap();
        append(&mut db, &[rec(1, Some("a")), rec(2, Some("a"))]);
        let checkpoint = Checkpoint {
            seq: 4,
            hash: format!("{:064x}", 4),
            ts: "2026-01-01T00:00:04Z".into(),
            signature: vec![0; 64],
        };
        let rows = [rec(3, Some("a")), rec(4, Some("a"))];
        let new: Vec<NewRecord<'_>> = rows.iter().map(StoredRecord::as_new).collect();
        db.append(&new, Some(&checkpoint)).unwrap();
        let synced = std::fs::metadata(
            dir.path()
                .join("audit-segments")
                .join(audit_segments::file_name(1)),
        )
        .unwrap()
        .len();
        append(&mut db, &[rec(5, Some("a"))]);
        append(&mut db, &[rec(6, Some("a")), rec(7, Some("a"))]);
        drop(db);
        // The machine lost power: what was written after the checkpoint's sync is gone.
        let file = dir
            .path()
            .join("audit-segments")
            .join(audit_segments::file_name(1));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(synced + 3)
            .unwrap();
        let mut db = AuditDb::open(&path).unwrap();
        assert_eq!(db.head().unwrap().unwrap().0, 4);
        // The chain goes on from there, after the torn bytes.
        append(&mut db, &[rec(5, Some("a"))]);
        let all: Vec<i64> = db.range(1, 10).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(all, vec![1, 2, 3, 4, 5]);
        drop(db);
        // Bytes missing at or before a checkpoint are not a power loss's: left to be reported.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(10)
            .unwrap();
        let db = AuditDb::open(&path).unwrap();
        let err = db.range(1, 10).unwrap_err();
        assert!(err.to_string().contains("ends before"), "{err}");
    }

    #[test]
    fn archiving_removes_the_segments_no_block_points_into() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = AuditDb::open(&dir.path().join("audit.db")).unwrap();
        // A segment per block or two.
        db.segments = SegmentWriter::with_limit(dir.path().join("audit-segments"), 100);
        for s in 1..=6 {
            append(&mut db, &[rec(s, Some("a"))]);
        }
        let segments = audit_segments::list(&dir.path().join("audit-segments")).unwrap();
        assert!(segments.len() >= 3, "{segments:?}");
        archive_through_4(&mut db);
        let left = audit_segments::list(&dir.path().join("audit-segments")).unwrap();
        assert!(left.len() < segments.len(), "{left:?}");
        // Records 5 and 6 are all that is left: no segment before record 5's is needed.
        assert!(!left.is_empty() && left.iter().all(|&s| s >= 5), "{left:?}");
        let kept: Vec<i64> = db.range(1, 10).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(kept, vec![5, 6]);
        assert_eq!(db.head().unwrap().unwrap().0, 6);
    }

    #[test]
    fn upgrading_a_trail_fills_the_spans_of_its_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        {
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            super::super::migrations::apply(&mut conn, &MIGRATIONS[..2]).unwrap();
            for (seq, c) in [(1, "a"), (2, "b"), (3, "a"), (4, "d")] {
                let mut r = rec(seq, Some(c));
                if seq == 4 {
                    // Every field the block format escapes, and one that is none.
                    r.identity = Some("tab\there\nnew\\line \\N".into());
                    r.environment = None;
                    r.json = "{\"sql\":\"SELECT '\\t'\"}".into();
                }
                conn.execute(
                    "INSERT INTO audit (seq, ts, event, identity, environment, connection_id, record_json, hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![r.seq, r.ts, r.event, r.identity, r.environment, r.connection_id, r.json, r.hash],
                )
                .unwrap();
            }
        }
        let db = AuditDb::open(&path).unwrap();
        // Migration 5 carries every record over exactly.
        let want: Vec<String> = [(1, "a"), (2, "b"), (3, "a")]
            .iter()
            .map(|(s, c)| serde_json::to_string(&rec(*s, Some(c))).unwrap())
            .collect();
        let got: Vec<String> = db
            .range(1, 3)
            .unwrap()
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        assert_eq!(got, want);
        let tricky = db.record(4).unwrap().unwrap();
        assert_eq!(tricky.identity.as_deref(), Some("tab\there\nnew\\line \\N"));
        assert_eq!(tricky.environment, None);
        assert_eq!(tricky.json, "{\"sql\":\"SELECT '\\t'\"}");
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
            assert_eq!(found(&db, &filter, 10), vec![3, 2, 1]);
        }
    }
}
