//! The tamper evidence: each record's hash covers its canonical encoding, which includes the
//! previous record's hash; checkpoints sign `(seq, hash, ts)` with an Ed25519 key kept in
//! `data_dir`, so truncation and rewriting of the whole chain are caught as well.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the audit signing key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the audit signing key {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the audit signing key {0} is not 32 bytes")]
    Malformed(PathBuf),
}

pub fn hash_hex(canonical: &str) -> String {
    hash_hex_bytes(canonical.as_bytes())
}

pub fn hash_hex_bytes(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// [`hash_hex`] into a buffer, with no allocation (the writer's path, once per record).
pub fn hash_hex_into<'a>(data: &[u8], out: &'a mut [u8; 64]) -> &'a str {
    let _ = hex::encode_to_slice(Sha256::digest(data), out);
    // Hex digits are ASCII; the check is over 64 bytes.
    std::str::from_utf8(out).unwrap_or_default()
}

/// The message a checkpoint signs.
pub fn checkpoint_message(seq: i64, hash: &str, ts: &str) -> Vec<u8> {
    format!("gatehouse-audit-checkpoint\n{seq}\n{hash}\n{ts}").into_bytes()
}

pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("audit-signing.key")
}

/// Loads the signing key, creating it (mode 0600) on first use.
pub fn load_or_create_key(data_dir: &Path) -> Result<SigningKey, KeyError> {
    let path = key_path(data_dir);
    if path.exists() {
        return load_key(&path);
    }
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| KeyError::Write {
            path: path.clone(),
            source,
        })?;
    f.write_all(&key.to_bytes())
        .map_err(|source| KeyError::Write {
            path: path.clone(),
            source,
        })?;
    Ok(key)
}

pub fn load_key(path: &Path) -> Result<SigningKey, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.into(),
        source,
    })?;
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::Malformed(path.into()))?;
    Ok(SigningKey::from_bytes(&arr))
}

pub fn sign(key: &SigningKey, msg: &[u8]) -> Vec<u8> {
    key.sign(msg).to_bytes().to_vec()
}

pub fn verify(key: &VerifyingKey, msg: &[u8], signature: &[u8]) -> bool {
    Signature::from_slice(signature)
        .map(|s| key.verify(msg, &s).is_ok())
        .unwrap_or(false)
}
