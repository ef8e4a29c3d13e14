//! SQL text handling that needs no full parse: a lexer, statement fingerprints with a coarse
//! classification, and redaction of sensitive literals.
//!
//! Architecture invariant: pure functions over text; no I/O, no knowledge of sessions.

pub mod fingerprint;
pub mod lexer;
pub mod redact;

pub use fingerprint::{has_backslash_string, shape, shape_key, Fingerprint, Shape};
pub use redact::redact;

use std::sync::Arc;

/// A statement's text with what one pass over it tells: computed once when the statement
/// arrives (a prepared statement: once for all its executions) and shared from then on.
#[derive(Debug)]
pub struct Statement {
    pub sql: Arc<str>,
    pub fingerprint: Fingerprint,
    pub kinds: Vec<String>,
    pub may_write: bool,
}

impl Statement {
    pub fn new(sql: &str) -> Arc<Statement> {
        let shape = shape(sql);
        Arc::new(Statement {
            sql: Arc::from(sql),
            fingerprint: shape.fingerprint,
            kinds: shape.kinds,
            may_write: shape.may_write,
        })
    }
}
