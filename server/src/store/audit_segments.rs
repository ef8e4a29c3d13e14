//! Where a gateway's own audit trail keeps its records' text: append-only segment files beside
//! `audit.db` (`audit-segments/<first sequence number>.seg`), a committed batch being one `write`
//! of its block (the lines of `audit_block`). SQLite keeps only each block's place (segment,
//! offset, length) with its index columns.
//!
//! Kept in SQLite, a block's bytes were written twice (WAL, then the checkpoint's copy into the
//! database file) and copied three more times on the way (bound, paged, checksummed): half the
//! writer's CPU. Here they are written once.
//!
//! Crash rules:
//! - A block is written before the transaction that indexes it commits. A process killed in
//!   between leaves bytes no row points to: never acknowledged, never read, left in place.
//! - The segment is synced (`fdatasync`) before a batch that carries a signed checkpoint
//!   commits, and before the writer moves on to a new segment. A power loss can therefore only
//!   take blocks newer than the last checkpoint, and `AuditDb::open` drops the index rows of
//!   such blocks whose bytes did not reach the disk (they read as missing, not as tampering).
//!   Anything missing at or before a checkpoint is left for `audit verify` to report.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::audit_block::MalformedBlock;
use super::StoreError;

/// A new segment is started once the current one holds this much: archiving removes whole
/// segments, so this is also how finely the trail's disk space is given back.
const SEGMENT_BYTES: u64 = 64 << 20;

/// A block is written in pieces of this size. One `write` of a whole batch (megabytes) makes
/// the kernel allocate large page-cache folios, taken from the high-order free memory that a
/// virtual machine's balloon hands back to its host (free page reporting): every page of them
/// faults in the host, and the writer's copy cost seven times as much (750 MB: 1.3 s of system
/// time against 0.19 s in 64 KiB writes, measured with `dd` on the development VM).
const WRITE_PIECE: usize = 64 << 10;

/// A block's place in the segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub segment: i64,
    pub offset: i64,
    pub length: i64,
}

/// The segment directory of the trail at `db` (`audit.db` → `audit-segments/` beside it).
pub fn dir_for(db: &Path) -> PathBuf {
    db.with_file_name("audit-segments")
}

pub fn file_name(segment: i64) -> String {
    format!("{segment:020}.seg")
}

/// The segments in `dir`, oldest first (none when it does not exist yet).
pub fn list(dir: &Path) -> std::io::Result<Vec<i64>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut ids: Vec<i64> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            name.to_str()?.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

fn io_error(path: PathBuf, e: &std::io::Error) -> StoreError {
    StoreError::Segment {
        path,
        // The writer tells a full disk by its message (as SQLite words it).
        reason: if e.kind() == std::io::ErrorKind::StorageFull {
            "the disk is full".into()
        } else {
            e.to_string()
        },
    }
}

/// The segment the writer appends to.
struct Current {
    id: i64,
    file: File,
    len: u64,
}

/// Appends blocks; opened lazily, so a connection that never writes never opens a file.
pub struct SegmentWriter {
    dir: PathBuf,
    current: Option<Current>,
    /// [`SEGMENT_BYTES`], smaller in tests.
    limit: u64,
}

impl SegmentWriter {
    pub fn new(dir: PathBuf) -> SegmentWriter {
        SegmentWriter::with_limit(dir, SEGMENT_BYTES)
    }

    /// A writer that starts a new segment once the current one holds `limit` bytes.
    pub fn with_limit(dir: PathBuf, limit: u64) -> SegmentWriter {
        SegmentWriter {
            dir,
            current: None,
            limit,
        }
    }

    /// Appends `text`, the block that starts at record `first_seq`; returns where it went.
    pub fn append(&mut self, first_seq: i64, text: &[u8]) -> Result<Place, StoreError> {
        if self.current.is_none() {
            self.current = self.open_newest()?;
        }
        if let Some(c) = &self.current {
            if c.len >= self.limit {
                // What the index will point to in the old segment must be on disk before
                // anything points into the new one.
                c.file
                    .sync_data()
                    .map_err(|e| io_error(self.dir.join(file_name(c.id)), &e))?;
                self.current = None;
            }
        }
        let c = match &mut self.current {
            Some(c) => c,
            None => self.current.insert(self.create(first_seq)?),
        };
        let offset = c.len;
        if let Err(e) = text
            .chunks(WRITE_PIECE)
            .try_for_each(|piece| c.file.write_all(piece))
        {
            // Part of it may be there: the next block goes after whatever was written.
            if let Ok(m) = c.file.metadata() {
                c.len = m.len();
            }
            return Err(io_error(self.dir.join(file_name(c.id)), &e));
        }
        c.len += text.len() as u64;
        Ok(Place {
            segment: c.id,
            offset: offset as i64,
            length: text.len() as i64,
        })
    }

    /// Makes everything appended so far durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        match &self.current {
            Some(c) => c
                .file
                .sync_data()
                .map_err(|e| io_error(self.dir.join(file_name(c.id)), &e)),
            None => Ok(()),
        }
    }

    fn open_newest(&self) -> Result<Option<Current>, StoreError> {
        let newest = list(&self.dir)
            .map_err(|e| io_error(self.dir.clone(), &e))?
            .pop();
        newest.map(|id| self.open(id)).transpose()
    }

    fn create(&self, id: i64) -> Result<Current, StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| StoreError::CreateDir {
            path: self.dir.clone(),
            source,
        })?;
        self.open(id)
    }

    /// Opens for appending; bytes past the last indexed block (a crash's) stay where they are.
    fn open(&self, id: i64) -> Result<Current, StoreError> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.join(file_name(id)))
            .map_err(|e| io_error(self.dir.join(file_name(id)), &e))?;
        let len = file
            .metadata()
            .map_err(|e| io_error(self.dir.join(file_name(id)), &e))?
            .len();
        Ok(Current { id, file, len })
    }
}

/// Reads blocks, keeping the last segment it opened (blocks are read in runs from one file).
pub struct SegmentReader<'a> {
    dir: &'a Path,
    open: Option<(i64, File)>,
}

impl<'a> SegmentReader<'a> {
    pub fn new(dir: &'a Path) -> SegmentReader<'a> {
        SegmentReader { dir, open: None }
    }

    /// The text of the block starting at `first_seq`, which the index puts at `place`.
    pub fn read(&mut self, first_seq: i64, place: Place) -> Result<String, StoreError> {
        let malformed = |reason: String| StoreError::from(MalformedBlock { first_seq, reason });
        let name = file_name(place.segment);
        if self.open.as_ref().map(|o| o.0) != Some(place.segment) {
            let file = File::open(self.dir.join(&name))
                .map_err(|e| malformed(format!("its segment file {name} cannot be read: {e}")))?;
            self.open = Some((place.segment, file));
        }
        let Some((_, file)) = &self.open else {
            return Err(malformed(format!("its segment file {name} is not open")));
        };
        let (Ok(offset), Ok(length)) = (u64::try_from(place.offset), usize::try_from(place.length))
        else {
            return Err(malformed(format!(
                "its place in {name} is not a place ({} bytes at {})",
                place.length, place.offset
            )));
        };
        let mut bytes = vec![0u8; length];
        file.read_exact_at(&mut bytes, offset).map_err(|e| {
            malformed(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                format!("its segment file {name} ends before the {length} bytes at {offset} the index points to")
            } else {
                format!("its segment file {name} cannot be read: {e}")
            })
        })?;
        String::from_utf8(bytes).map_err(|_| malformed("is not UTF-8 text".into()))
    }

    /// Whether the block's bytes are all in its segment (the file is long enough).
    pub fn present(&self, place: Place) -> bool {
        std::fs::metadata(self.dir.join(file_name(place.segment)))
            .is_ok_and(|m| m.len() as i64 >= place.offset.saturating_add(place.length))
    }
}

/// Removes the segments older than the newest one `referenced` keeps that it no longer needs
/// (after an archive). The newest referenced one, and any newer (the writer's current segment,
/// perhaps not yet indexed), are kept.
pub fn remove_unreferenced(dir: &Path, referenced: &BTreeSet<i64>) -> std::io::Result<usize> {
    let Some(&newest) = referenced.last() else {
        return Ok(0);
    };
    let mut removed = 0;
    for id in list(dir)? {
        if id < newest && !referenced.contains(&id) {
            std::fs::remove_file(dir.join(file_name(id)))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_read_back_from_where_they_were_appended() {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join("audit-segments");
        let mut w = SegmentWriter::new(seg.clone());
        let a = w.append(1, b"1\tone\n").unwrap();
        let b = w.append(2, b"2\ttwo\n3\tthree\n").unwrap();
        assert_eq!((a.segment, a.offset, a.length), (1, 0, 6));
        assert_eq!((b.segment, b.offset, b.length), (1, 6, 14));
        let mut r = SegmentReader::new(&seg);
        assert_eq!(r.read(2, b).unwrap(), "2\ttwo\n3\tthree\n");
        assert_eq!(r.read(1, a).unwrap(), "1\tone\n");
        // A writer opened later goes on after what is there, in the same segment.
        let mut w = SegmentWriter::new(seg.clone());
        let c = w.append(4, b"4\tfour\n").unwrap();
        assert_eq!((c.segment, c.offset), (1, 20));
        assert!(r.present(c));
    }

    #[test]
    fn a_short_or_missing_segment_is_named_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join("audit-segments");
        let mut w = SegmentWriter::new(seg.clone());
        let a = w.append(7, b"7\tseven\n").unwrap();
        let mut r = SegmentReader::new(&seg);
        let past = Place {
            offset: a.offset + 1,
            ..a
        };
        assert!(!r.present(past));
        let e = r.read(7, past).unwrap_err().to_string();
        assert!(
            e.contains("block from record 7") && e.contains("ends before"),
            "{e}"
        );
        let elsewhere = Place { segment: 99, ..a };
        let e = r.read(7, elsewhere).unwrap_err().to_string();
        assert!(e.contains("00000000000000000099.seg"), "{e}");
    }

    #[test]
    fn only_segments_older_than_the_newest_kept_one_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        for id in [1, 5, 9, 12] {
            std::fs::write(dir.path().join(file_name(id)), b"x").unwrap();
        }
        let removed = remove_unreferenced(dir.path(), &BTreeSet::from([5, 9])).unwrap();
        assert_eq!(removed, 1);
        assert_eq!(list(dir.path()).unwrap(), vec![5, 9, 12]);
        assert_eq!(
            remove_unreferenced(dir.path(), &BTreeSet::new()).unwrap(),
            0
        );
    }
}
