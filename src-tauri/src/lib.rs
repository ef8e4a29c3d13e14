//! Gatehouse desktop app: a Tauri v2 shell over `gatehouse-client`.
//!
//! Empty until the desktop issue lands; Tauri is not a dependency yet so that builds stay fast.
#![forbid(unsafe_code)]
