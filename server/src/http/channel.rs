//! Long-lived HTTP channels held to what their token is worth now: the `/events` stream, and
//! MCP sessions with the answers they stream (`http/mcp.rs`).
//!
//! A request is authenticated once, when it arrives; a channel lives on. So an open channel
//! asks again every [`RECHECK`], and before it delivers anything: is the token still accepted
//! (not logged out, revoked, rotated, replaced by a refresh or expired), and does the identity
//! still have every group it had when the channel opened (API memberships included)? When the
//! answer is no, the channel ends, within two seconds of the change, and the end is audited as
//! `channel.close` with the reason, as an ended database connection's `connection.close` is.
//! What a channel delivers is filtered by the identity as it is now.
//!
//! Database connections and the tunnels that carry them follow their session in `pg::access`
//! and `pg::connections`; console requests are each authenticated on their own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audit::{AuditRecord, Pending};
use crate::gateway::Gateway;
use crate::identity::{AuthError, Identity};

/// How often an open channel asks again; it ends within two seconds of a change.
pub const RECHECK: Duration = Duration::from_secs(1);

/// One open channel: what it is, the token it was opened with and the identity it had then.
#[derive(Clone)]
pub struct Channel {
    gw: Arc<Gateway>,
    kind: &'static str,
    token: String,
    opened: Identity,
    opened_at: Instant,
    /// The channel's own id where it has one (an MCP session's), for the audit.
    id: Option<String>,
}

impl Channel {
    /// A channel of `kind` (`events`, `mcp`) opened by `identity` with `token`.
    pub fn open(gw: Arc<Gateway>, kind: &'static str, token: String, identity: Identity) -> Self {
        Channel {
            gw,
            kind,
            token,
            opened: identity,
            opened_at: Instant::now(),
            id: None,
        }
    }

    /// The same channel, named (an MCP session id).
    pub fn with_id(mut self, id: &str) -> Self {
        self.id = Some(id.to_string());
        self
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gw
    }

    /// The identity the channel was opened by.
    pub fn identity(&self) -> &Identity {
        &self.opened
    }

    /// The same identity presenting a newer token (a refreshed session): the channel follows
    /// that one from now on.
    pub fn renew(&mut self, token: &str) {
        self.token = token.to_string();
    }

    /// What the token is worth now: the identity with its groups as they are at this moment,
    /// or why the channel must end. A store that cannot answer ends it too (fail closed; the
    /// client may open a new one).
    pub async fn check(&self) -> Result<Identity, String> {
        let who = &self.opened.name;
        let what = if self.opened.session_id.is_some() {
            format!("the session of \"{who}\"")
        } else {
            format!("the token of \"{who}\"")
        };
        match self.gw.auth.authenticate_token(&self.token).await {
            Ok(now) => {
                if let Some(lost) = self.opened.groups.iter().find(|g| !now.groups.contains(g)) {
                    return Err(format!("\"{who}\" is no longer in group \"{lost}\""));
                }
                Ok(now)
            }
            Err(AuthError::Revoked) => Err(format!("{what} was logged out or revoked")),
            Err(AuthError::Expired) => Err(format!("{what} expired")),
            Err(AuthError::InvalidCredentials) => Err(format!(
                "{what} is no longer accepted (refreshed, rotated or removed)"
            )),
            Err(AuthError::Store(e)) => {
                tracing::error!(error = %e, channel = self.kind, "cannot re-check a channel's token");
                Err("the gateway cannot verify the session right now".into())
            }
        }
    }

    /// Records that the gateway ended the channel, and why.
    pub async fn close(&self, reason: &str) {
        tracing::info!(
            identity = %self.opened.name,
            channel = self.kind,
            id = self.id.as_deref().unwrap_or(""),
            reason,
            "channel ended"
        );
        let mut r = AuditRecord::new("channel.close").by(&self.opened);
        r.duration_ms = Some((self.opened_at.elapsed().as_secs_f64() * 1e6).round() / 1e3);
        if self.kind == "mcp" {
            r.via = Some("mcp".into());
        }
        r.details = Some(serde_json::json!({
            "channel": self.kind,
            "id": self.id,
            "reason": format!("terminated: {reason}"),
        }));
        self.gw.audit.record(Pending::Record(Box::new(r))).await;
    }
}
