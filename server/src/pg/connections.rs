//! The registry of open client connections: who is connected where, for the live view, and a
//! way to end a connection from outside its task (an admin's terminate, a revoked session,
//! access taken away by a deleted or expired grant or a removed group membership, a session
//! that ended).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::stop::Stop;

/// What is known about an open connection.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectionInfo {
    pub id: String,
    pub identity: String,
    pub identity_kind: String,
    /// The gateway session behind the token, when it was a session token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    pub environment: String,
    pub database: String,
    pub client_addr: String,
    pub application_name: Option<String>,
    pub tls: bool,
    /// Unix seconds.
    pub started_at: i64,
    /// The upstream role a grant pinned for this connection; the environment's own user when
    /// absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_role: Option<String>,
    /// The groups the identity's token carried at connect time (IdP claims at login, config,
    /// service account), without API memberships: with today's memberships merged in, what
    /// the grants are asked again when access is taken away. Not shown in the live view.
    #[serde(skip)]
    pub token_groups: Vec<String>,
    /// When the token the connection was opened with stops being valid for good (Unix
    /// seconds), as known at connect time: a session's absolute end (its refresh token's
    /// expiry, which a refresh does not move) or an API service account's expiry. The expiry
    /// sweep ends the connection then. `None` for tokens that do not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_ends_at: Option<i64>,
}

/// Why a connection is being ended from outside; sent to the client as a FATAL error.
#[derive(Debug, Clone)]
pub struct Termination {
    pub code: crate::pg::error::SqlState,
    pub message: String,
}

struct Entry {
    info: ConnectionInfo,
    stop: Arc<Stop>,
}

#[derive(Clone, Default)]
pub struct Connections {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

/// Held by the connection's task: tells it when to stop, and unregisters it on drop.
pub struct Registration {
    registry: Connections,
    id: String,
    pub stop: Arc<Stop>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, info: ConnectionInfo) -> Registration {
        let stop = Arc::new(Stop::default());
        let id = info.id.clone();
        let entry = Entry {
            info,
            stop: stop.clone(),
        };
        self.lock().insert(id.clone(), entry);
        Registration {
            registry: self.clone(),
            id,
            stop,
        }
    }

    pub fn list(&self) -> Vec<ConnectionInfo> {
        let mut v: Vec<_> = self.lock().values().map(|e| e.info.clone()).collect();
        v.sort_by(|a, b| {
            a.started_at
                .cmp(&b.started_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        v
    }

    /// Ends every connection matching `pred`; returns how many were told to stop.
    pub fn terminate_where(
        &self,
        pred: impl Fn(&ConnectionInfo) -> bool,
        why: Termination,
    ) -> usize {
        self.terminate_each(|c| pred(c).then(|| why.clone()))
    }

    /// Asks `verdict` about every open connection and ends those it gives a reason for (each
    /// its own, e.g. naming its environment); returns how many were told to stop. The
    /// registry stays locked meanwhile, so keep `verdict` cheap and free of waits.
    pub fn terminate_each(
        &self,
        verdict: impl Fn(&ConnectionInfo) -> Option<Termination>,
    ) -> usize {
        let entries = self.lock();
        let mut n = 0;
        for e in entries.values() {
            if let Some(why) = verdict(&e.info) {
                // Counted even when it was already told: it is ending, as asked.
                e.stop.send(why);
                n += 1;
            }
        }
        n
    }

    pub fn terminate(&self, id: &str, why: Termination) -> bool {
        self.terminate_where(|c| c.id == id, why) > 0
    }
}

#[cfg(test)]
impl ConnectionInfo {
    /// A connection of `alice` to `prod` with nothing special, for tests to adjust.
    pub(crate) fn sample(id: &str) -> ConnectionInfo {
        ConnectionInfo {
            id: id.into(),
            identity: "alice".into(),
            identity_kind: "human".into(),
            session_id: None,
            environment: "prod".into(),
            database: "app".into(),
            client_addr: "127.0.0.1:5".into(),
            application_name: None,
            tls: false,
            started_at: 0,
            upstream_role: None,
            token_groups: vec![],
            token_ends_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, session: Option<&str>) -> ConnectionInfo {
        ConnectionInfo {
            session_id: session.map(Into::into),
            ..ConnectionInfo::sample(id)
        }
    }

    #[tokio::test]
    async fn terminate_reaches_only_matching_connections() {
        let c = Connections::default();
        let a = c.register(info("a", Some("s1")));
        let b = c.register(info("b", Some("s2")));
        assert_eq!(c.list().len(), 2);
        let why = Termination {
            code: crate::pg::error::SqlState::AdminShutdown,
            message: "bye".into(),
        };
        assert_eq!(
            c.terminate_where(|i| i.session_id.as_deref() == Some("s1"), why),
            1
        );
        assert_eq!(a.stop.stopped().await.message, "bye");
        assert!(b.stop.reason().is_none());
        drop(b);
        assert_eq!(c.list().len(), 1);
    }

    #[tokio::test]
    async fn each_connection_gets_its_own_verdict() {
        let c = Connections::default();
        let prod = c.register(info("a", None));
        let mut staging_info = info("b", None);
        staging_info.environment = "staging".into();
        let staging = c.register(staging_info);
        let n = c.terminate_each(|i| {
            (i.environment == "prod").then(|| Termination {
                code: crate::pg::error::SqlState::AdminShutdown,
                message: format!("no more {}", i.environment),
            })
        });
        assert_eq!(n, 1);
        assert_eq!(prod.stop.stopped().await.message, "no more prod");
        assert!(staging.stop.reason().is_none());
    }
}
