//! SQL text handling that needs no full parse: a lexer, statement fingerprints with a coarse
//! classification, and redaction of sensitive literals.
//!
//! Architecture invariant: pure functions over text; no I/O, no knowledge of sessions.

pub mod fingerprint;
pub mod lexer;
pub mod redact;

pub use fingerprint::{has_backslash_string, shape, shape_key, Fingerprint, Shape};
pub use redact::redact;
