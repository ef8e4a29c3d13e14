//! The MCP tools agents call. Each one is thin: who is calling (the bearer token's identity,
//! possibly acting for a person), the limits, then the gateway's own machinery: statements go
//! through a loopback session on the gateway's PostgreSQL listener ([`crate::pg::loopback`]),
//! so classification, rules, approvals, masking and audit are the ones a psql session meets.
//! Every call, whatever its outcome, leaves an `mcp.call` audit record; a limit hit leaves an
//! `mcp.limit` record.

use std::sync::Arc;
use std::time::Duration;

use axum::http::request::Parts;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, Implementation, ListResourcesResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResult, Resource, ResourceContents, ServerCapabilities,
    ServerInfo,
};
use rmcp::schemars::{self, JsonSchema};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData as McpError, RoleServer, ServerHandler};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::catalog;
use super::limits::{Admitted, LimitHit, Limits};
use super::McpCaller;
use crate::audit::{AuditRecord, Pending};
use crate::gateway::Gateway;
use crate::identity::Identity;
use crate::pg::loopback::{self, LoopbackError, Reply, ServerError};
use crate::pg::session::MCP_APPLICATION;

/// What every tool call shares: the gateway and the per-identity limits.
pub struct Shared {
    pub gw: Arc<Gateway>,
    pub limits: Limits,
}

/// One MCP session's server; cheap to clone (the state is shared).
#[derive(Clone)]
pub struct GatehouseMcp {
    shared: Arc<Shared>,
    tool_router: ToolRouter<GatehouseMcp>,
}

const INSTRUCTIONS: &str = "Gatehouse gives you governed access to PostgreSQL databases. \
Start with list_environments, then describe an environment to learn its tables and columns. \
Run SQL with query (PostgreSQL dialect); every statement passes the same guardrails, approvals, \
masking and audit as a person's psql session. Results are capped: prefer LIMIT and aggregates. \
If query answers status=pending_approval, call wait_for_approval with the approval_id, and once \
it is approved call query again with exactly the same sql: it then runs once. \
A denied statement (sqlstate 42501) names the rule that denied it; do not retry it unchanged. \
Columns marked sensitive come back masked. Pass on_behalf_of with the person you act for.";

/// `on_behalf_of`, common to the tools that act.
const OBO_DOC: &str = "The person you act for (their user name or email), if any; policy and audit record it. Overrides the X-Gatehouse-On-Behalf-Of header.";

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListEnvironmentsArgs {
    #[schemars(description = OBO_DOC)]
    pub on_behalf_of: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DescribeArgs {
    /// The environment's name, as list_environments gives it.
    pub environment: String,
    /// Only this schema (e.g. `public`).
    pub schema: Option<String>,
    /// Only this table or view (`name` or `schema.name`).
    pub table: Option<String>,
    #[schemars(description = OBO_DOC)]
    pub on_behalf_of: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct QueryArgs {
    /// The environment's name, as list_environments gives it.
    pub environment: String,
    /// The SQL to run (PostgreSQL). Several statements separated by `;` run in one implicit
    /// transaction. Re-send exactly the same text after an approval.
    pub sql: String,
    /// Return at most this many rows (capped by the gateway's own limit).
    pub max_rows: Option<usize>,
    #[schemars(description = OBO_DOC)]
    pub on_behalf_of: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ExplainArgs {
    /// The environment's name, as list_environments gives it.
    pub environment: String,
    /// One SQL statement to plan (without EXPLAIN); it is not executed.
    pub sql: String,
    #[schemars(description = OBO_DOC)]
    pub on_behalf_of: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ApprovalArgs {
    /// The approval id a query returned (`apr_…`).
    pub approval_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaitArgs {
    /// The approval id a query returned (`apr_…`).
    pub approval_id: String,
    /// How long to wait for a decision, in seconds (default 60; the gateway caps it).
    pub timeout_seconds: Option<u64>,
}

/// A statement for the loopback session: the simple protocol (several statements allowed)
/// or exactly one statement; with the most rows to keep.
enum Call<'a> {
    Simple(&'a str, usize),
    One(&'a str, usize),
}

/// What a tool call came to, for the audit record.
#[derive(Default)]
struct Outcome {
    status: &'static str,
    environment: Option<String>,
    sql: Option<String>,
    rows: Option<i64>,
    sqlstate: Option<String>,
    error: Option<String>,
    approval_id: Option<String>,
    extra: Option<Value>,
}

fn ok(value: Value) -> CallToolResult {
    CallToolResult::structured(value)
}

fn tool_error(value: Value) -> CallToolResult {
    CallToolResult::structured_error(value)
}

#[tool_router]
impl GatehouseMcp {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "List the database environments you may reach through Gatehouse, with each one's tier (production, staging, development), tags and description. Production environments have the strictest guardrails: writes may need approval and destructive statements are denied."
    )]
    async fn list_environments(
        &self,
        Parameters(args): Parameters<ListEnvironmentsArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, McpError> {
        Ok(self
            .list_environments_call(args, &parts)
            .await
            .unwrap_or_else(|refusal| refusal))
    }

    #[tool(
        description = "Describe an environment's database: schemas, tables and views, their columns and types. Columns that likely hold personal data or secrets are marked sensitive (their values are never shown here and come back masked from query). Narrow it with schema or table on large databases."
    )]
    async fn describe(
        &self,
        Parameters(args): Parameters<DescribeArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, McpError> {
        Ok(self
            .describe_call(args, &parts)
            .await
            .unwrap_or_else(|refusal| refusal))
    }

    #[tool(
        description = "Run SQL in an environment through Gatehouse's guardrails, exactly like a psql session: the statement may be allowed, denied (sqlstate 42501, with the rule that denied it) or sent to review (status pending_approval with an approval_id). Returns result sets with columns, rows (arrays, in column order), row_count and total_rows; rows beyond the cap are left out and truncated is true. Sensitive values come back masked. Each call is its own database session: a transaction must begin and end within one call."
    )]
    async fn query(
        &self,
        Parameters(args): Parameters<QueryArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, McpError> {
        Ok(self
            .query_call(args, &parts)
            .await
            .unwrap_or_else(|refusal| refusal))
    }

    #[tool(
        description = "Show the planner's plan and estimated rows for one SQL statement without running it (EXPLAIN, never ANALYZE). Use it before large reads or any write to see how many rows would be touched."
    )]
    async fn explain(
        &self,
        Parameters(args): Parameters<ExplainArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, McpError> {
        Ok(self
            .explain_call(args, &parts)
            .await
            .unwrap_or_else(|refusal| refusal))
    }

    #[tool(
        description = "The state of an approval a query was sent to: pending (approvers have not decided), approved (call query again with exactly the same sql; it runs once before grant_expires_at), used (it already ran), or denied (with the approver's reason)."
    )]
    async fn approval_status(
        &self,
        Parameters(args): Parameters<ApprovalArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, McpError> {
        Ok(self
            .approval_status_call(args, &parts)
            .await
            .unwrap_or_else(|refusal| refusal))
    }

    #[tool(
        description = "Wait until an approval is decided (or timeout_seconds pass), then report its state like approval_status. After approved, call query again with exactly the same sql to run it."
    )]
    async fn wait_for_approval(
        &self,
        Parameters(args): Parameters<WaitArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, McpError> {
        Ok(self
            .wait_for_approval_call(args, &parts)
            .await
            .unwrap_or_else(|refusal| refusal))
    }
}

impl GatehouseMcp {
    // The tools' bodies. `Err` is the tool error to answer with, already audited.

    async fn list_environments_call(
        &self,
        args: ListEnvironmentsArgs,
        parts: &Parts,
    ) -> Result<CallToolResult, CallToolResult> {
        let (who, _) = self
            .caller(parts, args.on_behalf_of.as_deref(), "list_environments")
            .await?;
        let gw = &self.shared.gw;
        let items: Vec<Value> = gw
            .environments
            .values()
            .filter(|e| gw.grants.allows(&who, &e.name))
            .map(|e| {
                json!({
                    "name": e.name,
                    "tier": e.tier,
                    "tags": e.tags,
                    "description": e.description,
                    "databases": e.database_names(),
                })
            })
            .collect();
        let count = items.len();
        self.audit(
            &who,
            "list_environments",
            Outcome {
                status: "ok",
                extra: Some(json!({ "environments": count })),
                ..Default::default()
            },
        )
        .await;
        Ok(ok(
            json!({ "identity": who.name, "on_behalf_of": who.on_behalf_of, "environments": items }),
        ))
    }

    async fn describe_call(
        &self,
        args: DescribeArgs,
        parts: &Parts,
    ) -> Result<CallToolResult, CallToolResult> {
        let (who, token) = self
            .caller(parts, args.on_behalf_of.as_deref(), "describe")
            .await?;
        self.catalog(
            &who,
            &token,
            "describe",
            &args.environment,
            args.schema.as_deref(),
            args.table.as_deref(),
        )
        .await
        .map(ok)
    }

    async fn query_call(
        &self,
        args: QueryArgs,
        parts: &Parts,
    ) -> Result<CallToolResult, CallToolResult> {
        let (who, token) = self
            .caller(parts, args.on_behalf_of.as_deref(), "query")
            .await?;
        let env = args.environment.clone();
        let admitted = self.admit(&who, "query", &env).await?;
        let cap = args
            .max_rows
            .unwrap_or(usize::MAX)
            .min(admitted.row_allowance);
        let sql = args.sql.clone();
        let reply = self
            .run(&who, &token, &env, false, Call::Simple(&sql, cap))
            .await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => return Err(self.failed(&who, "query", &env, Some(&args.sql), e).await),
        };
        let kept = reply.rows_kept();
        admitted.returned(kept as u64);
        drop(admitted);
        let results: Vec<Value> = reply.results.iter().map(catalog::result_json).collect();
        if let Some(e) = reply.error {
            return Err(self
                .refused(&who, "query", &env, Some(&args.sql), e, Some(results))
                .await);
        }
        let truncated = reply.truncated;
        self.audit(
            &who,
            "query",
            Outcome {
                status: "ok",
                environment: Some(env.clone()),
                sql: Some(args.sql.clone()),
                rows: Some(kept as i64),
                extra: Some(json!({ "truncated": truncated, "row_cap": cap })),
                ..Default::default()
            },
        )
        .await;
        Ok(ok(json!({
            "status": "ok",
            "environment": env,
            "results": results,
            "truncated": truncated,
            "row_cap": cap,
            "notices": reply.notices,
        })))
    }

    async fn explain_call(
        &self,
        args: ExplainArgs,
        parts: &Parts,
    ) -> Result<CallToolResult, CallToolResult> {
        let (who, token) = self
            .caller(parts, args.on_behalf_of.as_deref(), "explain")
            .await?;
        let env = args.environment.clone();
        let admitted = self.admit(&who, "explain", &env).await?;
        let statement = args.sql.trim().trim_end_matches(';').trim_end();
        let explain = format!("EXPLAIN (FORMAT JSON) {statement}");
        let reply = self
            .run(&who, &token, &env, true, Call::One(&explain, 1))
            .await;
        drop(admitted);
        let reply = match reply {
            Ok(r) => r,
            Err(e) => return Err(self.failed(&who, "explain", &env, Some(&args.sql), e).await),
        };
        if let Some(e) = reply.error {
            return Err(self
                .refused(&who, "explain", &env, Some(&args.sql), e, None)
                .await);
        }
        let text = reply
            .results
            .first()
            .and_then(|r| r.rows.first())
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_default();
        let plan: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let estimated = crate::pg::estimate::plan_rows(&text);
        let top = plan.get(0).and_then(|p| p.get("Plan"));
        self.audit(
            &who,
            "explain",
            Outcome {
                status: "ok",
                environment: Some(env.clone()),
                sql: Some(args.sql.clone()),
                extra: Some(json!({ "estimated_rows": estimated })),
                ..Default::default()
            },
        )
        .await;
        Ok(ok(json!({
            "status": "ok",
            "environment": env,
            "estimated_rows": estimated,
            "total_cost": top.and_then(|p| p.get("Total Cost")),
            "node": top.and_then(|p| p.get("Node Type")),
            "plan": plan,
        })))
    }

    async fn approval_status_call(
        &self,
        args: ApprovalArgs,
        parts: &Parts,
    ) -> Result<CallToolResult, CallToolResult> {
        let (who, _) = self.caller(parts, None, "approval_status").await?;
        let result = self.approval_view(&who, &args.approval_id).await;
        self.audit_approval(&who, "approval_status", &args.approval_id, &result)
            .await;
        Ok(result)
    }

    async fn wait_for_approval_call(
        &self,
        args: WaitArgs,
        parts: &Parts,
    ) -> Result<CallToolResult, CallToolResult> {
        let (who, _) = self.caller(parts, None, "wait_for_approval").await?;
        let gw = &self.shared.gw;
        let limit = gw.config.mcp.max_wait_seconds.max(1);
        let wait = Duration::from_secs(args.timeout_seconds.unwrap_or(60).clamp(1, limit));
        let deadline = tokio::time::Instant::now() + wait;
        // Subscribe before looking, so a decision between the two is not missed.
        let mut events = gw.approvals.subscribe();
        let result = loop {
            let view = self.approval_view(&who, &args.approval_id).await;
            let pending = view
                .structured_content
                .as_ref()
                .is_some_and(|v| v["state"] == "pending");
            if !pending || tokio::time::Instant::now() >= deadline {
                break view;
            }
            // A decision event, or a periodic look (decisions made by another gateway replica
            // reach the store without an event here).
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_secs(2)),
                async {
                    loop {
                        match events.recv().await {
                            Ok(e) if e.approval.id == args.approval_id => return,
                            Ok(_) => continue,
                            // Missed events: look at the store now.
                            Err(RecvError::Lagged(_)) => return,
                            // No more events: the periodic look is all there is.
                            Err(RecvError::Closed) => std::future::pending::<()>().await,
                        }
                    }
                },
            )
            .await;
        };
        self.audit_approval(&who, "wait_for_approval", &args.approval_id, &result)
            .await;
        Ok(result)
    }

    /// The calling identity (acting for `on_behalf_of`, the argument or the header) and its
    /// token, or the tool error to return (audited as a call of `tool`).
    async fn caller(
        &self,
        parts: &Parts,
        on_behalf_of: Option<&str>,
        tool: &str,
    ) -> Result<(Identity, String), CallToolResult> {
        let Some(c) = parts.extensions.get::<McpCaller>() else {
            // The HTTP layer authenticates every request before it reaches the tools.
            return Err(tool_error(
                json!({ "status": "error", "message": "the request carried no authenticated identity" }),
            ));
        };
        let person = on_behalf_of.or(c.on_behalf_of.as_deref());
        match self.shared.gw.auth.acting_for(c.identity.clone(), person) {
            Ok(i) => Ok((i, c.token.clone())),
            Err(e) => {
                self.audit(
                    &c.identity,
                    tool,
                    Outcome {
                        status: "error",
                        error: Some(e.to_string()),
                        extra: Some(json!({ "requested_on_behalf_of": person })),
                        ..Default::default()
                    },
                )
                .await;
                Err(tool_error(json!({
                    "status": "error",
                    "error": "on_behalf_of",
                    "message": e.to_string(),
                })))
            }
        }
    }

    /// The environment's catalog as `describe` shows it (audited under `tool`), or the tool
    /// error.
    async fn catalog(
        &self,
        who: &Identity,
        token: &str,
        tool: &str,
        env: &str,
        schema: Option<&str>,
        table: Option<&str>,
    ) -> Result<Value, CallToolResult> {
        let admitted = self.admit(who, tool, env).await?;
        let reply = self
            .run(
                who,
                token,
                env,
                true,
                Call::Simple(catalog::DESCRIBE_SQL, catalog::DESCRIBE_MAX_ROWS),
            )
            .await;
        drop(admitted);
        let reply = match reply {
            Ok(r) => r,
            Err(e) => return Err(self.failed(who, tool, env, None, e).await),
        };
        if let Some(e) = reply.error {
            return Err(self.refused(who, tool, env, None, e, None).await);
        }
        let set = reply.results.into_iter().next().unwrap_or_default();
        let mut out = catalog::describe(&set, schema, table);
        out["environment"] = json!(env);
        out["truncated"] = json!(reply.truncated);
        let tables = out["tables"].as_array().map_or(0, Vec::len);
        self.audit(
            who,
            tool,
            Outcome {
                status: "ok",
                environment: Some(env.to_string()),
                extra: Some(json!({ "tables": tables, "schema": schema, "table": table })),
                ..Default::default()
            },
        )
        .await;
        Ok(out)
    }

    /// Admits one statement under the identity's limits, or the tool error (audited).
    async fn admit(
        &self,
        who: &Identity,
        tool: &str,
        env: &str,
    ) -> Result<Admitted, CallToolResult> {
        match self.shared.limits.admit(&who.name) {
            Ok(a) => Ok(a),
            Err(hit) => Err(self.limit_hit(who, tool, env, hit).await),
        }
    }

    async fn limit_hit(
        &self,
        who: &Identity,
        tool: &str,
        env: &str,
        hit: LimitHit,
    ) -> CallToolResult {
        tracing::info!(identity = %who.name, tool, limit = hit.key(), "MCP limit reached");
        metrics::counter!("gatehouse_mcp_limit_hits_total", "limit" => hit.key()).increment(1);
        let mut r = self.record("mcp.limit", who, Some(env));
        r.error = Some(hit.to_string());
        r.details = Some(json!({ "tool": tool, "limit": hit.key() }));
        self.shared
            .gw
            .audit
            .record(Pending::Record(Box::new(r)))
            .await;
        self.audit(
            who,
            tool,
            Outcome {
                status: "limited",
                environment: Some(env.to_string()),
                error: Some(hit.to_string()),
                extra: Some(json!({ "limit": hit.key() })),
                ..Default::default()
            },
        )
        .await;
        tool_error(json!({
            "status": "limited",
            "limit": hit.key(),
            "message": hit.to_string(),
        }))
    }

    /// Opens a loopback session as `who`, runs the statement on it, closes it.
    async fn run(
        &self,
        who: &Identity,
        token: &str,
        env: &str,
        read_only: bool,
        call: Call<'_>,
    ) -> Result<Reply, LoopbackError> {
        let gw = &self.shared.gw;
        let opening = loopback::Opening {
            addr: gw.pg_local_addr.get().copied(),
            tls: gw.config.server.require_tls,
            user: &who.name,
            token,
            environment: env,
            on_behalf_of: who.on_behalf_of.as_deref(),
            statement_timeout: Duration::from_secs(gw.config.mcp.statement_timeout_seconds),
            read_only,
            connect_timeout: Duration::from_secs(
                gw.config.server.upstream_connect_timeout_seconds.max(1),
            ),
            refusals: &gw.refusals,
        };
        let mut session = loopback::open(&opening).await?;
        let reply = match call {
            Call::Simple(sql, max_rows) => session.query(sql, max_rows).await,
            Call::One(sql, max_rows) => session.query_one(sql, max_rows).await,
        };
        session.close().await;
        reply
    }

    /// A statement the gateway refused or the database failed: the SQLSTATE, the reason, the
    /// rule, and for a review the approval to follow.
    async fn refused(
        &self,
        who: &Identity,
        tool: &str,
        env: &str,
        sql: Option<&str>,
        e: ServerError,
        partial: Option<Vec<Value>>,
    ) -> CallToolResult {
        // The gateway's refusals come as data from the session (never read from the message,
        // which a database error could word the same way).
        let approval_id = e.refused.as_ref().and_then(|r| r.approval_id.clone());
        let mut rule = e.refused.as_ref().and_then(|r| r.rule.clone());
        let mut reason = None;
        let mut pending = false;
        if let (Some(r), Some(id)) = (&e.refused, &approval_id) {
            if let Ok(Some(a)) = self.shared.gw.approvals.get(id).await {
                // Held and not decided in time (or approved since): the agent may follow it.
                pending =
                    r.decision == "review" && matches!(a.state.as_str(), "pending" | "approved");
                rule = Some(a.rule);
                reason = Some(a.reason);
            }
        }
        let status = if pending {
            "pending_approval"
        } else if e.refused.is_some() {
            "denied"
        } else {
            "error"
        };
        let mut body = json!({
            "status": status,
            "environment": env,
            "sqlstate": e.sqlstate,
            "message": e.message,
            "hint": e.hint,
            "detail": e.detail,
            "rule": rule,
        });
        if let Some(r) = reason {
            body["reason"] = json!(r);
        }
        if let Some(id) = &approval_id {
            body["approval_id"] = json!(id);
        }
        if let (true, Some(id)) = (pending, &approval_id) {
            body["next"] = json!(format!(
                "The statement did not run. Call wait_for_approval with approval_id {id}; once it is approved, call query again with exactly the same sql."
            ));
        }
        if let Some(p) = partial.filter(|p| !p.is_empty()) {
            body["results_before_error"] = json!(p);
        }
        self.audit(
            who,
            tool,
            Outcome {
                status,
                environment: Some(env.to_string()),
                sql: sql.map(str::to_string),
                sqlstate: Some(e.sqlstate.clone()),
                error: Some(e.message.clone()),
                approval_id,
                extra: rule.map(|r| json!({ "rule": r })),
                ..Default::default()
            },
        )
        .await;
        tool_error(body)
    }

    /// The session could not be opened or broke.
    async fn failed(
        &self,
        who: &Identity,
        tool: &str,
        env: &str,
        sql: Option<&str>,
        e: LoopbackError,
    ) -> CallToolResult {
        if let LoopbackError::Refused(se) = e {
            return self.refused(who, tool, env, sql, se, None).await;
        }
        tracing::warn!(identity = %who.name, tool, error = %e, "MCP statement failed");
        self.audit(
            who,
            tool,
            Outcome {
                status: "error",
                environment: Some(env.to_string()),
                sql: sql.map(str::to_string),
                error: Some(e.to_string()),
                ..Default::default()
            },
        )
        .await;
        tool_error(json!({ "status": "error", "environment": env, "message": e.to_string() }))
    }

    /// An approval as the caller may see it (its requester, its approvers, administrators).
    async fn approval_view(&self, who: &Identity, id: &str) -> CallToolResult {
        let gw = &self.shared.gw;
        let a = match gw.approvals.get(id).await {
            Ok(Some(a)) => a,
            Ok(None) => {
                return tool_error(
                    json!({ "status": "error", "message": format!("no approval {id}") }),
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read approvals");
                return tool_error(
                    json!({ "status": "error", "message": "the gateway cannot read approvals right now; try again shortly" }),
                );
            }
        };
        let visible = a.identity == who.name
            || gw.is_admin(who)
            || gw
                .environments
                .get(&a.environment)
                .is_some_and(|e| who.in_any_group(&e.approvers));
        if !visible {
            return tool_error(
                json!({ "status": "error", "message": format!("no approval {id}") }),
            );
        }
        let next = match a.state.as_str() {
            "pending" => "Approvers have not decided yet; call wait_for_approval again later.".to_string(),
            "approved" => "Approved: call query again with exactly the same sql (and environment); it runs once.".to_string(),
            "used" => "This approval has been used; the statement ran.".to_string(),
            "denied" => "Denied: do not run this statement.".to_string(),
            other => format!("State {other}."),
        };
        ok(json!({
            "approval_id": a.id,
            "state": a.state,
            "environment": a.environment,
            "statement": a.statement,
            "rule": a.rule,
            "reason": a.reason,
            "decided_by": a.decided_by,
            "decision_reason": a.decision_reason,
            "grant_expires_at": a.grant_expires_at,
            "next": next,
        }))
    }

    async fn audit_approval(&self, who: &Identity, tool: &str, id: &str, result: &CallToolResult) {
        let state = result
            .structured_content
            .as_ref()
            .and_then(|v| v["state"].as_str().map(str::to_string));
        self.audit(
            who,
            tool,
            Outcome {
                status: if result.is_error == Some(true) {
                    "error"
                } else {
                    "ok"
                },
                approval_id: Some(id.to_string()),
                extra: Some(json!({ "state": state })),
                ..Default::default()
            },
        )
        .await;
    }

    fn record(&self, event: &str, who: &Identity, env: Option<&str>) -> AuditRecord {
        let mut r = AuditRecord::new(event).by(who);
        r.application_name = Some(MCP_APPLICATION.to_string());
        r.via = Some("mcp".to_string());
        r.environment = env.map(str::to_string);
        r
    }

    /// The `mcp.call` record of one tool call.
    async fn audit(&self, who: &Identity, tool: &str, o: Outcome) {
        let mut r = self.record("mcp.call", who, o.environment.as_deref());
        r.statement = o.sql.as_deref().map(|s| crate::sql::redact(s).into_owned());
        r.rows = o.rows;
        r.sqlstate = o.sqlstate;
        r.error = o.error;
        r.approval_id = o.approval_id;
        let mut details = json!({ "tool": tool, "outcome": o.status });
        if let Some(Value::Object(extra)) = o.extra {
            for (k, v) in extra {
                details[k] = v;
            }
        }
        r.details = Some(details);
        metrics::counter!("gatehouse_mcp_calls_total", "tool" => tool.to_string(), "outcome" => o.status).increment(1);
        self.shared
            .gw
            .audit
            .record(Pending::Record(Box::new(r)))
            .await;
    }
}

/// `gatehouse://environments/{name}/schema`: an environment's catalog as a resource.
const SCHEMA_URI_PREFIX: &str = "gatehouse://environments/";
const SCHEMA_URI_SUFFIX: &str = "/schema";

#[tool_handler(router = self.tool_router)]
impl ServerHandler for GatehouseMcp {
    fn get_info(&self) -> ServerInfo {
        ServerInfo::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("gatehouse", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    /// One schema resource per environment the caller may reach.
    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let parts = context
            .extensions
            .get::<Parts>()
            .ok_or_else(|| McpError::internal_error("no HTTP request", None))?;
        let (who, _) = self
            .caller(parts, None, "resource:list")
            .await
            .map_err(|r| McpError::invalid_params(error_message(&r), None))?;
        let gw = &self.shared.gw;
        let resources = gw
            .environments
            .values()
            .filter(|e| gw.grants.allows(&who, &e.name))
            .map(|e| {
                Resource::new(
                    format!("{SCHEMA_URI_PREFIX}{}{SCHEMA_URI_SUFFIX}", e.name),
                    format!("{} schema", e.name),
                )
                .with_description(format!(
                    "Tables, columns and types of the {} environment ({:?} tier); sensitive columns flagged",
                    e.name, e.tier
                ))
                .with_mime_type("application/json")
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    /// The schema resource: what `describe` gives, under the same limits and audit.
    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResult, McpError> {
        let parts = context
            .extensions
            .get::<Parts>()
            .ok_or_else(|| McpError::internal_error("no HTTP request", None))?;
        let (who, token) = self
            .caller(parts, None, "resource:schema")
            .await
            .map_err(|r| McpError::invalid_params(error_message(&r), None))?;
        let env = request
            .uri
            .strip_prefix(SCHEMA_URI_PREFIX)
            .and_then(|r| r.strip_suffix(SCHEMA_URI_SUFFIX))
            .filter(|e| !e.is_empty() && !e.contains('/'))
            .ok_or_else(|| {
                McpError::resource_not_found(format!("no resource {}", request.uri), None)
            })?;
        match self
            .catalog(&who, &token, "resource:schema", env, None, None)
            .await
        {
            Ok(v) => Ok(ReadResourceResult::new(vec![
                ResourceContents::TextResourceContents {
                    uri: request.uri.clone(),
                    mime_type: Some("application/json".into()),
                    text: v.to_string(),
                    meta: None,
                },
            ])),
            Err(r) => Err(McpError::invalid_params(
                error_message(&r),
                r.structured_content,
            )),
        }
    }
}

/// The message of a structured tool error.
fn error_message(r: &CallToolResult) -> String {
    r.structured_content
        .as_ref()
        .and_then(|v| v["message"].as_str())
        .unwrap_or("refused")
        .to_string()
}
