//! The PostgreSQL side of the gateway: the listener, one session per client connection, the
//! wire codec, the upstream connector and the relay between them.
//!
//! Architecture invariant: this is the only module that touches PostgreSQL sockets. It uses
//! identity (and later policy, masking, audit) through their narrow interfaces; none of those
//! know about frames.

pub mod access;
pub mod app_name;
pub mod cancel;
pub mod catalog;
pub mod codec;
pub mod connections;
pub mod encoding;
pub mod error;
pub mod estimate;
pub mod function_call;
pub mod gate;
pub mod handshake;
pub mod listener;
pub mod loopback;
pub mod names;
pub mod notices;
pub mod refusal_board;
pub mod relay;
pub mod sched;
pub mod session;
pub mod startup_options;
pub mod statement;
pub mod stop;
pub mod stream;
pub mod tls;
pub mod tracker;
pub mod upstream;
pub mod verdicts;
pub mod wire;
pub mod workers;
