//! Gatehouse gateway server: an identity-aware PostgreSQL proxy.
//!
//! A statement's life: a client connects to [`pg::listener`], [`pg::session`] authenticates it
//! through [`identity`], opens an upstream with [`pg::upstream`] and relays with [`pg::relay`].
//! The HTTP API lives in [`http`]; state shared by both is the [`gateway::Gateway`].
// One system call has no safe wrapper: `pg::sched` allows itself unsafe code, nothing else.
#![deny(unsafe_code)]

pub mod approval;
pub mod audit;
pub mod bytewise;
pub mod config;
pub mod gateway;
pub mod http;
pub mod identity;
pub mod masking;
pub mod mcp;
pub mod pg;
pub mod policy;
pub mod reload_gate;
pub mod replicas;
pub mod serve;
pub mod sql;
pub mod store;
