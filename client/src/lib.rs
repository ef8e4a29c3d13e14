//! Gatehouse client library: SSO login, the gateway's HTTP API and local tunnels.
//!
//! Empty until the client issue lands; the crate exists so the workspace layout matches the design.
#![forbid(unsafe_code)]
