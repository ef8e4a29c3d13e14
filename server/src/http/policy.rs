//! Guardrails over HTTP: the rules (`/api/v1/rules`, admin only, every change versioned and
//! audited) and the dry run (`/api/v1/policy/dry-run`: what would this SQL get, and why).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api::rfc3339;
use super::auth::{Admin, Caller};
use super::error::{ApiError, ErrorBody};
use crate::config::Tier;
use crate::gateway::Gateway;
use crate::identity::{Identity, IdentityKind};
use crate::policy::{
    Action, Classification, Policy, Rule, RuleError, RuleSource, Strings, Subject,
};
use crate::store::Change;

fn rule_error(e: RuleError) -> ApiError {
    match e {
        RuleError::Invalid(m) => ApiError::BadRequest(m),
        e @ RuleError::Duplicate(_) => ApiError::Conflict(e.to_string()),
        e @ RuleError::Stale(_) => ApiError::Conflict(e.to_string()),
        e @ RuleError::NotFound(_) => ApiError::NotFound(e.to_string()),
        e @ RuleError::ReadOnly(..) => ApiError::Forbidden(e.to_string()),
        e @ RuleError::Corrupt { .. } => ApiError::Internal(e.to_string()),
        RuleError::Store(e) => e.into(),
    }
}

/// A rule in force, where it comes from, and its place in the evaluation order.
#[derive(Serialize, ToSchema)]
pub struct RuleItem {
    #[serde(flatten)]
    pub rule: Rule,
    /// `config`, `api` or `builtin`; only `api` rules can be changed here.
    pub source: RuleSource,
    /// 0-based place in the order rules are evaluated (first match wins).
    pub position: usize,
}

#[derive(Serialize, ToSchema)]
pub struct RuleList {
    /// Version of the API-managed rules (0 before the first change).
    pub version: i64,
    pub items: Vec<RuleItem>,
}

/// The answer to a change: the new version and the rule as saved.
#[derive(Serialize, ToSchema)]
pub struct RuleChanged {
    pub version: i64,
    pub rule: Rule,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PositionQuery {
    /// Place among the API rules (0 = first, evaluated right after the config rules); the
    /// end when absent on create, unchanged on update.
    pub position: Option<usize>,
}

/// List the rules in force, in evaluation order: config, API, built-in (admin).
#[utoipa::path(
    get, path = "/api/v1/rules",
    responses((status = 200, body = RuleList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_rules(State(gw): State<Arc<Gateway>>, _admin: Admin) -> Json<RuleList> {
    let set = gw.policy.rules();
    Json(RuleList {
        version: set.version,
        items: set
            .all
            .iter()
            .enumerate()
            .map(|(position, (rule, source))| RuleItem {
                rule: rule.clone(),
                source: *source,
                position,
            })
            .collect(),
    })
}

/// Add a rule (admin). Creates a new version of the API rules; takes effect for the next
/// statement.
#[utoipa::path(
    post, path = "/api/v1/rules", params(PositionQuery), request_body = Rule,
    responses((status = 201, body = RuleChanged), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn create_rule(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Query(q): Query<PositionQuery>,
    Json(rule): Json<Rule>,
) -> Result<(StatusCode, Json<RuleChanged>), ApiError> {
    let change = gw
        .policy
        .create_rule(&gw.store, rule, q.position, &admin.identity.name)
        .await
        .map_err(rule_error)?;
    gw.store.announce(Change::Rules);
    audit(
        &gw,
        &admin.identity,
        "rule.create",
        serde_json::json!({"rule_id": change.rule.id, "version": change.version, "rule": change.rule}),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(RuleChanged {
            version: change.version,
            rule: change.rule,
        }),
    ))
}

/// Replace an API rule (admin); the body may rename it. Creates a new version.
#[utoipa::path(
    put, path = "/api/v1/rules/{id}",
    params(("id" = String, Path, description = "rule id"), PositionQuery), request_body = Rule,
    responses((status = 200, body = RuleChanged), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn update_rule(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    Query(q): Query<PositionQuery>,
    Json(rule): Json<Rule>,
) -> Result<Json<RuleChanged>, ApiError> {
    let previous = gw.policy.rules().api.iter().find(|r| r.id == id).cloned();
    let change = gw
        .policy
        .update_rule(&gw.store, &id, rule, q.position, &admin.identity.name)
        .await
        .map_err(rule_error)?;
    gw.store.announce(Change::Rules);
    audit(
        &gw,
        &admin.identity,
        "rule.update",
        serde_json::json!({"rule_id": id, "version": change.version, "rule": change.rule, "previous": previous}),
    )
    .await;
    Ok(Json(RuleChanged {
        version: change.version,
        rule: change.rule,
    }))
}

/// Remove an API rule (admin). Creates a new version.
#[utoipa::path(
    delete, path = "/api/v1/rules/{id}", params(("id" = String, Path, description = "rule id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn delete_rule(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let change = gw
        .policy
        .delete_rule(&gw.store, &id, &admin.identity.name)
        .await
        .map_err(rule_error)?;
    gw.store.announce(Change::Rules);
    audit(
        &gw,
        &admin.identity,
        "rule.delete",
        serde_json::json!({"rule_id": id, "version": change.version, "previous": change.rule}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// One saved version of the API-managed rules.
#[derive(Serialize, ToSchema)]
pub struct RuleVersionItem {
    pub version: i64,
    pub created_at: String,
    pub created_by: String,
    /// What changed: `create ID`, `update ID` or `delete ID`.
    pub change: String,
    /// The API rules as they were at this version, in order.
    pub rules: Vec<Rule>,
}

#[derive(Serialize, ToSchema)]
pub struct RuleVersionList {
    pub items: Vec<RuleVersionItem>,
}

/// Every version of the API-managed rules, newest first (admin).
#[utoipa::path(
    get, path = "/api/v1/rules/versions",
    responses((status = 200, body = RuleVersionList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_versions(
    State(gw): State<Arc<Gateway>>,
    _admin: Admin,
) -> Result<Json<RuleVersionList>, ApiError> {
    let items = gw
        .store
        .list_rule_versions()
        .await?
        .into_iter()
        .map(|v| {
            Ok(RuleVersionItem {
                rules: Policy::rules_of_version(v.version, &v.rules_json).map_err(rule_error)?,
                version: v.version,
                created_at: rfc3339(v.created_at),
                created_by: v.created_by,
                change: v.change,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(RuleVersionList { items }))
}

/// `POST /api/v1/policy/dry-run`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunRequest {
    /// One simple-Query string (several statements allowed) or one Parse's text.
    pub sql: String,
    /// The environment's name.
    pub environment: String,
    /// Run as this identity (administrators only; yourself when absent).
    pub identity: Option<String>,
    /// The identity's kind (administrators only; the identity's own when absent).
    pub kind: Option<IdentityKind>,
    /// The identity's groups (administrators only; the identity's own when absent).
    pub groups: Option<Vec<String>>,
    /// Decide as at this RFC 3339 time (for rules with a time window); now when absent.
    pub at: Option<String>,
    /// Read plain `'…'` strings as a session with this `standard_conforming_strings` would.
    /// When absent, as the gateway does for a session whose setting it does not know: both
    /// readings count when a backslash makes them differ.
    pub standard_conforming_strings: Option<bool>,
}

/// Who a dry run ran as.
#[derive(Serialize, ToSchema)]
pub struct DryRunIdentity {
    pub name: String,
    pub kind: IdentityKind,
    pub groups: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DryRunResponse {
    pub decision: Action,
    /// The rule that decided, or `default`.
    pub rule: String,
    pub reason: String,
    #[schema(value_type = Classification)]
    pub classification: Arc<Classification>,
    /// For several statements, what each got (the decision is the strictest).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<crate::policy::StatementDecision>,
    pub identity: DryRunIdentity,
    pub environment: String,
    pub tier: Tier,
}

/// What a statement would get for an identity in an environment, and why. Anyone may ask for
/// themselves; administrators may ask as another identity, kind or groups.
#[utoipa::path(
    post, path = "/api/v1/policy/dry-run", request_body = DryRunRequest,
    responses((status = 200, body = DryRunResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn dry_run(
    State(gw): State<Arc<Gateway>>,
    caller: Caller,
    Json(req): Json<DryRunRequest>,
) -> Result<Json<DryRunResponse>, ApiError> {
    let me = &caller.identity;
    let as_other = req.identity.as_deref().is_some_and(|n| n != me.name)
        || req.kind.is_some_and(|k| k != me.kind)
        || req.groups.as_ref().is_some_and(|g| *g != me.groups);
    if as_other && !gw.is_admin(me) {
        return Err(ApiError::Forbidden(
            "only administrators may dry-run as another identity, kind or groups; leave `identity`, `kind` and `groups` out to dry-run as yourself".into(),
        ));
    }
    // An administrator may ask about any environment; anyone else about those they may reach,
    // and an environment without a grant gets the same answer as one that does not exist.
    let env = if gw.is_admin(me) {
        gw.environments.get(&req.environment)
    } else {
        gw.granted_environment(me, &req.environment)
    }
    .ok_or_else(|| not_reachable(&req.environment))?;
    let at = match &req.at {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map(|d| d.with_timezone(&chrono::Utc))
            .map_err(|e| ApiError::BadRequest(format!("`at` is not an RFC 3339 time: {e}")))?,
        None => chrono::Utc::now(),
    };
    let mut identity = match req.identity.as_deref() {
        Some(name) if name != me.name => known_identity(&gw, name).await?,
        _ => me.clone(),
    };
    if let Some(k) = req.kind {
        identity.kind = k;
    }
    if let Some(g) = req.groups {
        identity.groups = g;
    }
    let strings = req.standard_conforming_strings.map(|on| {
        if on {
            Strings::Standard
        } else {
            Strings::Backslash
        }
    });
    let d = gw.policy.decide_reading_at(
        &Subject {
            identity: &identity,
            environment: &env.name,
            tier: env.tier,
            tags: &env.tags,
            search_path_changed: false,
        },
        &req.sql,
        strings,
        at,
    );
    let classification = d
        .classification
        .unwrap_or_else(|| gw.policy.classify(&req.sql));
    Ok(Json(DryRunResponse {
        decision: d.action,
        rule: d.rule,
        reason: d.reason,
        classification,
        statements: d.statements,
        identity: DryRunIdentity {
            name: identity.name,
            kind: identity.kind,
            groups: identity.groups,
        },
        environment: env.name.clone(),
        tier: env.tier,
    }))
}

/// The answer for an environment the caller may not ask about, whether or not it exists.
pub fn not_reachable(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no environment named `{name}` that you may reach; GET /api/v1/environments lists yours"
    ))
}

/// The identity called `name` as the gateway knows it: a local user or a service account
/// (config or API). Anyone else (an SSO user, say) is a person with no groups unless the
/// request names some.
async fn known_identity(gw: &Gateway, name: &str) -> Result<Identity, ApiError> {
    let mut identity = Identity {
        name: name.to_string(),
        kind: IdentityKind::Human,
        groups: Vec::new(),
        on_behalf_of: None,
        session_id: None,
    };
    if let Some(u) = gw.config.users.iter().find(|u| u.name.get_ref() == name) {
        identity.groups = u.groups.clone();
        return Ok(identity);
    }
    if let Some(sa) = gw
        .auth
        .list_service_accounts()
        .await?
        .into_iter()
        .find(|v| v.record.name == name && v.record.revoked_at.is_none())
    {
        identity.kind = IdentityKind::parse(&sa.record.kind);
        identity.groups = sa.record.groups;
        identity.on_behalf_of = sa.record.on_behalf_of;
    }
    Ok(identity)
}

/// Puts an administrator's rule change into the audit chain as `admin.<action>`.
async fn audit(gw: &Gateway, admin: &Identity, action: &str, details: serde_json::Value) {
    tracing::info!(actor = %admin.name, action, details = %details, "admin action");
    let r = crate::audit::AuditRecord::new(format!("admin.{action}"))
        .by(admin)
        .details(details);
    gw.audit
        .record(crate::audit::Pending::Record(Box::new(r)))
        .await;
}
