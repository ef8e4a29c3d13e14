//! Bearer tokens: generation, hashing for storage, and constant-time comparison.
//!
//! Tokens are 32 random bytes, base64url, behind a prefix that says what they are
//! (`ghs_` for gateway sessions, `ghr_` for their refresh tokens, `gha_` for service accounts) so
//! leaked tokens are recognisable.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SESSION_PREFIX: &str = "ghs_";
pub const SERVICE_ACCOUNT_PREFIX: &str = "gha_";
pub const REFRESH_PREFIX: &str = "ghr_";

/// A fresh random token with the given prefix.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub fn sha256_hex(token: &str) -> String {
    hex::encode(sha256(token))
}

/// Constant-time equality of two digests.
pub fn digest_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// Constant-time equality of two strings (lengths may leak, contents do not).
pub fn str_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The PKCE `S256` challenge of a verifier (RFC 7636 section 4.2).
pub fn pkce_s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A random opaque identifier (sessions, connections) that is safe to show.
pub fn random_id() -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_hash_stably() {
        let a = generate(SESSION_PREFIX);
        let b = generate(SESSION_PREFIX);
        assert!(a.starts_with("ghs_") && a.len() > 40 && a != b);
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(digest_eq(&sha256("x"), &sha256("x")));
        assert!(!digest_eq(&sha256("x"), &sha256("y")));
    }

    #[test]
    fn pkce_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(str_eq("abc", "abc") && !str_eq("abc", "abd") && !str_eq("a", "ab"));
    }
}
