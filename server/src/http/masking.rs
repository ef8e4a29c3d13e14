//! Masking administration under `/api/v1` (admin only, every change audited): the catalog of an
//! environment with each column's sensitivity tag, overrides of those tags, an on-demand
//! re-read, and exemptions (a group may see a category unmasked in an environment, optionally
//! until a time).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::record_admin_action;
use super::auth::Admin;
use super::error::{ApiError, ErrorBody};
use crate::gateway::Gateway;
use crate::masking::catalog::{CatalogTable, Override};
use crate::masking::{Category, Exemption};
use crate::store::Change;

#[derive(Serialize, ToSchema)]
pub struct CatalogDatabase {
    pub database: String,
    /// When the gateway last read it (RFC 3339).
    pub loaded_at: String,
    pub tables: Vec<CatalogTable>,
}

#[derive(Serialize, ToSchema)]
pub struct CatalogView {
    pub environment: String,
    pub databases: Vec<CatalogDatabase>,
    /// Admin overrides in force for this environment.
    pub overrides: Vec<Override>,
}

fn environment(gw: &Gateway, name: &str) -> Result<Arc<crate::gateway::Environment>, ApiError> {
    gw.environments
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no environment named \"{name}\"")))
}

fn view(gw: &Gateway, env: &str) -> CatalogView {
    // Only the databases the environment reaches now (a catalog kept from before its
    // `databases` changed is not this environment's any more).
    let reaches = |db: &str| gw.environments.get(env).is_some_and(|e| e.reaches(db));
    let mut databases: Vec<CatalogDatabase> = gw
        .masking
        .catalogs_of(env)
        .into_iter()
        .filter(|(database, _)| reaches(database))
        .map(|(database, c)| CatalogDatabase {
            database,
            loaded_at: c.loaded_at.to_rfc3339(),
            tables: c.tables.clone(),
        })
        .collect();
    databases.sort_by(|a, b| a.database.cmp(&b.database));
    CatalogView {
        environment: env.to_string(),
        databases,
        overrides: gw.masking.overrides_for(env),
    }
}

/// The catalog of an environment: tables, columns, types and sensitivity tags (admin). Read
/// from the upstream first if no session has reached the environment yet.
#[utoipa::path(
    get, path = "/api/v1/environments/{name}/catalog", params(("name" = String, Path, description = "environment")),
    responses((status = 200, body = CatalogView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_catalog(
    State(gw): State<Arc<Gateway>>,
    _admin: Admin,
    Path(name): Path<String>,
) -> Result<Json<CatalogView>, ApiError> {
    let env = environment(&gw, &name)?;
    if gw.masking.catalogs_of(&name).is_empty() {
        let db = env.target.database.clone();
        crate::pg::catalog::ensure(&gw, &env, &db, false).await;
    }
    Ok(Json(view(&gw, &name)))
}

/// Read the catalog of an environment again now (admin, audited).
#[utoipa::path(
    post, path = "/api/v1/environments/{name}/catalog/refresh", params(("name" = String, Path, description = "environment")),
    responses((status = 200, body = CatalogView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn refresh_catalog(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Path(name): Path<String>,
) -> Result<Json<CatalogView>, ApiError> {
    let env = environment(&gw, &name)?;
    let mut dbs: Vec<String> = gw
        .masking
        .catalogs_of(&name)
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    if dbs.is_empty() {
        dbs.push(env.target.database.clone());
    }
    for db in &dbs {
        if crate::pg::catalog::refresh(&gw, &env, db).await.is_none() {
            return Err(ApiError::Internal(format!(
                "the catalog of {name}/{db} could not be read; see the gateway log"
            )));
        }
    }
    record_admin_action(
        &gw,
        &admin.identity,
        "masking.catalog_refresh",
        serde_json::json!({"environment": name, "databases": dbs}),
    )
    .await;
    Ok(Json(view(&gw, &name)))
}

#[derive(Deserialize, ToSchema)]
pub struct TagRequest {
    /// The category (`email`, `phone`, `person_name`, `postal_address`, `date_of_birth`,
    /// `national_id`, `payment_card`, `iban`, `ip_address`, `secret`, `free_text`), or null to
    /// confirm the column holds nothing sensitive (then it is not even value-checked).
    pub category: Option<String>,
}

fn parse_category(s: &str) -> Result<Category, ApiError> {
    Category::parse(s).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown category \"{s}\"; use one of: {}",
            Category::ALL.map(|c| c.as_str()).join(", ")
        ))
    })
}

/// Confirm or override the tag of one column (admin, audited). Applies to new result sets at once.
#[utoipa::path(
    put, path = "/api/v1/environments/{name}/catalog/columns/{schema}/{table}/{column}",
    params(("name" = String, Path), ("schema" = String, Path), ("table" = String, Path), ("column" = String, Path)),
    request_body = TagRequest,
    responses((status = 200, body = Override), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn put_tag(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Path((name, schema, table, column)): Path<(String, String, String, String)>,
    Json(req): Json<TagRequest>,
) -> Result<Json<Override>, ApiError> {
    environment(&gw, &name)?;
    let category = req.category.as_deref().map(parse_category).transpose()?;
    let o = Override {
        environment: name.clone(),
        schema,
        table,
        column,
        category,
        set_by: admin.identity.name.clone(),
        set_at: chrono::Utc::now(),
    };
    gw.store.put_masking_override(o.clone()).await?;
    gw.reload_masking_overrides().await?;
    gw.store.announce(Change::Masking);
    tracing::info!(actor = %admin.identity.name, action = "masking.tag", env = %name, table = %o.table, column = %o.column, category = ?o.category.map(|c| c.as_str()), "admin action");
    record_admin_action(
        &gw,
        &admin.identity,
        "masking.tag",
        serde_json::json!({"environment": name, "schema": o.schema, "table": o.table, "column": o.column, "category": o.category.map(|c| c.as_str())}),
    )
    .await;
    Ok(Json(o))
}

/// Remove an override: the column's tag is the gateway's own again (admin, audited).
#[utoipa::path(
    delete, path = "/api/v1/environments/{name}/catalog/columns/{schema}/{table}/{column}",
    params(("name" = String, Path), ("schema" = String, Path), ("table" = String, Path), ("column" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn delete_tag(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Path((name, schema, table, column)): Path<(String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let found = gw
        .store
        .delete_masking_override(name.clone(), schema.clone(), table.clone(), column.clone())
        .await?;
    if !found {
        return Err(ApiError::NotFound("no override for that column".into()));
    }
    gw.reload_masking_overrides().await?;
    gw.store.announce(Change::Masking);
    record_admin_action(
        &gw,
        &admin.identity,
        "masking.untag",
        serde_json::json!({"environment": name, "schema": schema, "table": table, "column": column}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct ExemptionList {
    pub items: Vec<Exemption>,
}

#[derive(Deserialize, Serialize, ToSchema)]
pub struct ExemptionRequest {
    pub group: String,
    /// An environment name, or `*` for all.
    pub environment: String,
    /// A category to exempt …
    pub category: Option<String>,
    /// … or one column, `table.column` or `schema.table.column` (exactly one of the two).
    pub column: Option<String>,
    /// Time-boxed: the exemption ends this many seconds from now.
    pub expires_in_seconds: Option<i64>,
    pub reason: Option<String>,
}

/// List masking exemptions (admin).
#[utoipa::path(
    get, path = "/api/v1/exemptions",
    responses((status = 200, body = ExemptionList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_exemptions(
    State(gw): State<Arc<Gateway>>,
    _admin: Admin,
) -> Result<Json<ExemptionList>, ApiError> {
    Ok(Json(ExemptionList {
        items: gw.store.exemptions().await?,
    }))
}

/// Exempt a group from masking of one category in an environment (admin, audited). Applies to
/// connections opened from now on; each result it lets through is audited.
#[utoipa::path(
    post, path = "/api/v1/exemptions", request_body = ExemptionRequest,
    responses((status = 201, body = Exemption), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn create_exemption(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Json(req): Json<ExemptionRequest>,
) -> Result<(StatusCode, Json<Exemption>), ApiError> {
    let e = exemption_from(&gw, req, &admin.identity.name)?;
    install_exemption(&gw, &admin.identity, e.clone(), None).await?;
    Ok((StatusCode::CREATED, Json(e)))
}

/// Stores an exemption, puts it in force for new connections and audits who made it (and the
/// approval it came from, if any).
async fn install_exemption(
    gw: &Gateway,
    actor: &crate::identity::Identity,
    e: Exemption,
    approval_id: Option<&str>,
) -> Result<(), ApiError> {
    gw.store.insert_exemption(e.clone()).await?;
    gw.reload_exemptions().await?;
    gw.store.announce(Change::Masking);
    tracing::info!(actor = %actor.name, action = "masking.exemption.create", id = %e.id, group = %e.group, env = %e.environment, category = ?e.category.map(|c| c.as_str()), column = ?e.column, approval = ?approval_id, "admin action");
    let mut details = serde_json::to_value(&e).unwrap_or_default();
    if let (Some(a), Some(obj)) = (approval_id, details.as_object_mut()) {
        obj.insert("approval_id".into(), serde_json::json!(a));
    }
    record_admin_action(gw, actor, "masking.exemption.create", details).await;
    Ok(())
}

/// The rule name an exemption request carries as an approval.
pub const EXEMPTION_REQUEST_RULE: &str = crate::store::EXEMPTION_REQUEST_RULE;
/// The longest exemption a request may ask for; longer ones are an admin's to create.
const MAX_REQUESTED_SECONDS: i64 = 7 * 24 * 3600;

/// Ask for an exemption through an approval (any identity): for one of the caller's own groups,
/// in one environment, time-boxed, with a reason. Approvers of that environment decide it like a
/// statement (`/api/v1/approvals`); once approved, the exemption starts then, for the time asked.
#[utoipa::path(
    post, path = "/api/v1/exemptions/requests", request_body = ExemptionRequest,
    responses((status = 202, body = crate::store::ApprovalRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn request_exemption(
    State(gw): State<Arc<Gateway>>,
    caller: crate::http::auth::Caller,
    Json(req): Json<ExemptionRequest>,
) -> Result<(StatusCode, Json<crate::store::ApprovalRecord>), ApiError> {
    let who = &caller.identity;
    if req.environment == "*" {
        return Err(ApiError::BadRequest(
            "a request names one environment".into(),
        ));
    }
    // One of the caller's environments; any other gets the answer a missing one gets.
    if !gw.is_admin(who) && gw.granted_environment(who, &req.environment).is_none() {
        return Err(super::policy::not_reachable(&req.environment));
    }
    if !who.groups.contains(&req.group) {
        return Err(ApiError::BadRequest(format!(
            "you can only ask for an exemption for a group you are in ({})",
            who.groups.join(", ")
        )));
    }
    match req.expires_in_seconds {
        Some(s) if s > 0 && s <= MAX_REQUESTED_SECONDS => {}
        _ => {
            return Err(ApiError::BadRequest(format!(
                "expires_in_seconds is required: 1 to {MAX_REQUESTED_SECONDS}"
            )))
        }
    }
    let Some(reason) = req.reason.clone().filter(|r| !r.trim().is_empty()) else {
        return Err(ApiError::BadRequest(
            "a reason is required, for the approver".into(),
        ));
    };
    // Checked now so the approver decides a request that can be carried out.
    let draft = exemption_from(&gw, req, &who.name)?;
    let what = match (&draft.category, &draft.column) {
        (Some(c), _) => format!("category {}", c.as_str()),
        (None, Some(col)) => format!("column {col}"),
        (None, None) => "nothing".into(),
    };
    let seconds = draft
        .expires_at
        .map(|t| (t - draft.created_at).num_seconds())
        .unwrap_or(0);
    let (record, _) = gw
        .approvals
        .request(crate::approval::NewApproval {
            statement: format!(
                "-- masking exemption: group {} sees {what} unmasked in {} for {seconds} s",
                draft.group, draft.environment
            ),
            fingerprint: EXEMPTION_REQUEST_RULE.into(),
            identity: who.clone(),
            environment: draft.environment.clone(),
            database: String::new(),
            rule: EXEMPTION_REQUEST_RULE.into(),
            reason,
            classification: Some(serde_json::json!({ "exemption_request": {
                "group": draft.group,
                "environment": draft.environment,
                "category": draft.category.map(|c| c.as_str()),
                "column": draft.column,
                "expires_in_seconds": seconds,
                "reason": draft.reason,
            }})),
            estimated_rows: None,
            connection_id: None,
        })
        .await?;
    // Nobody is held: the exemption is created when the approval is decided.
    gw.approvals.stop_waiting(&record.id);
    let mut r = crate::audit::AuditRecord::new("masking.exemption.requested").by(who);
    r.approval_id = Some(record.id.clone());
    r.environment = Some(record.environment.clone());
    r.details = record.classification.clone();
    gw.audit
        .record(crate::audit::Pending::Record(Box::new(r)))
        .await;
    Ok((StatusCode::ACCEPTED, Json(record)))
}

/// After an approver approved an exemption request: the exemption, from now, for the time asked,
/// made by the approver.
pub async fn grant_requested_exemption(
    gw: &Gateway,
    approval: &crate::store::ApprovalRecord,
    approver: &crate::identity::Identity,
) -> Result<Exemption, ApiError> {
    let asked = approval
        .classification
        .as_ref()
        .and_then(|c| c.get("exemption_request"))
        .cloned()
        .ok_or_else(|| ApiError::Internal("the approval holds no exemption request".into()))?;
    let req: ExemptionRequest = serde_json::from_value(asked)
        .map_err(|e| ApiError::Internal(format!("the exemption request cannot be read: {e}")))?;
    let mut e = exemption_from(gw, req, &approver.name)?;
    if e.reason.is_none() {
        e.reason = Some(approval.reason.clone());
    }
    install_exemption(gw, approver, e.clone(), Some(&approval.id)).await?;
    Ok(e)
}

/// Checks a request and makes the exemption it describes, starting now.
fn exemption_from(
    gw: &Gateway,
    req: ExemptionRequest,
    created_by: &str,
) -> Result<Exemption, ApiError> {
    if req.environment != "*" {
        environment(gw, &req.environment)?;
    }
    if req.group.trim().is_empty() {
        return Err(ApiError::BadRequest("group must not be empty".into()));
    }
    let category = match (&req.category, &req.column) {
        (Some(c), None) => Some(parse_category(c)?),
        (None, Some(col)) if col.contains('.') && !col.starts_with('.') && !col.ends_with('.') => {
            None
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of category or column (as table.column)".into(),
            ))
        }
    };
    let now = chrono::Utc::now();
    let expires_at = match req.expires_in_seconds {
        Some(s) if s <= 0 => {
            return Err(ApiError::BadRequest(
                "expires_in_seconds must be positive".into(),
            ))
        }
        Some(s) => Some(now + chrono::Duration::seconds(s)),
        None => None,
    };
    Ok(Exemption {
        id: crate::identity::tokens::random_id(),
        group: req.group,
        environment: req.environment,
        category,
        column: req.column,
        expires_at,
        reason: req.reason,
        created_by: created_by.to_string(),
        created_at: now,
    })
}

/// Remove an exemption (admin, audited). Connections opened from now on are masked again.
#[utoipa::path(
    delete, path = "/api/v1/exemptions/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn delete_exemption(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !gw.store.delete_exemption(id.clone()).await? {
        return Err(ApiError::NotFound(format!("no exemption {id}")));
    }
    gw.reload_exemptions().await?;
    gw.store.announce(Change::Masking);
    record_admin_action(
        &gw,
        &admin.identity,
        "masking.exemption.delete",
        serde_json::json!({"id": id}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
