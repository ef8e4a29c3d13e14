//! Access requests: a person asks for an environment for a while (optionally as an upstream
//! role the environment offers), with a reason. The request is an approval of its own kind
//! (rule [`ACCESS_REQUEST_RULE`]): listed and decided with the statements sent to review, by
//! the environment's approvers and never by the requester, except under break-glass.
//!
//! Approving it makes a personal grant (`Grants::add_personal`) for the requester alone that
//! ends by itself; the gateway's expiry sweep (`pg::access`) deletes it then and ends the
//! connections it let in. A request nobody decides expires after the environment's
//! `pending_expiry_seconds` ([`expire_periodically`]). Every step is audited (`access.*`) and
//! published (`access_request.*`, for `/events` and webhooks).
//!
//! Only environments whose config has `[environments.access_requests]` take requests; others
//! answer as a missing environment does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{authority, Authority, DecideError, Deciders, NewApproval};
use crate::audit::{AuditRecord, Pending};
use crate::gateway::{Environment, Gateway};
use crate::identity::{GrantError, Identity, PersonalGrant};
use crate::store::{AccessRequestDetails, ApprovalRecord, ACCESS_REQUEST_RULE};

/// How often pending requests are checked for expiry.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(2);

/// The name the gateway's own audit records and decisions carry.
const GATEWAY_ACTOR: &str = "gatehouse";

/// Longest reason kept; a reason is a sentence for an approver, not a document.
const MAX_REASON_CHARS: usize = 2000;

/// What a person asks for.
#[derive(Debug, Clone)]
pub struct AccessAsk {
    pub environment: String,
    pub duration_seconds: Option<i64>,
    pub role: Option<String>,
    pub reason: Option<String>,
}

/// A request that cannot be made, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct InvalidRequest {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> InvalidRequest {
    InvalidRequest {
        field,
        message: message.into(),
    }
}

/// `3600` → `1h`, `5400` → `1h30m`, `45` → `45s`: durations as people write them.
pub fn human_duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Checks a request against the environment's `access_requests` config and says what it asks
/// for, pending until `now` plus the environment's expiry. Unknown environments and those that
/// take no requests get the same answer.
pub fn check(
    environments: &BTreeMap<String, Arc<Environment>>,
    ask: &AccessAsk,
    now: i64,
) -> Result<(AccessRequestDetails, String), InvalidRequest> {
    let settings = environments
        .get(&ask.environment)
        .and_then(|e| e.access_requests.as_ref())
        .ok_or_else(|| {
            invalid(
                "environment",
                format!(
                    "no environment named `{}` takes access requests; GET /api/v1/access-requests/environments lists those that do",
                    ask.environment
                ),
            )
        })?;
    let max = settings.max_duration_seconds as i64;
    let duration = match ask.duration_seconds {
        None => {
            return Err(invalid(
                "duration_seconds",
                format!(
                    "required: how long you need access, at most {}",
                    human_duration(max)
                ),
            ))
        }
        Some(d) if d <= 0 => {
            return Err(invalid("duration_seconds", "must be positive"));
        }
        Some(d) if d > max => {
            return Err(invalid(
                "duration_seconds",
                format!(
                    "{} is above the maximum of {} for `{}`",
                    human_duration(d),
                    human_duration(max),
                    ask.environment
                ),
            ))
        }
        Some(d) => d,
    };
    if let Some(role) = &ask.role {
        if !settings.roles.contains(role) {
            let offered = if settings.roles.is_empty() {
                "it offers none; leave the role out to connect as the environment's own user"
                    .to_string()
            } else {
                format!("it offers {}", settings.roles.join(", "))
            };
            return Err(invalid(
                "role",
                format!(
                    "`{}` does not offer role `{role}`: {offered}",
                    ask.environment
                ),
            ));
        }
    }
    let reason = ask
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| invalid("reason", "required: say why, for the approver"))?;
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(invalid(
            "reason",
            format!("at most {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok((
        AccessRequestDetails {
            environment: ask.environment.clone(),
            role: ask.role.clone(),
            duration_seconds: duration,
            pending_until: now + settings.pending_expiry_seconds as i64,
            break_glass: false,
        },
        reason.to_string(),
    ))
}

/// The approval an access request is stored as. Its `statement` is a readable summary (an SQL
/// comment, so nothing could run it as anything else).
pub fn new_approval(identity: &Identity, d: &AccessRequestDetails, reason: String) -> NewApproval {
    let role = d
        .role
        .as_ref()
        .map(|r| format!(" as role {r}"))
        .unwrap_or_default();
    NewApproval {
        statement: format!(
            "-- access request: {} to {} for {}{role}",
            identity.name,
            d.environment,
            human_duration(d.duration_seconds)
        ),
        fingerprint: ACCESS_REQUEST_RULE.into(),
        identity: identity.clone(),
        environment: d.environment.clone(),
        database: String::new(),
        rule: ACCESS_REQUEST_RULE.into(),
        reason,
        classification: Some(serde_json::json!({ "access_request": d })),
        estimated_rows: None,
        connection_id: None,
    }
}

/// Makes the request: stored, published (`access_request.created`) and audited
/// (`access.requested`).
pub async fn request(
    gw: &Gateway,
    who: &Identity,
    ask: AccessAsk,
) -> Result<ApprovalRecord, RequestError> {
    let (details, reason) = check(&gw.environments, &ask, crate::identity::now())?;
    let (record, _) = gw
        .approvals
        .request(new_approval(who, &details, reason))
        .await?;
    // Nobody is held: the access starts when the request is approved.
    gw.approvals.stop_waiting(&record.id);
    let mut r = AuditRecord::new("access.requested").by(who);
    r.approval_id = Some(record.id.clone());
    r.environment = Some(details.environment.clone());
    r.details = Some(serde_json::json!({
        "duration_seconds": details.duration_seconds,
        "role": details.role,
        "reason": record.reason,
        "pending_until": details.pending_until,
    }));
    gw.audit.record(Pending::Record(Box::new(r))).await;
    Ok(record)
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Decides a pending access request (`current`) as `approver`: an environment approver, or its
/// requester under break-glass. Approving makes the personal grant first and then records the
/// decision, so an approved request always has its grant; if another decision won meanwhile,
/// the grant is taken back.
pub async fn decide(
    gw: &Gateway,
    approver: &Identity,
    current: &ApprovalRecord,
    approve: bool,
    reason: Option<String>,
) -> Result<ApprovalRecord, DecideError> {
    if current.state != "pending" {
        return Err(DecideError::NotPending {
            id: current.id.clone(),
            state: current.state.clone(),
        });
    }
    let env = gw.environments.get(&current.environment);
    let settings = env.and_then(|e| e.access_requests.as_ref());
    let approvers = env
        .map(|e| e.approvers.clone())
        .unwrap_or_else(|| gw.config.server.admin_groups.clone());
    let break_glass_groups = settings
        .map(|s| s.break_glass_groups.clone())
        .unwrap_or_default();
    let deciders = Deciders {
        approvers: &approvers,
        break_glass_groups: &break_glass_groups,
    };
    let how = authority(current, approver, &deciders, approve, reason.as_deref())?;
    if !approve {
        let decided = gw
            .approvals
            .settle_access(&current.id, &approver.name, false, reason.clone(), None)
            .await?;
        audit_decision(gw, approver, &decided, "access.denied", reason, None).await;
        return Ok(decided);
    }
    let details = current.access.clone().ok_or_else(|| {
        DecideError::Grant(GrantError::Invalid(format!(
            "the details of access request {} cannot be read; deny it and ask for a new one",
            current.id
        )))
    })?;
    // Still configured? The environment (or its requests) may have gone since the request.
    let Some(settings) = settings else {
        return Err(DecideError::Grant(GrantError::Invalid(format!(
            "environment `{}` no longer takes access requests",
            current.environment
        ))));
    };
    if details
        .role
        .as_ref()
        .is_some_and(|r| !settings.roles.contains(r))
    {
        return Err(DecideError::Grant(GrantError::Invalid(format!(
            "environment `{}` no longer offers role `{}`",
            current.environment,
            details.role.as_deref().unwrap_or_default()
        ))));
    }
    let now = crate::identity::now();
    let seconds = match how {
        // Break-glass is short whatever was asked.
        Authority::BreakGlass => details
            .duration_seconds
            .min(settings.break_glass_max() as i64),
        Authority::Approver => details.duration_seconds,
    };
    let until = now + seconds;
    let requester = Identity {
        name: current.identity.clone(),
        kind: crate::identity::IdentityKind::parse(&current.identity_kind),
        groups: Vec::new(),
        on_behalf_of: None,
        session_id: None,
    };
    let grant = gw
        .grants
        .add_personal(
            &gw.store,
            PersonalGrant {
                identity: requester,
                environment: details.environment.clone(),
                upstream_role: details.role.clone(),
                expires_at: until,
                approval_id: current.id.clone(),
                break_glass: how == Authority::BreakGlass,
            },
            &approver.name,
            now,
        )
        .await?;
    gw.store.announce(crate::store::Change::Grants { by: None });
    let decided = match gw
        .approvals
        .settle_access(
            &current.id,
            &approver.name,
            true,
            reason.clone(),
            Some(until),
        )
        .await
    {
        Ok(d) => d,
        Err(e) => {
            if let Err(undo) = gw.grants.remove(&gw.store, &grant.id).await {
                tracing::error!(grant = %grant.id, error = %undo, "cannot take back the grant of an access request decided elsewhere; it ends at its expiry");
            }
            gw.store.announce(crate::store::Change::Grants { by: None });
            return Err(e);
        }
    };
    let action = match how {
        Authority::BreakGlass => "access.break_glass",
        Authority::Approver => "access.approved",
    };
    audit_decision(gw, approver, &decided, action, reason, Some(&grant.id)).await;
    if how == Authority::BreakGlass {
        tracing::warn!(identity = %decided.identity, environment = %decided.environment, approval = %decided.id, until, "break-glass access: approved by its requester");
        gw.approvals.announce_break_glass(decided.clone());
    }
    Ok(decided)
}

async fn audit_decision(
    gw: &Gateway,
    by: &Identity,
    decided: &ApprovalRecord,
    action: &str,
    reason: Option<String>,
    grant_id: Option<&str>,
) {
    let mut r = AuditRecord::new(action).by(by);
    r.approval_id = Some(decided.id.clone());
    r.environment = Some(decided.environment.clone());
    r.details = Some(serde_json::json!({
        "requester": decided.identity,
        "reason": reason,
        "request_reason": decided.reason,
        "role": decided.access.as_ref().and_then(|a| a.role.clone()),
        "grant_id": grant_id,
        "access_until": decided.grant_expires_at,
        "state": decided.state,
    }));
    gw.audit.record(Pending::Record(Box::new(r))).await;
}

/// The requester takes back a pending request.
pub async fn withdraw(
    gw: &Gateway,
    who: &Identity,
    current: &ApprovalRecord,
    reason: Option<String>,
) -> Result<ApprovalRecord, DecideError> {
    if !current.identity.eq_ignore_ascii_case(&who.name) {
        return Err(DecideError::NotRequester);
    }
    let closed = gw
        .approvals
        .close(&current.id, "withdrawn", &who.name, reason.clone())
        .await?;
    audit_decision(gw, who, &closed, "access.withdrawn", reason, None).await;
    Ok(closed)
}

/// Expires the pending access requests whose time to be decided has passed; how many.
pub async fn expire_pending(gw: &Gateway, now: i64) -> usize {
    let pending = match gw.approvals.pending_with_rule(ACCESS_REQUEST_RULE).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read pending access requests; retrying");
            return 0;
        }
    };
    let mut n = 0;
    for a in pending {
        // A request whose details cannot be read has no deadline of its own: it gets none
        // rather than living forever.
        let due = a.access.as_ref().is_none_or(|d| d.pending_until <= now);
        if !due {
            continue;
        }
        match gw
            .approvals
            .close(
                &a.id,
                "expired",
                GATEWAY_ACTOR,
                Some("nobody decided it in time; request it again".into()),
            )
            .await
        {
            Ok(closed) => {
                n += 1;
                let mut r = AuditRecord::new("access.expired");
                r.identity = Some(GATEWAY_ACTOR.to_string());
                r.identity_kind = Some("gateway".to_string());
                r.approval_id = Some(closed.id.clone());
                r.environment = Some(closed.environment.clone());
                r.details = Some(serde_json::json!({ "requester": closed.identity }));
                gw.audit.record(Pending::Record(Box::new(r))).await;
            }
            // Decided or withdrawn meanwhile.
            Err(DecideError::NotPending { .. }) => {}
            Err(e) => {
                tracing::warn!(approval = %a.id, error = %e, "cannot expire an access request; retrying")
            }
        }
    }
    n
}

/// Runs [`expire_pending`] for the life of the gateway.
pub async fn expire_periodically(gw: Arc<Gateway>) {
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        expire_pending(&gw, crate::identity::now()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AccessRequestConfig, Tier};
    use crate::gateway::Databases;
    use crate::pg::upstream::UpstreamTarget;

    fn environments() -> BTreeMap<String, Arc<Environment>> {
        let env = |name: &str, access: Option<AccessRequestConfig>| Environment {
            name: name.into(),
            tier: Tier::Production,
            tags: Vec::new(),
            description: None,
            target: Arc::new(
                UpstreamTarget::parse("postgresql://app@127.0.0.1:5432/appdb", None).unwrap(),
            ),
            approvers: vec!["admins".into()],
            auto_approve_below_rows: None,
            databases: Databases::Listed(Vec::new()),
            access_requests: access,
            replay_rows: 0,
        };
        let prod = AccessRequestConfig {
            max_duration_seconds: 3600,
            pending_expiry_seconds: 600,
            roles: vec!["app_reader".into()],
            ..AccessRequestConfig::default()
        };
        [env("prod", Some(prod)), env("dev", None)]
            .into_iter()
            .map(|e| (e.name.clone(), Arc::new(e)))
            .collect()
    }

    fn ask(env: &str, secs: Option<i64>, role: Option<&str>, reason: Option<&str>) -> AccessAsk {
        AccessAsk {
            environment: env.into(),
            duration_seconds: secs,
            role: role.map(Into::into),
            reason: reason.map(Into::into),
        }
    }

    #[test]
    fn a_request_is_checked_field_by_field_against_its_environment() {
        let envs = environments();
        let (d, reason) = check(
            &envs,
            &ask("prod", Some(3600), Some("app_reader"), Some(" why ")),
            100,
        )
        .unwrap();
        assert_eq!(reason, "why");
        assert_eq!(d.pending_until, 700);
        assert_eq!(d.role.as_deref(), Some("app_reader"));
        for (a, field) in [
            (ask("prod", Some(3601), None, Some("r")), "duration_seconds"),
            (ask("prod", Some(0), None, Some("r")), "duration_seconds"),
            (ask("prod", None, None, Some("r")), "duration_seconds"),
            (ask("dev", Some(60), None, Some("r")), "environment"),
            (ask("nope", Some(60), None, Some("r")), "environment"),
            (ask("prod", Some(60), Some("postgres"), Some("r")), "role"),
            (ask("prod", Some(60), None, Some("")), "reason"),
        ] {
            assert_eq!(check(&envs, &a, 0).unwrap_err().field, field, "{a:?}");
        }
        // Taking no requests and not existing read the same.
        let dev = check(&envs, &ask("dev", Some(60), None, Some("r")), 0).unwrap_err();
        let nope = check(&envs, &ask("nope", Some(60), None, Some("r")), 0).unwrap_err();
        assert_eq!(
            dev.message.replace("dev", "X"),
            nope.message.replace("nope", "X")
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(5400), "1h30m");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(7322), "2h2m2s");
    }
}
