//! A lone gateway's trail into the shared store (`migrate-store --replica`): verified where it
//! is, copied as it is (same records, hashes and signed checkpoints) as the chain of the
//! replica that will go on writing it, then verified again in the store. The replica keeps its
//! `data_dir` (its `audit-signing.key`), so its chain goes on where the file's ended.

use std::path::Path;

use super::chain;
use super::verify::{self, Break, VerifyError};
use crate::store::postgres::PgStore;
use crate::store::{AuditDb, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the trail in {dir} does not verify, so it was not copied: record {}: {}", .broken.seq, .broken.reason)]
    Unverified { dir: String, broken: Break },
    #[error("the trail has archived records (audit retention); a shared store's chain starts at its first record, so keep the archives with the old data_dir and copy a trail without them")]
    Archived,
    #[error("after the copy, the shared store's chain `{replica}` does not verify: record {}: {}", .broken.seq, .broken.reason)]
    CopyBroken { replica: String, broken: Break },
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Key(#[from] chain::KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What was copied.
#[derive(Debug)]
pub struct Imported {
    pub records: usize,
    pub checkpoints: usize,
}

/// Copies the trail of `data_dir` (if it has one) into `store` as `replica`'s chain. Blocks;
/// call it from a command, not from async code.
pub fn into_shared(
    data_dir: &Path,
    store: &PgStore,
    replica: &str,
) -> Result<Option<Imported>, ImportError> {
    let path = super::db_path(data_dir);
    if !path.exists() {
        return Ok(None);
    }
    if let Err(broken) = verify::verify(data_dir)? {
        return Err(ImportError::Unverified {
            dir: data_dir.display().to_string(),
            broken,
        });
    }
    let db = AuditDb::open_read_only(&path)?;
    if !db.archives()?.is_empty() {
        return Err(ImportError::Archived);
    }
    let mut records = Vec::new();
    db.scan(|r| {
        records.push(r);
        true
    })?;
    if records.is_empty() {
        return Ok(None);
    }
    let checkpoints = db.checkpoints()?;
    let public_key = chain::load_key(&chain::key_path(data_dir))?
        .verifying_key()
        .to_bytes()
        .to_vec();
    let imported = Imported {
        records: records.len(),
        checkpoints: checkpoints.len(),
    };
    let (s, r) = (store.clone(), replica.to_string());
    store.run_blocking(async move {
        s.import_audit_chain(&r, public_key, records, checkpoints)
            .await
    })??;
    let (s, d, r) = (store.clone(), data_dir.to_path_buf(), replica.to_string());
    let verified = store.run_blocking(async move { verify::verify_shared(&s, &d, &r).await })??;
    match verified {
        Ok(_) => Ok(Some(imported)),
        Err((replica, broken)) => Err(ImportError::CopyBroken { replica, broken }),
    }
}
