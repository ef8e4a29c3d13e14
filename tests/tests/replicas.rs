//! Several gateway replicas sharing one PostgreSQL store (`[store] url`), judged by effect: two
//! gateway processes on one machine, a throwaway cluster as their store and another as the
//! upstream. What one replica is told, the other knows: sessions, their logout, service
//! accounts, lockouts and approvals.

use gatehouse_tests::{
    app_database, app_url, random_token, sqlstate, Api, Cluster, Gateway, GatewayBuilder, ADMIN,
    ADMIN_PASSWORD, AGENT, ENV,
};
use serde_json::json;

/// Two replicas (`a`, `b`) of one gateway: the same config, each its own data dir and ports,
/// one shared store.
struct Replicas {
    /// The shared store's cluster.
    store: Cluster,
    /// The upstream.
    app: Cluster,
    a: Gateway,
    b: Gateway,
    /// The `agent` service account's token (a config service account).
    token: String,
}

impl Replicas {
    async fn start() -> Replicas {
        Self::start_with(|b| b).await
    }

    async fn start_with(extra: impl Fn(GatewayBuilder) -> GatewayBuilder) -> Replicas {
        let store = Cluster::start().await;
        store.exec("postgres", "CREATE DATABASE gatehouse").await;
        let (app, upstream_password) = app_database().await;
        let token = random_token("gha_");
        let url = format!(
            "postgresql://postgres@127.0.0.1:{}/gatehouse?sslmode=disable",
            store.port
        );
        let builder = || {
            extra(
                GatewayBuilder::new()
                    .environment(ENV, "production", &app_url(&app), Some(&upstream_password))
                    .service_account(AGENT, &token, &["agents"])
                    .user(ADMIN, ADMIN_PASSWORD, &["admins"])
                    .user("dana", "dana-pw", &["analysts"])
                    .grant(&["agents", "admins"], &[ENV])
                    .server("approval_window_seconds = 30")
                    .shared_store(&url, &store.password),
            )
        };
        // Started one after the other and together: the second finds the schema migrated.
        let (a, b) = tokio::join!(builder().start(), builder().start());
        Replicas {
            store,
            app,
            a,
            b,
            token,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_through_one_replica_connects_through_the_other_until_logout_on_either() {
    let r = Replicas::start().await;
    let session = r.a.login(ADMIN, ADMIN_PASSWORD).await;

    // The session issued by A lets its holder in through B, and B's API knows it too.
    let c =
        r.b.connect(ENV, ADMIN, &session)
            .await
            .unwrap_or_else(|e| panic!("connect through B: {e}\n{}", r.b.log()));
    let one: i32 = c.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    let (status, me) = Api::new(r.b.http()).get("/api/v1/whoami", &session).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["name"], ADMIN);

    // Logging out through B ends the session for A as well.
    let (status, body) = Api::new(r.b.http())
        .post("/api/v1/auth/logout", &session, json!({}))
        .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let e =
        r.a.connect(ENV, ADMIN, &session)
            .await
            .expect_err("a logged-out session is refused by every replica");
    assert!(["28000", "28P01"].contains(&sqlstate(&e).as_str()), "{e:?}");
    assert_eq!(
        Api::new(r.a.http()).get("/api/v1/whoami", &session).await.0,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_accounts_lockouts_and_approvals_made_on_one_replica_hold_on_the_other() {
    let r = Replicas::start().await;
    let admin_a = r.a.login(ADMIN, ADMIN_PASSWORD).await;
    let admin_b = r.b.login(ADMIN, ADMIN_PASSWORD).await;

    // A service account created through A authenticates through B; revoked through B, A
    // refuses it.
    let (status, created) = Api::new(r.a.http())
        .post(
            "/api/v1/service-accounts",
            &admin_a,
            json!({"name": "ci-bot", "groups": ["agents"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let bot_token = created["token"].as_str().unwrap().to_string();
    let bot_id = created["service_account"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let c =
        r.b.connect(ENV, "ci-bot", &bot_token)
            .await
            .unwrap_or_else(|e| panic!("ci-bot through B: {e}\n{}", r.b.log()));
    c.query_one("SELECT 1", &[]).await.unwrap();
    let (status, body) = Api::new(r.b.http())
        .delete(&format!("/api/v1/service-accounts/{bot_id}"), &admin_b)
        .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let e =
        r.a.connect(ENV, "ci-bot", &bot_token)
            .await
            .expect_err("a revoked service account is refused by every replica");
    assert!(["28000", "28P01"].contains(&sqlstate(&e).as_str()), "{e:?}");

    // A user locked out through A's failed logins is locked out on B, right password or not.
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let s = http
            .post(format!("{}/api/v1/auth/login", r.a.http()))
            .json(&json!({"username": "dana", "password": "wrong"}))
            .send()
            .await
            .unwrap()
            .status();
        assert!(s == 401 || s == 429, "{s}");
    }
    let s = http
        .post(format!("{}/api/v1/auth/login", r.b.http()))
        .json(&json!({"username": "dana", "password": "dana-pw"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 429, "the lockout set through A holds on B");

    // A statement held for review on A is listed by B's approvals API.
    let conn = r.a.conn_str(ENV, AGENT, &r.token);
    let psql = std::thread::spawn(move || {
        gatehouse_tests::run_cmd(
            std::process::Command::new("psql").arg(conn).args([
                "-X",
                "-c",
                "CREATE TABLE held_on_a (id int)",
            ]),
            std::time::Duration::from_secs(60),
        )
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let held = loop {
        let (status, page) = Api::new(r.b.http())
            .get("/api/v1/approvals?state=pending", &admin_b)
            .await;
        assert_eq!(status, 200, "{page}");
        if let Some(a) = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["statement"].as_str().unwrap_or("").contains("held_on_a"))
        {
            break a.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no pending approval on B:\n{}",
            r.a.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(held["identity"], AGENT);
    // Deny it through A (where it is held) so the client is released.
    let id = held["id"].as_str().unwrap();
    let (status, body) = Api::new(r.a.http())
        .post(
            &format!("/api/v1/approvals/{id}/deny"),
            &admin_a,
            json!({"reason": "not now"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let out = psql.join().unwrap();
    assert!(!out.ok(), "{out:?}");
    let _ = (&r.store, &r.app);
}
