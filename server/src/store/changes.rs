//! Changes announced to the other replicas that share a PostgreSQL store. A replica that
//! changes shared state through its API announces what changed once the write is done; every
//! other replica hears it (`LISTEN`) and re-reads what it keeps in memory or ends the
//! connections the change took away (`crate::replicas`). With the SQLite store there is no
//! other replica and announcing does nothing.
//!
//! A notice is a hint, never the state itself: whatever it says is read again from the store,
//! and a replica that missed notices (its listening connection dropped) re-reads everything.

use serde::{Deserialize, Serialize};

use super::Store;

/// What changed, as small as PostgreSQL's 8000-byte notification payload needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "topic", rename_all = "snake_case")]
pub enum Change {
    /// API grants changed; `by` is the administrator (for the reason ended connections get).
    Grants { by: Option<String> },
    /// API group memberships changed.
    Groups { by: Option<String> },
    /// A new version of the API-managed rules.
    Rules,
    /// Masking overrides or exemptions changed.
    Masking,
    /// A session was logged out or revoked: its connections end with `why`.
    SessionEnded { id: String, why: String },
    /// An API service account was revoked or rotated: its connections end with `why`.
    AccountEnded { name: String, why: String },
    /// An approval was created or changed (`event`: `created`, `decided`, `withdrawn`, ...).
    Approval { id: String, event: String },
    /// A client's CancelRequest reached a replica that did not issue its key: the replica that
    /// did (the secret matches one of its keys) forwards it to its upstream.
    Cancel { pid: i32, secret: i32 },
}

/// A change and the replica that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub origin: String,
    #[serde(flatten)]
    pub change: Change,
}

/// The notification channel every replica listens on.
pub const CHANNEL: &str = "gatehouse_changes";

impl Store {
    /// Tells the other replicas about `change`, without waiting; nothing with SQLite. A
    /// notice that cannot be sent is logged: the others' periodic re-read catches up.
    pub fn announce(&self, change: Change) {
        if let Some(pg) = self.pg() {
            pg.announce(change);
        }
    }
}
