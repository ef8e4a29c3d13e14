//! Open connections asked again whether they may keep running: after an administrator narrowed
//! access (a grant deleted, a membership removed), when a grant expired, and when the gateway
//! session a connection was opened with ended.
//!
//! A connection is admitted once, in `session::establish`; everything here applies the same
//! rules to connections already open and ends those that no longer pass with a `57P01` that
//! says why (through [`Connections::terminate_each`], which the relay watches).
//!
//! [`sweep_periodically`] is the gateway's one clock-driven task for this: every
//! [`SWEEP_INTERVAL`] it deletes the API grants that have expired (recording `admin.grant.expired`
//! with the gateway as the actor) and ends the connections they alone let in, then ends the
//! connections whose session is over. Admission never waits for it: `Grants::allows` ignores
//! an expired grant from its expiry on, and a session token past its end is refused at login.
//!
//! [`Connections::terminate_each`]: super::connections::Connections::terminate_each

use std::sync::Arc;
use std::time::Duration;

use super::connections::{ConnectionInfo, Termination};
use super::error::SqlState;
use crate::audit::{AuditRecord, Pending};
use crate::gateway::Gateway;
use crate::identity::{GrantError, GrantView, Identity, IdentityKind};

/// How often the sweep looks for expired grants and ended sessions: an expiry takes effect
/// for open connections within this long (new connections are refused at once).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(2);

/// The name the gateway's own audit records carry as their actor.
const GATEWAY_ACTOR: &str = "gatehouse";

/// What narrowed access, for the reason an ended connection is given.
#[derive(Debug, Clone)]
pub enum Cause<'a> {
    /// An administrator's change; `None` when it is not known whose (the re-check a session
    /// makes right after registering).
    Admin(Option<&'a str>),
    /// An API grant reached its expiry (Unix seconds); `requested` when it came from an
    /// approved access request (asked for again, not from an administrator).
    GrantExpired { at: i64, requested: bool },
}

impl Cause<'_> {
    fn revoked(&self, env: &str) -> String {
        match self {
            Cause::Admin(by) => format!("access to environment \"{env}\" was revoked by {}", by_whom(*by)),
            Cause::GrantExpired { at, requested: false } => format!(
                "access to environment \"{env}\" expired at {}: the grant that allowed it ended; ask an administrator for access again",
                rfc3339(*at)
            ),
            Cause::GrantExpired { at, requested: true } => format!(
                "access to environment \"{env}\" expired at {}: the access you requested ended; request it again (gatehouse request {env})",
                rfc3339(*at)
            ),
        }
    }

    fn changed(&self, env: &str, now: &str) -> String {
        match self {
            Cause::Admin(by) => format!(
                "access to environment \"{env}\" was changed by {}: connections now run as {now}; reconnect to continue",
                by_whom(*by)
            ),
            Cause::GrantExpired { at, .. } => format!(
                "access to environment \"{env}\" changed when a grant expired at {}: connections now run as {now}; reconnect to continue",
                rfc3339(*at)
            ),
        }
    }
}

fn by_whom(admin: Option<&str>) -> String {
    admin.map_or_else(
        || "an administrator".to_string(),
        |a| format!("administrator \"{a}\""),
    )
}

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| unix.to_string())
}

/// Asks the grants again about a connection that is already open, exactly as `establish` asked
/// them at connect time ([`Grants::allows`], then [`Grants::upstream_role`]), for the identity
/// its token proves with the group memberships as they are now. `None` while the connection
/// may keep running as it was opened; otherwise why it must end, as a `57P01` like every other
/// termination. A connection whose grants now give it another upstream role ends too: it runs
/// as the role chosen at connect time, which the grants no longer say. `cause` is what the
/// reason names.
///
/// [`Grants::allows`]: crate::identity::Grants::allows
/// [`Grants::upstream_role`]: crate::identity::Grants::upstream_role
pub fn access_withdrawn(
    gw: &Gateway,
    c: &ConnectionInfo,
    cause: &Cause<'_>,
) -> Option<Termination> {
    let identity = identity_now(gw, c);
    let env = &c.environment;
    if !gw.grants.allows(&identity, env) {
        return Some(Termination {
            code: SqlState::AdminShutdown,
            message: cause.revoked(env),
        });
    }
    let role = gw.grants.upstream_role(&identity, env);
    if role != c.upstream_role {
        let now = match role {
            Some(r) => format!("upstream role \"{r}\""),
            None => "the environment's own user".to_string(),
        };
        return Some(Termination {
            code: SqlState::AdminShutdown,
            message: cause.changed(env, &now),
        });
    }
    None
}

/// The identity behind an open connection as the grants see it now: the groups its token
/// carried at connect time and the group memberships as they are at this moment.
fn identity_now(gw: &Gateway, c: &ConnectionInfo) -> Identity {
    gw.auth.with_memberships(Identity {
        name: c.identity.clone(),
        kind: IdentityKind::parse(&c.identity_kind),
        groups: c.token_groups.clone(),
        on_behalf_of: None,
        session_id: c.session_id.clone(),
    })
}

/// Whether `grant` is one that let `c` in: it holds the connection's identity (its groups,
/// or its one person for an approved access request) and its environments name the
/// connection's.
fn admitted_by(gw: &Gateway, grant: &GrantView, c: &ConnectionInfo) -> bool {
    grant
        .environments
        .iter()
        .any(|e| e == "*" || *e == c.environment)
        && grant.covers(&identity_now(gw, c))
}

/// After access was narrowed (the grants and memberships already reloaded): asks the grants
/// again about every open connection in `scope` (see [`access_withdrawn`]) and ends those
/// that lost their access. Returns how many were ended; each records its reason in its
/// `connection.close`.
pub fn end_connections_without_access(
    gw: &Gateway,
    cause: &Cause<'_>,
    scope: impl Fn(&ConnectionInfo) -> bool,
) -> usize {
    let n = gw.connections.terminate_each(|c| {
        if !scope(c) {
            return None;
        }
        access_withdrawn(gw, c, cause)
    });
    if n > 0 {
        tracing::info!(
            cause = ?cause,
            connections = n,
            "closed connections whose access was taken away"
        );
    }
    n
}

/// Why a connection must end at `now` because the token it was opened with is over: a
/// session's absolute end, or an API service account's expiry. Pure, so the sweep's rule can
/// be tested alone.
pub fn token_ended(c: &ConnectionInfo, now: i64) -> Option<Termination> {
    let end = rfc3339(c.token_ends_at.filter(|end| *end <= now)?);
    let message = match c.session_id {
        Some(_) => format!("your Gatehouse session ended at {end}; log in again"),
        None => format!(
            "the service account token of \"{}\" expired at {end}; an administrator can rotate it for a new one",
            c.identity
        ),
    };
    Some(Termination {
        code: SqlState::AdminShutdown,
        message,
    })
}

/// Ends the open database connections of a session that was just revoked.
pub fn end_session_connections(gw: &Gateway, session_id: &str, why: &str) -> usize {
    let n = gw.connections.terminate_where(
        |c| c.session_id.as_deref() == Some(session_id),
        Termination {
            code: SqlState::AdminShutdown,
            message: why.to_string(),
        },
    );
    if n > 0 {
        tracing::info!(
            session = session_id,
            connections = n,
            "closed the connections of a revoked session"
        );
    }
    n
}

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    pub grants_expired: usize,
    pub connections_closed: usize,
}

/// One pass: expired grants deleted (each audited with the connections it ended), then the
/// connections whose session ended. A store failure leaves the grant for the next pass; it
/// lets nobody in meanwhile.
pub async fn sweep(gw: &Gateway, now: i64) -> SweepOutcome {
    let mut out = SweepOutcome::default();
    for g in gw.grants.expired(now) {
        match gw.grants.remove(&gw.store, &g.id).await {
            Ok(()) => gw.store.announce(crate::store::Change::Grants { by: None }),
            // An administrator deleted it first; their deletion ended its connections. With a
            // shared store, another replica's sweep may have: it audits the expiry, and this
            // replica still ends its own connections the grant let in.
            Err(GrantError::NotFound(_)) if gw.store.is_shared() => {
                end_connections_without_access(
                    gw,
                    &Cause::GrantExpired {
                        at: g.expires_at.unwrap_or(now),
                        requested: g.approval_id.is_some(),
                    },
                    |c| admitted_by(gw, &g, c),
                );
                continue;
            }
            Err(GrantError::NotFound(_)) => continue,
            Err(e) => {
                tracing::warn!(grant = %g.id, error = %e, "cannot delete an expired grant; retrying at the next sweep");
                continue;
            }
        }
        let at = g.expires_at.unwrap_or(now);
        // Only the connections this grant let in: another grant expiring in the same sweep
        // no longer lets anyone in either, and its own record must count its own.
        let closed = end_connections_without_access(
            gw,
            &Cause::GrantExpired {
                at,
                requested: g.approval_id.is_some(),
            },
            |c| admitted_by(gw, &g, c),
        );
        tracing::info!(action = "grant.expired", grant = %g.id, groups = ?g.groups, environments = ?g.environments, connections = closed, "grant expired");
        let mut r = AuditRecord::new("admin.grant.expired").details(serde_json::json!({
            "grant_id": g.id,
            "groups": g.groups,
            "environments": g.environments,
            "upstream_role": g.upstream_role,
            "expires_at": rfc3339(at),
            "connections_closed": closed,
            "identity": g.person.as_ref().map(|p| p.name.clone()),
            "approval_id": g.approval_id,
            "break_glass": g.break_glass,
        }));
        r.identity = Some(GATEWAY_ACTOR.to_string());
        r.identity_kind = Some("gateway".to_string());
        gw.audit.record(Pending::Record(Box::new(r))).await;
        out.grants_expired += 1;
        out.connections_closed += closed;
    }
    let ended = gw.connections.terminate_each(|c| token_ended(c, now));
    if ended > 0 {
        tracing::info!(
            connections = ended,
            "closed connections whose session or service account token ended"
        );
    }
    out.connections_closed += ended;
    out
}

/// Runs [`sweep`] every [`SWEEP_INTERVAL`] for the life of the gateway. The store work inside
/// runs on the blocking pool (`Store::run`), never on this runtime's threads.
pub async fn sweep_periodically(gw: Arc<Gateway>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sweep(&gw, crate::identity::now()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(token_ends_at: Option<i64>) -> ConnectionInfo {
        ConnectionInfo {
            identity: "bob".into(),
            session_id: token_ends_at.map(|_| "s".into()),
            token_ends_at,
            ..ConnectionInfo::sample("c")
        }
    }

    #[test]
    fn a_connection_ends_with_its_token_and_not_before() {
        let c = conn(Some(1_800_000_000));
        assert!(token_ended(&c, 1_799_999_999).is_none());
        let t = token_ended(&c, 1_800_000_000).expect("ended");
        assert_eq!(t.code, SqlState::AdminShutdown);
        assert_eq!(
            t.message,
            "your Gatehouse session ended at 2027-01-15T08:00:00Z; log in again"
        );
        // Tokens that do not expire carry no end.
        assert!(token_ended(&conn(None), i64::MAX).is_none());
        // An API service account's token, past its expiry.
        let sa = ConnectionInfo {
            identity: "nightly".into(),
            token_ends_at: Some(1_800_000_000),
            ..ConnectionInfo::sample("d")
        };
        assert_eq!(
            token_ended(&sa, 1_800_000_001).map(|t| t.message),
            Some("the service account token of \"nightly\" expired at 2027-01-15T08:00:00Z; an administrator can rotate it for a new one".into())
        );
    }

    #[test]
    fn reasons_name_the_cause() {
        assert_eq!(
            Cause::Admin(Some("root")).revoked("app"),
            "access to environment \"app\" was revoked by administrator \"root\""
        );
        assert_eq!(
            Cause::Admin(None).revoked("app"),
            "access to environment \"app\" was revoked by an administrator"
        );
        assert_eq!(
            Cause::GrantExpired {
                at: 1_800_000_000,
                requested: false
            }.revoked("app"),
            "access to environment \"app\" expired at 2027-01-15T08:00:00Z: the grant that allowed it ended; ask an administrator for access again"
        );
        assert!(Cause::GrantExpired {
            at: 0,
            requested: false
        }
        .changed("app", "upstream role \"ro\"")
        .starts_with(
            "access to environment \"app\" changed when a grant expired at 1970-01-01T00:00:00Z"
        ));
    }
}
