//! Retention: records older than a cutoff move from the live trail into archive files under
//! `data_dir/archive/`, but only after the whole trail verifies; the archive's hash and its
//! place in the chain are recorded, so `audit verify` still proves the trail from the first
//! record on. Nothing is ever deleted unverified.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::verify::{self, Break, VerifyError};
use crate::store::{ArchivedRange, AuditDb, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the trail does not verify, so nothing was archived: record {}: {}", .0.seq, .0.reason)]
    Unverified(Break),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("archive")
}

/// Archives every record timestamped before `before` (RFC 3339). Returns the range moved, or
/// `None` when there was nothing to move.
pub fn archive_before(
    data_dir: &Path,
    before: &str,
) -> Result<Option<ArchivedRange>, ArchiveError> {
    if let Err(b) = verify::verify(data_dir)? {
        return Err(ArchiveError::Unverified(b));
    }
    let mut db = AuditDb::open(&super::db_path(data_dir))?;
    let first = db.archives()?.last().map_or(1, |a| a.last_seq + 1);
    let Some(last) = db.last_seq_before(before)? else {
        return Ok(None);
    };
    if last < first {
        return Ok(None);
    }
    let rows = db.range(first, last)?;
    let Some(last_row) = rows.last() else {
        return Ok(None);
    };
    let mut body = Vec::new();
    for r in &rows {
        body.extend(serde_json::to_vec(r).unwrap_or_default());
        body.push(b'\n');
    }
    let folder = dir(data_dir);
    let name = format!("audit-{first:012}-{last:012}.jsonl");
    let path = folder.join(&name);
    let write = |p: &Path, data: &[u8]| -> std::io::Result<()> {
        std::fs::create_dir_all(&folder)?;
        let tmp = p.with_extension("jsonl.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, p)?;
        std::fs::File::open(&folder)?.sync_all()
    };
    write(&path, &body).map_err(|source| ArchiveError::Write {
        path: path.clone(),
        source,
    })?;
    let range = ArchivedRange {
        first_seq: first,
        last_seq: last,
        last_hash: last_row.hash.clone(),
        file: name,
        file_sha256: super::chain::hash_hex_bytes(&body),
        archived_at: super::record::rfc3339_micros(std::time::SystemTime::now()),
    };
    db.commit_archive(&range)?;
    tracing::info!(first, last, file = %path.display(), "archived audit records");
    Ok(Some(range))
}

/// Runs retention hourly when `days` is set.
pub fn spawn(data_dir: PathBuf, days: u64) {
    if days == 0 {
        return;
    }
    tokio::spawn(async move {
        loop {
            let cutoff = chrono::Utc::now() - chrono::Duration::days(days as i64);
            let before = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let dd = data_dir.clone();
            match tokio::task::spawn_blocking(move || archive_before(&dd, &before)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "audit retention skipped"),
                Err(e) => tracing::error!(error = %e, "audit retention task failed"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    });
}
