//! Approvals: a statement sent to review waits here for a person (or an automatic policy) to
//! decide. Requests and decisions are stored (they survive restarts), waiting sessions are woken
//! the moment a decision lands, and every change is published as an event (for `/events` and
//! webhooks).
//!
//! An approval that arrives after its client stopped waiting leaves a once-only grant: the same
//! identity may run the identical statement in the same environment once, within
//! `server.approval_grant_seconds`.
//!
//! Access requests (`access.rs`) are approvals of their own kind: nobody waits on them, an
//! approval grants the requester access for a while, a pending one expires, and members of a
//! break-glass group may approve their own.
//!
//! Architecture invariant: no sockets and no protocol here; the pg session holds the client, this
//! module only answers "approved, denied, or not yet".

pub mod access;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::identity::{tokens, Identity};
use crate::store::{ApprovalKind, ApprovalRecord, Change, Store, StoreError};

/// What happened to an approval, as the waiting session learns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Approved { by: String, reason: Option<String> },
    Denied { by: String, reason: Option<String> },
}

/// A change to publish.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Event {
    /// `approval.created` or `approval.decided` for statements and exemption requests;
    /// `access_request.created`, `.decided`, `.break_glass`, `.withdrawn` or `.expired` for
    /// access requests.
    pub event: String,
    pub approval: ApprovalRecord,
    /// Where to see and decide it in the web console.
    pub link: String,
    /// Made on another replica sharing the store and relayed here (for `/events`); webhooks
    /// leave these to the replica that made them, so each is delivered once.
    #[serde(skip)]
    #[schema(ignore)]
    pub remote: bool,
}

/// The event name prefix for an approval's kind.
fn event_prefix(kind: ApprovalKind) -> &'static str {
    match kind {
        ApprovalKind::Access => "access_request",
        ApprovalKind::Statement | ApprovalKind::MaskingExemption => "approval",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no approval {0}")]
    NotFound(String),
    #[error("approval {id} is already {state}")]
    NotPending { id: String, state: String },
    #[error("you cannot decide a request you made or that was made on your behalf; another approver must")]
    OwnRequest,
    #[error("only members of {0:?} may decide approvals for this environment")]
    NotAnApprover(Vec<String>),
    #[error("approving your own access request is break-glass: give a reason (`reason`), it is announced and reviewed")]
    BreakGlassNeedsReason,
    #[error("only the requester may withdraw a request")]
    NotRequester,
    #[error("cannot grant the access: {0}")]
    Grant(#[from] crate::identity::GrantError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the session knows when it sends a statement to review.
pub struct NewApproval {
    pub statement: String,
    pub fingerprint: String,
    pub identity: Identity,
    pub environment: String,
    pub database: String,
    pub rule: String,
    pub reason: String,
    pub classification: Option<serde_json::Value>,
    pub estimated_rows: Option<i64>,
    pub connection_id: Option<String>,
}

pub struct Approvals {
    store: Store,
    /// Sessions holding a client for an approval, by approval id.
    waiters: Mutex<HashMap<String, watch::Sender<Option<Outcome>>>>,
    events: broadcast::Sender<Event>,
    grant_seconds: i64,
    /// The web console's base URL (`server.public_url`), for the links events carry.
    console_url: String,
}

/// Who may decide an approval besides its environment's approvers: nobody, or for an access
/// request its requester if they are in a break-glass group.
pub struct Deciders<'a> {
    pub approvers: &'a [String],
    /// Members may approve their own access request (with a reason).
    pub break_glass_groups: &'a [String],
}

/// How a decision was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    Approver,
    /// The requester approved their own access request as a member of a break-glass group.
    BreakGlass,
}

/// Whether `approver` may make this decision on `current` (pending, checked by the caller):
/// never a requester, except a break-glass member approving their own access request with a
/// reason; otherwise a member of the approver groups.
pub fn authority(
    current: &ApprovalRecord,
    approver: &Identity,
    deciders: &Deciders<'_>,
    approve: bool,
    reason: Option<&str>,
) -> Result<Authority, DecideError> {
    if is_requester(current, &approver.name) {
        let own_access = current.kind == ApprovalKind::Access
            && current.identity.eq_ignore_ascii_case(&approver.name)
            && current.on_behalf_of.is_none();
        if !(approve && own_access && approver.in_any_group(deciders.break_glass_groups)) {
            return Err(DecideError::OwnRequest);
        }
        if reason.is_none_or(|r| r.trim().is_empty()) {
            return Err(DecideError::BreakGlassNeedsReason);
        }
        return Ok(Authority::BreakGlass);
    }
    if !approver.in_any_group(deciders.approvers) {
        return Err(DecideError::NotAnApprover(deciders.approvers.to_vec()));
    }
    Ok(Authority::Approver)
}

/// Whether `who` asked for `approval`: as the identity that made the request, or as the person
/// an agent made it for. Names are compared ignoring ASCII case (an IdP's `Bob@Example.com` and
/// a config's `bob@example.com` are one person), so a near-miss refuses rather than allows.
pub fn is_requester(approval: &ApprovalRecord, who: &str) -> bool {
    approval.identity.eq_ignore_ascii_case(who)
        || approval
            .on_behalf_of
            .as_deref()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case(who))
}

pub fn statement_hash(sql: &str) -> String {
    tokens::sha256_hex(sql)
}

impl Approvals {
    pub fn new(store: Store, grant_seconds: u64, console_url: &str) -> Approvals {
        let (events, _) = broadcast::channel(1024);
        Approvals {
            store,
            waiters: Mutex::new(HashMap::new()),
            events,
            grant_seconds: grant_seconds as i64,
            console_url: console_url.trim_end_matches('/').to_string(),
        }
    }

    /// The console page of one approval.
    pub fn link(&self, id: &str) -> String {
        format!("{}/#/approvals?id={id}", self.console_url)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<Option<Outcome>>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Publishes `{prefix}.{what}` (the prefix by the approval's kind), here and, through the
    /// shared store, on the other replicas.
    fn publish(&self, what: &str, approval: ApprovalRecord) {
        self.store.announce(Change::Approval {
            id: approval.id.clone(),
            event: what.to_string(),
        });
        self.send(what, approval, false);
    }

    fn send(&self, what: &str, approval: ApprovalRecord, remote: bool) {
        let event = format!("{}.{what}", event_prefix(approval.kind));
        let link = self.link(&approval.id);
        // No subscribers is fine: nobody is watching.
        let _ = self.events.send(Event {
            event,
            approval,
            link,
            remote,
        });
    }

    /// Another replica created or changed approval `id` (`event`, as it published it): its
    /// event is published here too, and a client held here for it is released as if the
    /// decision had been made here. An approval decided elsewhere was left `approved` (that
    /// replica held no client); the held client spends it (`used`) and runs the statement.
    pub async fn remote_change(&self, id: &str, event: &str) -> Result<(), StoreError> {
        let Some(record) = self.store.approval(id.to_string()).await? else {
            return Ok(());
        };
        self.release_if_decided(&record).await?;
        self.send(event, record, true);
        Ok(())
    }

    /// Releases the client held here for `record` if it was decided (elsewhere).
    async fn release_if_decided(&self, record: &ApprovalRecord) -> Result<(), StoreError> {
        let outcome = match record.state.as_str() {
            "pending" => return Ok(()),
            "approved" => Outcome::Approved {
                by: record.decided_by.clone().unwrap_or_default(),
                reason: record.decision_reason.clone(),
            },
            _ => Outcome::Denied {
                by: record.decided_by.clone().unwrap_or_default(),
                reason: record.decision_reason.clone(),
            },
        };
        // Taken under the lock, as `settle` does: either the client leaves (a grant stays for
        // a re-run) or it is released here, never both.
        let Some(waiter) = self.lock().remove(&record.id) else {
            return Ok(());
        };
        if matches!(outcome, Outcome::Approved { .. })
            && !self
                .store
                .use_approval(record.id.clone(), crate::identity::now())
                .await?
        {
            // Spent or ended meanwhile: the client is told what the store now says.
            let _ = waiter.send(Some(Outcome::Denied {
                by: record.decided_by.clone().unwrap_or_default(),
                reason: Some(
                    "the approval was used or ended before this client could run it".into(),
                ),
            }));
            return Ok(());
        }
        let _ = waiter.send(Some(outcome));
        Ok(())
    }

    /// For the periodic re-read when notices may have been missed: the approvals clients are
    /// held for here that were decided elsewhere release their clients.
    pub async fn release_decided_elsewhere(&self) -> Result<(), StoreError> {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        for id in ids {
            if let Some(record) = self.store.approval(id).await? {
                self.release_if_decided(&record).await?;
            }
        }
        Ok(())
    }

    /// Creates a pending approval and registers the caller as waiting for it.
    pub async fn request(
        &self,
        new: NewApproval,
    ) -> Result<(ApprovalRecord, watch::Receiver<Option<Outcome>>), StoreError> {
        let record = ApprovalRecord {
            id: format!("apr_{}", tokens::random_id()),
            kind: ApprovalKind::Statement,
            state: "pending".into(),
            statement_sha256: statement_hash(&new.statement),
            statement: new.statement,
            fingerprint: new.fingerprint,
            identity: new.identity.name.clone(),
            identity_kind: new.identity.kind.as_str().into(),
            on_behalf_of: new.identity.on_behalf_of.clone(),
            environment: new.environment,
            database: new.database,
            rule: new.rule,
            reason: new.reason,
            classification: new.classification,
            estimated_rows: new.estimated_rows,
            connection_id: new.connection_id,
            created_at: crate::identity::now(),
            decided_at: None,
            decided_by: None,
            decision_reason: None,
            grant_expires_at: None,
            used_at: None,
            access: None,
        }
        .derive();
        let (tx, rx) = watch::channel(None);
        self.lock().insert(record.id.clone(), tx);
        if let Err(e) = self.store.insert_approval(record.clone()).await {
            self.lock().remove(&record.id);
            return Err(e);
        }
        self.publish("created", record.clone());
        Ok((record, rx))
    }

    /// The session stops waiting (window passed, client left). The approval stays pending: a
    /// later approval becomes a once-only grant.
    pub fn stop_waiting(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Records a decision by `approver`, who must be in `approver_groups` and must not be a
    /// requester: neither the identity that asked nor the person it acted for decides.
    pub async fn decide(
        &self,
        id: &str,
        approver: &Identity,
        approver_groups: &[String],
        approve: bool,
        reason: Option<String>,
    ) -> Result<ApprovalRecord, DecideError> {
        let current = self
            .store
            .approval(id.to_string())
            .await?
            .ok_or_else(|| DecideError::NotFound(id.to_string()))?;
        if current.state != "pending" {
            return Err(DecideError::NotPending {
                id: id.into(),
                state: current.state,
            });
        }
        let deciders = Deciders {
            approvers: approver_groups,
            break_glass_groups: &[],
        };
        authority(&current, approver, &deciders, approve, reason.as_deref())?;
        self.settle(id, &approver.name, approve, reason, None).await
    }

    /// Records the decision on an access request, already authorized (`authority`): approved
    /// until `access_until` (when the grant it made ends), or denied.
    pub async fn settle_access(
        &self,
        id: &str,
        by: &str,
        approve: bool,
        reason: Option<String>,
        access_until: Option<i64>,
    ) -> Result<ApprovalRecord, DecideError> {
        self.settle(id, by, approve, reason, access_until).await
    }

    /// Ends a pending request without a decision: `withdrawn` by its requester, or
    /// `expired` by the gateway. Published as `{prefix}.withdrawn` / `.expired`.
    pub async fn close(
        &self,
        id: &str,
        state: &'static str,
        by: &str,
        reason: Option<String>,
    ) -> Result<ApprovalRecord, DecideError> {
        self.lock().remove(id);
        let changed = self
            .store
            .decide_approval(
                id.to_string(),
                state,
                by.to_string(),
                reason,
                crate::identity::now(),
                None,
            )
            .await?;
        let record = self
            .store
            .approval(id.to_string())
            .await?
            .ok_or_else(|| DecideError::NotFound(id.to_string()))?;
        if !changed {
            return Err(DecideError::NotPending {
                id: id.into(),
                state: record.state,
            });
        }
        self.publish(state, record.clone());
        Ok(record)
    }

    /// Announces a break-glass approval loudly, besides its `decided` event.
    pub fn announce_break_glass(&self, record: ApprovalRecord) {
        self.publish("break_glass", record);
    }

    /// The approvals `identity` made under `rule`, newest first.
    pub async fn of(
        &self,
        identity: &str,
        rule: &'static str,
        limit: usize,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        self.store
            .approvals_of(identity.to_string(), rule, limit)
            .await
    }

    /// Pending approvals made under `rule`, oldest first.
    pub async fn pending_with_rule(
        &self,
        rule: &'static str,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        self.store.pending_approvals_with_rule(rule).await
    }

    /// An automatic decision (e.g. by row estimate), recorded under the policy's name.
    pub async fn decide_automatically(
        &self,
        id: &str,
        by: &str,
        reason: String,
    ) -> Result<ApprovalRecord, DecideError> {
        self.settle(id, by, true, Some(reason), None).await
    }

    /// `grant_until` overrides the once-only grant's end (an access request's access).
    async fn settle(
        &self,
        id: &str,
        by: &str,
        approve: bool,
        reason: Option<String>,
        grant_until: Option<i64>,
    ) -> Result<ApprovalRecord, DecideError> {
        let now = crate::identity::now();
        // Deciding and the waiter's departure race; the waiters lock makes one of them win: a
        // held client runs the statement now ("used"), otherwise a grant is left behind.
        let waiter = self.lock().remove(id);
        let (state, grant) = match (approve, &waiter, grant_until) {
            (false, _, _) => ("denied", None),
            (true, _, Some(until)) => ("approved", Some(until)),
            (true, Some(_), None) => ("used", None),
            (true, None, None) => ("approved", Some(now + self.grant_seconds)),
        };
        let changed = self
            .store
            .decide_approval(
                id.to_string(),
                state,
                by.to_string(),
                reason.clone(),
                now,
                grant,
            )
            .await?;
        if !changed {
            let state = self
                .store
                .approval(id.to_string())
                .await?
                .map(|a| a.state)
                .unwrap_or_else(|| "gone".into());
            return Err(DecideError::NotPending {
                id: id.into(),
                state,
            });
        }
        if let Some(w) = waiter {
            let outcome = if approve {
                Outcome::Approved {
                    by: by.to_string(),
                    reason: reason.clone(),
                }
            } else {
                Outcome::Denied {
                    by: by.to_string(),
                    reason: reason.clone(),
                }
            };
            let _ = w.send(Some(outcome));
        }
        let record = self
            .store
            .approval(id.to_string())
            .await?
            .ok_or_else(|| DecideError::NotFound(id.to_string()))?;
        self.publish("decided", record.clone());
        Ok(record)
    }

    /// Spends a once-only grant for exactly this statement, if an approval left one.
    pub async fn consume_grant(
        &self,
        statement: &str,
        identity: &str,
        environment: &str,
    ) -> Result<Option<String>, StoreError> {
        self.store
            .consume_approval_grant(
                statement_hash(statement),
                identity.to_string(),
                environment.to_string(),
                crate::identity::now(),
            )
            .await
    }

    pub async fn get(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        self.store.approval(id.to_string()).await
    }

    pub async fn list(
        &self,
        state: Option<String>,
        limit: usize,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        self.store.approvals(state, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_and_the_person_it_acted_for_are_both_requesters() {
        let a = ApprovalRecord {
            id: "apr_1".into(),
            kind: ApprovalKind::Statement,
            state: "pending".into(),
            statement_sha256: String::new(),
            statement: "UPDATE t SET v = 1".into(),
            fingerprint: String::new(),
            identity: "bot".into(),
            identity_kind: "agent".into(),
            on_behalf_of: Some("Bob@Example.com".into()),
            environment: "prod".into(),
            database: "appdb".into(),
            rule: "r".into(),
            reason: String::new(),
            classification: None,
            estimated_rows: None,
            connection_id: None,
            created_at: 0,
            decided_at: None,
            decided_by: None,
            decision_reason: None,
            grant_expires_at: None,
            used_at: None,
            access: None,
        };
        assert!(is_requester(&a, "bot"));
        assert!(is_requester(&a, "bob@example.com"));
        assert!(!is_requester(&a, "root"));
        let plain = ApprovalRecord {
            on_behalf_of: None,
            ..a
        };
        assert!(!is_requester(&plain, "bob@example.com"));
    }

    #[test]
    fn only_break_glass_members_approve_their_own_access_request_and_only_with_a_reason() {
        let request = ApprovalRecord {
            id: "apr_2".into(),
            kind: ApprovalKind::Access,
            state: "pending".into(),
            statement_sha256: String::new(),
            statement: "-- access request".into(),
            fingerprint: String::new(),
            identity: "ana".into(),
            identity_kind: "human".into(),
            on_behalf_of: None,
            environment: "prod".into(),
            database: String::new(),
            rule: crate::store::ACCESS_REQUEST_RULE.into(),
            reason: "ticket 4312".into(),
            classification: None,
            estimated_rows: None,
            connection_id: None,
            created_at: 0,
            decided_at: None,
            decided_by: None,
            decision_reason: None,
            grant_expires_at: None,
            used_at: None,
            access: None,
        };
        let person = |name: &str, groups: &[&str]| Identity {
            name: name.into(),
            kind: crate::identity::IdentityKind::Human,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            on_behalf_of: None,
            session_id: None,
        };
        let approvers = vec!["admins".to_string()];
        let glass = vec!["oncall".to_string()];
        let d = Deciders {
            approvers: &approvers,
            break_glass_groups: &glass,
        };
        let ana = person("ana", &["oncall", "admins"]);
        // Even an approver cannot approve her own request without break-glass …
        let no_glass = Deciders {
            approvers: &approvers,
            break_glass_groups: &[],
        };
        assert!(matches!(
            authority(&request, &ana, &no_glass, true, Some("x")),
            Err(DecideError::OwnRequest)
        ));
        // … with it, only to approve, and only with a reason.
        assert!(matches!(
            authority(&request, &ana, &d, true, Some("  ")),
            Err(DecideError::BreakGlassNeedsReason)
        ));
        assert!(matches!(
            authority(&request, &ana, &d, false, Some("x")),
            Err(DecideError::OwnRequest)
        ));
        assert_eq!(
            authority(&request, &ana, &d, true, Some("outage")).unwrap(),
            Authority::BreakGlass
        );
        // A statement is never break-glass.
        let statement = ApprovalRecord {
            kind: ApprovalKind::Statement,
            ..request.clone()
        };
        assert!(matches!(
            authority(&statement, &ana, &d, true, Some("outage")),
            Err(DecideError::OwnRequest)
        ));
        assert_eq!(
            authority(&request, &person("bob", &["admins"]), &d, true, None).unwrap(),
            Authority::Approver
        );
        assert!(matches!(
            authority(&request, &person("eve", &["oncall"]), &d, true, Some("x")),
            Err(DecideError::NotAnApprover(_))
        ));
    }
}
