//! `gatehouse-server audit verify`: walks the whole trail and proves it intact, or names the
//! first record that is not.

use std::path::Path;

use super::chain;
use super::record::AuditRecord;
use crate::store::{AuditDb, StoredRecord};

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The record (or checkpoint) sequence number where the chain breaks.
    pub seq: i64,
    pub reason: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub records: i64,
    pub checkpoints: usize,
    pub last_checkpoint: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Key(#[from] chain::KeyError),
}

/// Follows the chain record by record.
struct ChainCheck {
    expected_seq: i64,
    prev: String,
}

impl ChainCheck {
    fn check(&mut self, r: &StoredRecord) -> Option<Break> {
        let fail = |reason: String| Some(Break { seq: r.seq, reason });
        let expected_seq = self.expected_seq;
        let broken = if r.seq != expected_seq {
            Some(Break {
                seq: expected_seq,
                reason: format!(
                    "record {expected_seq} is missing (the next record found is {})",
                    r.seq
                ),
            })
        } else if chain::hash_hex(&r.json) != r.hash {
            fail(format!(
                "record {}: its content does not match its hash (edited)",
                r.seq
            ))
        } else {
            match serde_json::from_str::<AuditRecord>(&r.json) {
                Err(e) => fail(format!("record {}: unreadable content: {e}", r.seq)),
                Ok(rec) if rec.seq != r.seq => fail(format!(
                    "record {}: holds the content of record {} (reordered)",
                    r.seq, rec.seq
                )),
                Ok(rec) if rec.prev_hash != self.prev => fail(format!(
                    "record {}: does not follow record {} (chain broken)",
                    r.seq,
                    r.seq - 1
                )),
                Ok(rec)
                    if rec.event != r.event
                        || rec.ts != r.ts
                        || rec.identity != r.identity
                        || rec.environment != r.environment
                        || rec.connection_id != r.connection_id =>
                {
                    fail(format!(
                        "record {}: its indexed columns differ from its hashed content (edited)",
                        r.seq
                    ))
                }
                Ok(_) => None,
            }
        };
        self.prev = r.hash.clone();
        self.expected_seq += 1;
        broken
    }
}

/// Checks the archived files, then every live record's hash and link, the indexed columns
/// against the hashed content, and every checkpoint's signature against the record it names.
pub fn verify(data_dir: &Path) -> Result<Result<Summary, Break>, VerifyError> {
    let db = AuditDb::open_read_only(&super::db_path(data_dir))?;
    let key = chain::load_key(&chain::key_path(data_dir))?.verifying_key();
    let mut chk = ChainCheck {
        expected_seq: 1,
        prev: String::new(),
    };
    for a in db.archives()? {
        let path = super::archive::dir(data_dir).join(&a.file);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) => {
                return Ok(Err(Break {
                    seq: a.first_seq,
                    reason: format!("archive {} cannot be read: {e}", path.display()),
                }))
            }
        };
        if chain::hash_hex_bytes(&data) != a.file_sha256 {
            return Ok(Err(Break {
                seq: a.first_seq,
                reason: format!("archive {} was altered (its sha256 differs)", a.file),
            }));
        }
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let r: StoredRecord = match serde_json::from_slice(line) {
                Ok(r) => r,
                Err(e) => {
                    return Ok(Err(Break {
                        seq: chk.expected_seq,
                        reason: format!("archive {}: unreadable line: {e}", a.file),
                    }))
                }
            };
            if let Some(b) = chk.check(&r) {
                return Ok(Err(b));
            }
        }
        if chk.expected_seq != a.last_seq + 1 || chk.prev != a.last_hash {
            return Ok(Err(Break {
                seq: a.last_seq,
                reason: format!("archive {} does not end where its index says", a.file),
            }));
        }
    }
    let mut broken: Option<Break> = None;
    db.scan(|r| {
        broken = chk.check(&r);
        broken.is_none()
    })?;
    if let Some(b) = broken {
        return Ok(Err(b));
    }
    let records = chk.expected_seq - 1;
    let checkpoints = db.checkpoints()?;
    for c in &checkpoints {
        if !chain::verify(
            &key,
            &chain::checkpoint_message(c.seq, &c.hash, &c.ts),
            &c.signature,
        ) {
            return Ok(Err(Break {
                seq: c.seq,
                reason: format!(
                    "checkpoint at record {}: bad signature (forged or altered)",
                    c.seq
                ),
            }));
        }
        match db.record(c.seq)? {
            None => {
                return Ok(Err(Break {
                    seq: c.seq,
                    reason: format!(
                    "checkpoint at record {} but the trail ends at record {records} (truncated)",
                    c.seq
                ),
                }))
            }
            Some(r) if r.hash != c.hash => {
                return Ok(Err(Break {
                    seq: c.seq,
                    reason: format!(
                        "record {}: differs from its signed checkpoint (rewritten)",
                        c.seq
                    ),
                }))
            }
            Some(_) => {}
        }
    }
    Ok(Ok(Summary {
        records,
        checkpoints: checkpoints.len(),
        last_checkpoint: checkpoints.last().map(|c| c.seq),
    }))
}
