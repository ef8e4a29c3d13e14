//! Personal-data handling. For now: the value detectors, used to redact audit records; the
//! masking of result rows builds on them.
//!
//! Architecture invariant: pure code; no I/O, no knowledge of the wire protocol.

pub mod detect;
