//! The common setup: one cluster with an application database owned by a non-superuser role, a
//! gateway with environment `app` on it, and a service account `agent` granted that environment.

use crate::{random_token, Cluster, Gateway, GatewayBuilder};

pub const ENV: &str = "app";
pub const AGENT: &str = "agent";
/// A second environment on the same database, granted to the group `others` by
/// [`two_environments`]: whose connections are someone else's business in a test.
pub const OTHER_ENV: &str = "other";
/// The administrator that tests reading the audit trail add (`.user(ADMIN, ADMIN_PASSWORD,
/// &["admins"])`).
pub const ADMIN: &str = "root";
pub const ADMIN_PASSWORD: &str = "root-pw";

pub struct Fixture {
    pub cluster: Cluster,
    pub gw: Gateway,
    /// The `agent` service account's token.
    pub token: String,
    /// The upstream role's password (which clients never see).
    pub upstream_password: String,
}

impl Fixture {
    pub async fn start() -> Fixture {
        Self::start_with(|b| b).await
    }

    /// Like [`Fixture::start`], with extra gateway settings.
    /// The environment is `staging`: the built-in production guardrails stay out of the way of
    /// tests about other things. [`Fixture::start_with_tier`] picks another tier.
    pub async fn start_with(extra: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> Fixture {
        Self::start_with_tier("staging", extra).await
    }

    /// Like [`Fixture::start_with`], with the environment in `tier`.
    pub async fn start_with_tier(
        tier: &str,
        extra: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
    ) -> Fixture {
        let (cluster, upstream_password) = app_database().await;
        let token = random_token("gha_");
        let builder = GatewayBuilder::new()
            .environment(ENV, tier, &app_url(&cluster), Some(&upstream_password))
            .service_account(AGENT, &token, &["agents"])
            .grant(&["agents"], &[ENV]);
        let gw = extra(builder).start().await;
        Fixture {
            cluster,
            gw,
            token,
            upstream_password,
        }
    }

    /// A tokio-postgres client through the gateway, as `agent`.
    pub async fn connect(&self) -> tokio_postgres::Client {
        self.gw
            .connect(ENV, AGENT, &self.token)
            .await
            .unwrap_or_else(|e| panic!("connect through the gateway: {e}\n{}", self.gw.log()))
    }

    /// A production environment where a statement held for review fails within 3 s instead of
    /// a minute, and [`ADMIN`]: for checking that what a tool reads is never held.
    pub async fn production_without_long_holds() -> Fixture {
        Self::start_with_tier("production", |b| {
            b.server("approval_window_seconds = 3")
                .user(ADMIN, ADMIN_PASSWORD, &["admins"])
        })
        .await
    }

    /// The `agent`'s statement records in the audit trail, newest first (at most 500), those
    /// whose text contains `q` when given; read as [`ADMIN`], whom the gateway must have.
    pub async fn agent_statements(&self, q: Option<&str>) -> Vec<serde_json::Value> {
        let admin = self.gw.login(ADMIN, ADMIN_PASSWORD).await;
        let mut path = format!("/api/v1/audit?identity={AGENT}&event=statement&limit=500");
        if let Some(q) = q {
            path.push_str("&q=");
            path.extend(url::form_urlencoded::byte_serialize(q.as_bytes()));
        }
        let (status, page) = crate::Api::new(self.gw.http()).get(&path, &admin).await;
        assert_eq!(status, 200, "{page}");
        page["items"].as_array().cloned().unwrap_or_default()
    }

    /// psql through the gateway as `agent`.
    pub fn psql(&self, args: &[&str]) -> crate::CmdOutput {
        self.gw.psql(ENV, AGENT, &self.token, args)
    }
}

/// A gateway with the fixture's environment and [`OTHER_ENV`] both on `cluster`'s application
/// database, the `agent` (token `agent_token`) granted [`ENV`], the group `others` granted
/// [`OTHER_ENV`], and [`ADMIN`]; tests add their people and grants.
pub fn two_environments(
    cluster: &Cluster,
    upstream_password: &str,
    agent_token: &str,
) -> GatewayBuilder {
    GatewayBuilder::new()
        .environment(ENV, "staging", &app_url(cluster), Some(upstream_password))
        .environment(
            OTHER_ENV,
            "staging",
            &app_url(cluster),
            Some(upstream_password),
        )
        .service_account(AGENT, agent_token, &["agents"])
        .user(ADMIN, ADMIN_PASSWORD, &["admins"])
        .grant(&["agents"], &[ENV])
        .grant(&["others"], &[OTHER_ENV])
}

/// A cluster with the application database `appdb` owned by the non-superuser role
/// `app_owner`; the role's password.
pub async fn app_database() -> (Cluster, String) {
    let cluster = Cluster::start().await;
    let password = random_token("up");
    cluster
        .exec(
            "postgres",
            &format!("CREATE ROLE app_owner LOGIN PASSWORD '{password}'"),
        )
        .await;
    cluster
        .exec("postgres", "CREATE DATABASE appdb OWNER app_owner")
        .await;
    (cluster, password)
}

/// The upstream URL of the fixture's application database (password passed separately).
pub fn app_url(cluster: &Cluster) -> String {
    format!(
        "postgresql://app_owner@127.0.0.1:{}/appdb?sslmode=prefer",
        cluster.port
    )
}
