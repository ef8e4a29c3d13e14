//! SQL text handling that needs no full parse: a lexer, statement fingerprints with a coarse
//! classification, and redaction of sensitive literals.
//!
//! Architecture invariant: pure functions over text; no I/O, no knowledge of sessions.

pub mod fingerprint;
pub mod lexer;
pub mod redact;

pub use fingerprint::{has_backslash_string, shape, shape_into, shape_key, Fingerprint, Shape};
pub use redact::{literals_masked, redact};

use std::sync::Arc;

/// Whether `hay` holds `needle` ignoring ASCII case. The statement path asks this of every
/// statement's text for a few rare words (`application_name`, `current_setting`,
/// `encoding`), so it is one pass looking for the needle's first byte and a comparison only
/// where that byte is, not a window compared at every position.
pub fn mentions(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let Some(last_start) = hay.len().checked_sub(needle.len()) else {
        return false;
    };
    // memchr's vector search finds the candidates; most texts have few of them.
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    memchr::memchr2_iter(lower, upper, &hay[..=last_start])
        .any(|i| hay[i + 1..i + needle.len()].eq_ignore_ascii_case(rest))
}

/// A statement's text with what one pass over it tells: computed once when the statement
/// arrives (a prepared statement: once for all its executions) and shared from then on.
#[derive(Debug)]
pub struct Statement {
    pub sql: Arc<str>,
    pub fingerprint: Fingerprint,
    pub kinds: Vec<String>,
    pub may_write: bool,
    /// What the classification and lineage caches look it up by ([`shape_key`]), made in the
    /// same pass: no execution lexes the text again.
    pub shape_key: String,
    /// See [`has_backslash_string`].
    pub backslash_string: bool,
    /// The text with its literals redacted, as a JSON string: what every audit record of the
    /// statement carries, made at its first record (a prepared statement's executions share it).
    audit_text: std::sync::OnceLock<Box<str>>,
}

impl Statement {
    pub fn new(sql: &str) -> Arc<Statement> {
        // The key is the text's tokens lower-cased, a separator after each and literals
        // shortened to two characters: about the text's length and a quarter. Sized once, it
        // is one allocation instead of a doubling series of them.
        let mut shape_key = String::with_capacity(sql.len() + sql.len() / 4 + 16);
        let shape = shape_into(sql, Some(&mut shape_key));
        Arc::new(Statement {
            sql: Arc::from(sql),
            fingerprint: shape.fingerprint,
            kinds: shape.kinds,
            may_write: shape.may_write,
            shape_key,
            backslash_string: shape.backslash_string,
            audit_text: std::sync::OnceLock::new(),
        })
    }

    /// The redacted text as a JSON string (quotes included), made once per statement.
    pub fn audit_text(&self, to_json: impl FnOnce(&str) -> String) -> &str {
        self.audit_text
            .get_or_init(|| to_json(&redact(&self.sql)).into_boxed_str())
    }
}
