//! Gatehouse client library: logging in to a gateway (SSO in the browser with the RFC 8252
//! loopback flow, a local user, or a service token), keeping the session in the OS keychain or a
//! private file and fresh, the gateway's HTTP API, and local tunnels that let any PostgreSQL
//! tool reach an environment through 127.0.0.1 with no password.
//!
//! Used by the `gatehouse` CLI (`src/main.rs`, `src/cli/`) and the desktop app. The pieces:
//! [`login::login`] → [`session::Session`] → [`store::SessionStore`]; [`handle::SessionHandle`]
//! hands out fresh tokens; [`api::ApiClient`] calls the API; [`tunnel::TunnelManager`] runs
//! tunnels.
#![forbid(unsafe_code)]

pub mod api;
pub mod duration;
pub mod error;
pub mod handle;
pub mod login;
pub mod ports;
pub mod session;
pub mod store;
pub mod tls;
pub mod tunnel;

pub use error::{Error, Result};
pub use handle::SessionHandle;
pub use ports::{start_stable, PortBook};
pub use session::{Session, Trust};
pub use store::{SessionStore, StoreKind};
pub use tunnel::{TunnelInfo, TunnelManager, TunnelSpec};
