//! Replicas sharing one PostgreSQL store: what this replica does when another changes shared
//! state. Each replica keeps in memory what it consults on every connection and statement
//! (grants, group memberships, rules, masking overrides and exemptions, clients held for
//! approvals, open connections); another replica's change reaches it as a notice
//! (`store::changes`, `LISTEN/NOTIFY`) and is applied here with the same effect the change has
//! on the replica that made it: snapshots re-read, connections that lost their access ended
//! with the same `57P01` and `connection.close` record, held clients released.
//!
//! Notices are hints; the store is the truth. When the listening connection is down (the store
//! restarted, the network broke) a replica re-reads everything every
//! [`REREAD_WHILE_DEAF`] until it listens again, and re-reads everything every
//! [`REREAD_INTERVAL`] anyway, so a lost notice costs at most that long.
//!
//! Nothing runs with the SQLite store: there is no other replica.

use std::sync::Arc;
use std::time::Duration;

use crate::gateway::Gateway;
use crate::pg::access::{end_connections_without_access, end_session_connections, Cause};
use crate::pg::connections::{ConnectionInfo, Termination};
use crate::pg::error::SqlState;
use crate::store::Change;

/// How often everything is re-read while notices arrive.
pub const REREAD_INTERVAL: Duration = Duration::from_secs(30);
/// How often everything is re-read (and listening tried again) while notices cannot arrive:
/// a change through another replica still takes effect here within about two seconds.
pub const REREAD_WHILE_DEAF: Duration = Duration::from_secs(1);

/// Follows the other replicas for the life of the gateway (returns at once with SQLite).
pub async fn follow(gw: Arc<Gateway>) {
    let Some(pg) = gw.store.pg().cloned() else {
        return;
    };
    let mut deaf_since: Option<std::time::Instant> = None;
    loop {
        match pg.listen().await {
            Ok(mut notices) => {
                if let Some(since) = deaf_since.take() {
                    tracing::info!(after = ?since.elapsed(), "listening to the other replicas again");
                }
                // Whatever happened while not listening.
                reread(&gw).await;
                let mut tick = tokio::time::interval(REREAD_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tokio::select! {
                        n = notices.recv() => match n {
                            Some(n) => apply(&gw, n.change).await,
                            None => break,
                        },
                        _ = tick.tick() => reread(&gw).await,
                    }
                }
                tracing::warn!(
                    "lost the store connection that hears the other replicas; re-reading every {:?} until it is back",
                    REREAD_WHILE_DEAF
                );
            }
            Err(e) => {
                if deaf_since.is_none() {
                    tracing::warn!(error = %e, "cannot listen to the other replicas; re-reading every {:?} until it can", REREAD_WHILE_DEAF);
                }
            }
        }
        deaf_since.get_or_insert_with(std::time::Instant::now);
        reread(&gw).await;
        tokio::time::sleep(REREAD_WHILE_DEAF).await;
    }
}

/// Cancel requests relayed to the other replicas per second at most: an unknown key reaches
/// every replica, so a flood of guessed keys is cut here rather than multiplied.
const CANCEL_RELAYS_PER_SECOND: u32 = 200;

/// Hands a CancelRequest whose key this replica did not issue to the others (the one that
/// issued it forwards it; the rest ignore it). False when over the rate limit.
pub fn relay_cancel(gw: &Gateway, pid: i32, secret: i32) -> bool {
    static WINDOW: std::sync::Mutex<Option<(std::time::Instant, u32)>> =
        std::sync::Mutex::new(None);
    {
        let mut w = WINDOW.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        let (start, n) = w.get_or_insert((now, 0));
        if now.duration_since(*start) >= Duration::from_secs(1) {
            *start = now;
            *n = 0;
        }
        if *n >= CANCEL_RELAYS_PER_SECOND {
            return false;
        }
        *n += 1;
    }
    gw.store.announce(Change::Cancel { pid, secret });
    true
}

/// Applies one change another replica made.
pub async fn apply(gw: &Gateway, change: Change) {
    // Not the change itself: a relayed cancel carries its key's secret.
    tracing::debug!("change from another replica");
    let r = match change {
        Change::Grants { by } => reload_access(gw, by.as_deref(), true).await,
        Change::Groups { by } => reload_access(gw, by.as_deref(), false).await,
        Change::Rules => gw.policy.reload(&gw.store).await.map_err(|e| e.to_string()),
        Change::Masking => reload_masking(gw).await,
        Change::SessionEnded { id, why } => {
            end_session_connections(gw, &id, &why);
            Ok(())
        }
        Change::AccountEnded { name, why } => {
            end_account_connections(gw, &name, |_| true, why);
            Ok(())
        }
        Change::Approval { id, event } => gw
            .approvals
            .remote_change(&id, &event)
            .await
            .map_err(|e| e.to_string()),
        Change::Cancel { pid, secret } => {
            let timeout = Duration::from_secs(gw.config.server.upstream_connect_timeout_seconds);
            if gw.cancels.forward(pid, secret, timeout).await {
                tracing::info!("cancel request relayed by another replica forwarded");
            }
            Ok(())
        }
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, "cannot apply another replica's change; the next re-read will");
    }
}

async fn reload_access(gw: &Gateway, by: Option<&str>, grants: bool) -> Result<(), String> {
    if grants {
        gw.grants
            .reload(&gw.store)
            .await
            .map_err(|e| e.to_string())?;
    } else {
        gw.auth
            .groups()
            .reload(&gw.store)
            .await
            .map_err(|e| e.to_string())?;
    }
    end_connections_without_access(gw, &Cause::Admin(by), |_| true);
    Ok(())
}

async fn reload_masking(gw: &Gateway) -> Result<(), String> {
    gw.reload_masking_overrides()
        .await
        .map_err(|e| e.to_string())?;
    gw.reload_exemptions().await.map_err(|e| e.to_string())
}

fn end_account_connections(
    gw: &Gateway,
    name: &str,
    and: impl Fn(&ConnectionInfo) -> bool,
    why: String,
) -> usize {
    gw.connections.terminate_where(
        |c| c.identity == name && c.session_id.is_none() && and(c),
        Termination {
            code: SqlState::AdminShutdown,
            message: why,
        },
    )
}

/// Everything a notice could have said, read again: snapshots, then the open connections
/// whose session or API service account was ended, then the held clients whose approval was
/// decided. A failure (the store is down) leaves things as they were, for the next pass.
pub async fn reread(gw: &Gateway) {
    let mut failed = Vec::new();
    if let Err(e) = gw.grants.reload(&gw.store).await {
        failed.push(e.to_string());
    }
    if let Err(e) = gw.auth.groups().reload(&gw.store).await {
        failed.push(e.to_string());
    }
    if failed.is_empty() {
        end_connections_without_access(gw, &Cause::Admin(None), |_| true);
    }
    if let Err(e) = gw.policy.reload(&gw.store).await {
        failed.push(e.to_string());
    }
    if let Err(e) = reload_masking(gw).await {
        failed.push(e);
    }
    let open = gw.connections.list();
    let sessions: Vec<String> = open.iter().filter_map(|c| c.session_id.clone()).collect();
    if !sessions.is_empty() {
        match gw.store.revoked_sessions(sessions).await {
            Ok(ended) => {
                for id in ended {
                    end_session_connections(
                        gw,
                        &id,
                        "the session was logged out or revoked; log in again to reconnect",
                    );
                }
            }
            Err(e) => failed.push(e.to_string()),
        }
    }
    let accounts: Vec<String> = open
        .iter()
        .filter(|c| c.session_id.is_none())
        .map(|c| c.identity.clone())
        .collect();
    if !accounts.is_empty() {
        match gw.store.ended_accounts(accounts).await {
            Ok(ended) => {
                for (name, until) in ended {
                    // A connection that started in the second of a rotation may have used
                    // either token: it ends too, and reconnects with the new one.
                    let why = if until == i64::MAX {
                        format!("service account \"{name}\" was revoked by an administrator")
                    } else {
                        format!("the token of service account \"{name}\" was rotated by an administrator; reconnect with the new token")
                    };
                    end_account_connections(gw, &name, |c| c.started_at <= until, why);
                }
            }
            Err(e) => failed.push(e.to_string()),
        }
    }
    if let Err(e) = gw.approvals.release_decided_elsewhere().await {
        failed.push(e.to_string());
    }
    if let Some(e) = failed.first() {
        tracing::debug!(error = %e, "re-reading the shared store failed; trying again later");
    }
}
