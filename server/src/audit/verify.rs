//! `gatehouse-server audit verify`: walks the whole trail and proves it intact, or names the
//! first record that is not.

use std::path::Path;

use ed25519_dalek::VerifyingKey;

use super::chain;
use super::record::AuditRecord;
use crate::store::postgres::PgStore;
use crate::store::{AuditDb, Checkpoint, StoreError, StoredRecord};

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
    /// The chain's replica in a shared store: a record naming another is not this chain's.
    replica: Option<String>,
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
                Ok(rec) if rec.replica.is_some() && rec.replica != self.replica => fail(format!(
                    "record {}: belongs to the chain of replica {} (moved)",
                    r.seq,
                    rec.replica.as_deref().unwrap_or_default()
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
        replica: None,
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
    let checkpoints = db.checkpoints()?;
    let checkpointed: std::collections::HashMap<i64, usize> = checkpoints
        .iter()
        .enumerate()
        .map(|(i, cp)| (cp.seq, i))
        .collect();
    let mut hashes: Vec<Option<String>> = vec![None; checkpoints.len()];
    let mut broken: Option<Break> = None;
    let scanned = db.scan(|r| {
        broken = chk.check(&r);
        if let Some(&i) = checkpointed.get(&r.seq) {
            hashes[i] = Some(r.hash.clone());
        }
        broken.is_none()
    });
    match scanned {
        Err(StoreError::MalformedAudit(m)) => {
            return Ok(Err(Break {
                seq: chk.expected_seq,
                reason: format!("record {}: {m} (edited)", chk.expected_seq),
            }))
        }
        other => other?,
    }
    if let Some(b) = broken {
        return Ok(Err(b));
    }
    let records = chk.expected_seq - 1;
    if let Err(b) = check_checkpoints(&key, &checkpoints, &hashes, records) {
        return Ok(Err(b));
    }
    Ok(Ok(Summary {
        records,
        checkpoints: checkpoints.len(),
        last_checkpoint: checkpoints.last().map(|c| c.seq),
    }))
}

/// Each checkpoint's signature, and that the record it names is there with the hash it signed
/// (`hashes[i]`: the hash of the record `checkpoints[i]` names, if the trail has it).
fn check_checkpoints(
    key: &VerifyingKey,
    checkpoints: &[Checkpoint],
    hashes: &[Option<String>],
    records: i64,
) -> Result<(), Break> {
    for (c, hash) in checkpoints.iter().zip(hashes) {
        if !chain::verify(
            key,
            &chain::checkpoint_message(c.seq, &c.hash, &c.ts),
            &c.signature,
        ) {
            return Err(Break {
                seq: c.seq,
                reason: format!(
                    "checkpoint at record {}: bad signature (forged or altered)",
                    c.seq
                ),
            });
        }
        match hash {
            None => {
                return Err(Break {
                    seq: c.seq,
                    reason: format!(
                    "checkpoint at record {} but the trail ends at record {records} (truncated)",
                    c.seq
                ),
                })
            }
            Some(h) if *h != c.hash => {
                return Err(Break {
                    seq: c.seq,
                    reason: format!(
                        "record {}: differs from its signed checkpoint (rewritten)",
                        c.seq
                    ),
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// One replica's chain in a shared store, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    pub replica: String,
    /// The first 16 hex digits of the SHA-256 of the key its checkpoints are signed with, to
    /// compare with `audit-signing.key` on that replica.
    pub key_fingerprint: String,
    pub summary: Summary,
}

/// Checks every replica's chain in a shared store as [`verify`] checks a gateway's own trail,
/// each against the public key its replica registered; this replica's registered key must be
/// the one in `data_dir`. Returns the chains, or the first break and its replica.
pub async fn verify_shared(
    store: &PgStore,
    data_dir: &Path,
    own_replica: &str,
) -> Result<Result<Vec<ChainSummary>, (String, Break)>, VerifyError> {
    let own_key = chain::load_key(&chain::key_path(data_dir))
        .ok()
        .map(|k| k.verifying_key());
    let mut chains = Vec::new();
    for c in store.audit_chains().await? {
        let broken = |b: Break| Ok(Err((c.replica.clone(), b)));
        let Some(public_key) = &c.public_key else {
            return broken(Break {
                seq: 0,
                reason: "its chain has records but no registered public key (deleted)".into(),
            });
        };
        let key = match <[u8; 32]>::try_from(public_key.as_slice())
            .ok()
            .and_then(|k| VerifyingKey::from_bytes(&k).ok())
        {
            Some(k) => k,
            None => {
                return broken(Break {
                    seq: 0,
                    reason: "its registered public key is malformed".into(),
                })
            }
        };
        if c.replica == own_replica && own_key.is_some_and(|own| own != key) {
            return broken(Break {
                seq: 0,
                reason: "its registered public key is not this replica's audit-signing.key \
                         (replaced in the store)"
                    .into(),
            });
        }
        let checkpoints = store.audit_checkpoints(&c.replica).await?;
        let mut hashes: Vec<Option<String>> = vec![None; checkpoints.len()];
        let checkpointed: std::collections::HashMap<i64, usize> = checkpoints
            .iter()
            .enumerate()
            .map(|(i, cp)| (cp.seq, i))
            .collect();
        let mut chk = ChainCheck {
            expected_seq: 1,
            prev: String::new(),
            replica: Some(c.replica.clone()),
        };
        loop {
            let page = store
                .audit_chain_page(&c.replica, chk.expected_seq - 1, 5000)
                .await?;
            if page.is_empty() {
                break;
            }
            for r in &page {
                if let Some(b) = chk.check(r) {
                    return broken(b);
                }
                if let Some(&i) = checkpointed.get(&r.seq) {
                    hashes[i] = Some(r.hash.clone());
                }
            }
        }
        let records = chk.expected_seq - 1;
        if let Err(b) = check_checkpoints(&key, &checkpoints, &hashes, records) {
            return broken(b);
        }
        chains.push(ChainSummary {
            replica: c.replica.clone(),
            key_fingerprint: chain::hash_hex_bytes(public_key)[..16].to_string(),
            summary: Summary {
                records,
                checkpoints: checkpoints.len(),
                last_checkpoint: checkpoints.last().map(|c| c.seq),
            },
        });
    }
    Ok(Ok(chains))
}
