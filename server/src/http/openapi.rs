//! The OpenAPI document, generated from the handlers' annotations so it cannot drift from them.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    access, admin, api, approvals, audit, connections, events, groups, masking, oidc, policy,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse API", description = "Identity-aware access gateway for databases."),
    paths(
        api::healthz, api::info, api::login, api::logout, api::refresh, api::environments, api::whoami,
        oidc::start, oidc::callback, oidc::token,
        admin::list_sessions, admin::revoke_session,
        admin::list_grants, admin::create_grant, admin::delete_grant,
        groups::list, groups::add_member, groups::remove_member,
        admin::list_service_accounts, admin::create_service_account,
        admin::rotate_service_account, admin::revoke_service_account,
        audit::list, audit::export, connections::list, connections::terminate,
        approvals::list, approvals::get, approvals::approve, approvals::deny, events::stream,
        policy::list_rules, policy::create_rule, policy::update_rule, policy::delete_rule,
        policy::list_versions, policy::dry_run,
        masking::get_catalog, masking::refresh_catalog, masking::put_tag, masking::delete_tag,
        masking::list_exemptions, masking::create_exemption, masking::delete_exemption,
        masking::request_exemption,
        access::create, access::mine, access::environments, access::withdraw,
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
