//! The common setup: one cluster with an application database owned by a non-superuser role, a
//! gateway with environment `app` on it, and a service account `agent` granted that environment.

use crate::{random_token, Cluster, Gateway, GatewayBuilder};

pub const ENV: &str = "app";
pub const AGENT: &str = "agent";

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

    /// psql through the gateway as `agent`.
    pub fn psql(&self, args: &[&str]) -> crate::CmdOutput {
        self.gw.psql(ENV, AGENT, &self.token, args)
    }
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
