//! Several gateway replicas sharing one PostgreSQL store (`[store] url`), judged by effect: two
//! gateway processes on one machine, a throwaway cluster as their store and another as the
//! upstream. What one replica is told, the other knows: sessions, their logout, service
//! accounts, lockouts and approvals; and a change through one takes effect on the other's open
//! connections and held statements within two seconds.

use std::time::{Duration, Instant};

use gatehouse_tests::sse::SseStream;
use gatehouse_tests::{
    app_database, app_url, ended_with, random_token, sqlstate, Api, Cluster, Gateway,
    GatewayBuilder, ADMIN, ADMIN_PASSWORD, AGENT, ENV,
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

/// Retries `f` until it holds or `limit` passes; how long it took.
/// Grants the group `analysts` the test environment through `api`; the grant as created.
async fn grant_analysts(api: &Api, admin: &str) -> serde_json::Value {
    let (status, grant) = api
        .post(
            "/api/v1/grants",
            admin,
            json!({"groups": ["analysts"], "environments": [ENV]}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    grant
}

async fn within<F, Fut>(limit: Duration, what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_changed_through_b_takes_effect_on_connections_through_a() {
    let r = Replicas::start().await;
    let admin_b = r.b.login(ADMIN, ADMIN_PASSWORD).await;
    let api_b = Api::new(r.b.http());

    // A grant made through B lets dana in through A within two seconds.
    let dana = r.a.login("dana", "dana-pw").await;
    assert_eq!(
        sqlstate(
            &r.a.connect(ENV, "dana", &dana)
                .await
                .expect_err("no grant yet")
        ),
        "28000"
    );
    let grant = grant_analysts(&api_b, &admin_b).await;
    within(
        Duration::from_secs(2),
        "grant through B seen by A",
        || async { r.a.connect(ENV, "dana", &dana).await.is_ok() },
    )
    .await;

    // Deleting it through B ends dana's connection through A, with the reason A would give.
    let (dana_conn, dana_task) = r.a.connect_watched(ENV, "dana", &dana).await;
    dana_conn.query_one("SELECT 1", &[]).await.unwrap();
    let id = grant["id"].as_str().unwrap();
    assert_eq!(
        api_b
            .delete(&format!("/api/v1/grants/{id}"), &admin_b)
            .await
            .0,
        204
    );
    let started = Instant::now();
    let (code, message) = ended_with(dana_task).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(code, "57P01", "{message}\ngateway A's log:\n{}", r.a.log());
    assert!(
        message.contains(&format!(
            "access to environment \"{ENV}\" was revoked by administrator \"{ADMIN}\""
        )),
        "{message}"
    );

    // A group membership added through B lets dana in through A; removed through B, A ends it.
    let (status, body) = api_b
        .post(
            "/api/v1/groups/agents/members",
            &admin_b,
            json!({"member": "dana"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    within(
        Duration::from_secs(2),
        "membership through B seen by A",
        || async { r.a.connect(ENV, "dana", &dana).await.is_ok() },
    )
    .await;
    let (_c, task) = r.a.connect_watched(ENV, "dana", &dana).await;
    assert_eq!(
        api_b
            .delete("/api/v1/groups/agents/members/dana", &admin_b)
            .await
            .0,
        204
    );
    assert_eq!(ended_with(task).await.0, "57P01");

    // The admin's own session, logged out through B: its connection through A ends.
    let admin_a = r.a.login(ADMIN, ADMIN_PASSWORD).await;
    let (_c, task) = r.a.connect_watched(ENV, ADMIN, &admin_a).await;
    assert_eq!(
        api_b
            .post("/api/v1/auth/logout", &admin_a, json!({}))
            .await
            .0,
        204
    );
    let (code, message) = ended_with(task).await;
    assert_eq!(code, "57P01", "{message}");
    assert!(message.contains("was logged out"), "{message}");

    // A rule made through B decides statements through A.
    let agent = r.a.connect(ENV, AGENT, &r.token).await.unwrap();
    let e = agent
        .simple_query("SELECT * FROM nosuch")
        .await
        .expect_err("no such table");
    assert_eq!(
        sqlstate(&e),
        "42P01",
        "before the rule, the upstream answers"
    );
    let (status, body) = api_b
        .post(
            "/api/v1/rules",
            &admin_b,
            json!({"id": "not-that-table", "action": "deny", "kinds": ["select"],
                   "tables": ["nosuch"], "description": "not that table"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    within(
        Duration::from_secs(2),
        "rule through B applied by A",
        || async {
            agent
                .simple_query("SELECT * FROM nosuch")
                .await
                .is_err_and(|e| sqlstate(&e) == "42501")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_held_on_a_runs_when_approved_on_b_and_both_streams_show_it() {
    let r = Replicas::start().await;
    let admin_a = r.a.login(ADMIN, ADMIN_PASSWORD).await;
    let admin_b = r.b.login(ADMIN, ADMIN_PASSWORD).await;
    r.app
        .exec(
            "appdb",
            "CREATE TABLE t (id int); ALTER TABLE t OWNER TO app_owner",
        )
        .await;
    let mut events_a = SseStream::open(&format!("{}/events", r.a.http()), &admin_a).await;
    let mut events_b = SseStream::open(&format!("{}/events", r.b.http()), &admin_b).await;

    let conn = r.a.conn_str(ENV, AGENT, &r.token);
    let psql = std::thread::spawn(move || {
        gatehouse_tests::run_cmd(
            std::process::Command::new("psql").arg(conn).args([
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "INSERT INTO t VALUES (42)",
            ]),
            Duration::from_secs(60),
        )
    });
    // B's stream shows the approval A created.
    let created = events_b
        .next_matching(Duration::from_secs(10), |v| {
            v["approval"]["statement"]
                .as_str()
                .is_some_and(|s| s.contains("INSERT INTO t VALUES (42)"))
        })
        .await
        .expect("B's /events shows the approval created on A");
    let id = created["approval"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["event"], "approval.created", "{created}");

    // Approved through B: the client held on A runs its statement.
    let (status, body) = Api::new(r.b.http())
        .post(
            &format!("/api/v1/approvals/{id}/approve"),
            &admin_b,
            json!({"reason": "fine"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let out = psql.join().unwrap();
    assert!(out.ok(), "{out:?}\n{}", r.a.log());
    assert!(out.stdout.contains("INSERT 0 1"), "{out:?}");
    let n: i64 = r
        .app
        .client("appdb")
        .await
        .query_one("SELECT count(*) FROM t WHERE id = 42", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    // A's stream shows B's decision; the approval was spent by the client it released.
    events_a
        .next_matching(Duration::from_secs(10), |v| {
            v["approval"]["id"] == id.as_str() && v["event"] == "approval.decided"
        })
        .await
        .expect("A's /events shows the decision made on B");
    let (_, approval) = Api::new(r.a.http())
        .get(&format!("/api/v1/approvals/{id}"), &admin_a)
        .await;
    assert_eq!(approval["state"], "used", "{approval}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_that_reaches_b_stops_the_statement_running_through_a() {
    let r = Replicas::start().await;
    let c = r.a.connect(ENV, AGENT, &r.token).await.unwrap();
    let cancel = c.cancel_token();
    let b_port = r.b.pg_port;
    let started = Instant::now();
    let (result, sent) = tokio::join!(c.simple_query("SELECT pg_sleep(30)"), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The load balancer sent the cancel's new TCP connection to B.
        let to_b = tokio::net::TcpStream::connect(("127.0.0.1", b_port))
            .await
            .unwrap();
        let sent = Instant::now();
        cancel
            .cancel_query_raw(to_b, tokio_postgres::NoTls)
            .await
            .expect("cancel request sent to B");
        sent
    });
    let e = result.expect_err("the statement was cancelled");
    assert_eq!(sqlstate(&e), "57014", "{e}\n{}", r.b.log());
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "cancel through B took {:?}",
        sent.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // The session goes on; a wrong key sent to B cancels nothing.
    let bad = c.cancel_token();
    let (done, _) = tokio::join!(c.simple_query("SELECT pg_sleep(1)"), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut raw = gatehouse_tests::raw::RawConn::connect("127.0.0.1", b_port).await;
        let mut pkt = 16u32.to_be_bytes().to_vec();
        pkt.extend(80877102u32.to_be_bytes());
        pkt.extend(1i32.to_be_bytes());
        pkt.extend(2i32.to_be_bytes());
        raw.send(&pkt).await;
        drop(bad);
    });
    done.expect("a wrong key cancels nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_replica_names_itself_and_rides_out_a_store_outage() {
    let mut r = Replicas::start().await;
    let (api_a, api_b) = (Api::new(r.a.http()), Api::new(r.b.http()));

    // Health for the load balancer, and which replica answered.
    let (status, health_a) = api_a.get_anonymous("/healthz").await;
    assert_eq!(status, 200, "{health_a}");
    assert_eq!(health_a["status"], "ok");
    assert_eq!(health_a["store"], "ok");
    assert_eq!(health_a["upstreams"][ENV], "ok", "{health_a}");
    let (_, health_b) = api_b.get_anonymous("/healthz").await;
    let (id_a, id_b) = (
        health_a["replica_id"].as_str().unwrap().to_string(),
        health_b["replica_id"].as_str().unwrap().to_string(),
    );
    assert_ne!(id_a, id_b);
    let (_, info) = api_a.get_anonymous("/api/v1/info").await;
    assert_eq!(info["replica_id"], id_a.as_str());
    let metrics = reqwest::get(format!("{}/metrics", r.a.http()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("replica=\"{id_a}\"")),
        "{metrics}"
    );

    // Connections already open keep working while the store is down.
    let agent = r.a.connect(ENV, AGENT, &r.token).await.unwrap();
    let session = r.b.login(ADMIN, ADMIN_PASSWORD).await;
    let admin_conn = r.b.connect(ENV, ADMIN, &session).await.unwrap();
    r.store.stop();
    within(
        Duration::from_secs(5),
        "healthz reports the store down",
        || async { api_a.get_anonymous("/healthz").await.0 == 503 },
    )
    .await;
    let (_, down) = api_b.get_anonymous("/healthz").await;
    assert_eq!(down["status"], "unavailable", "{down}");
    assert!(
        down["store"].as_str().unwrap().starts_with("unreachable"),
        "{down}"
    );
    for c in [&agent, &admin_conn] {
        let n: i32 = c.query_one("SELECT 41 + 1", &[]).await.unwrap().get(0);
        assert_eq!(n, 42);
    }
    // New logins and session connections are refused with a clear error, not a crash.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", r.a.http()))
        .json(&json!({"username": ADMIN, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("store is unreachable"),
        "{body}"
    );
    let e =
        r.a.connect(ENV, ADMIN, &session)
            .await
            .expect_err("a session cannot be checked without the store");
    assert_eq!(sqlstate(&e), "08004", "{e}");

    // The store comes back: both replicas recover by themselves, and changes flow again.
    r.store.start_again();
    within(Duration::from_secs(15), "A healthy again", || async {
        api_a.get_anonymous("/healthz").await.0 == 200
    })
    .await;
    let admin_b = r.b.login(ADMIN, ADMIN_PASSWORD).await;
    r.a.connect(ENV, ADMIN, &session)
        .await
        .expect("the session works again through A");
    let dana = r.a.login("dana", "dana-pw").await;
    grant_analysts(&api_b, &admin_b).await;
    within(
        Duration::from_secs(3),
        "a grant through B reaches A after the outage",
        || async { r.a.connect(ENV, "dana", &dana).await.is_ok() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_store_moves_a_lone_gateways_state_into_the_shared_store() {
    let (app, upstream_password) = app_database().await;
    let token = random_token("gha_");
    let lone = || {
        GatewayBuilder::new()
            .environment(ENV, "staging", &app_url(&app), Some(&upstream_password))
            .service_account(AGENT, &token, &["agents"])
            .user(ADMIN, ADMIN_PASSWORD, &["admins"])
            .user("dana", "dana-pw", &["analysts"])
            .grant(&["agents", "admins"], &[ENV])
    };
    // A gateway on its own SQLite store: a session, an API grant and an API service account.
    let mut single = lone().start().await;
    let admin = single.login(ADMIN, ADMIN_PASSWORD).await;
    let api = Api::new(single.http());
    grant_analysts(&api, &admin).await;
    let (status, created) = api
        .post(
            "/api/v1/service-accounts",
            &admin,
            json!({"name": "ci-bot", "groups": ["agents"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let bot = created["token"].as_str().unwrap().to_string();
    let dana = single.login("dana", "dana-pw").await;
    single.kill9();

    let store = Cluster::start().await;
    store.exec("postgres", "CREATE DATABASE gatehouse").await;
    let url = format!(
        "postgresql://postgres@127.0.0.1:{}/gatehouse?sslmode=disable",
        store.port
    );
    let run = |url: String, data: std::path::PathBuf, pw: String, replica: Option<&str>| {
        let mut cmd = std::process::Command::new(gatehouse_tests::server_bin());
        cmd.args(["migrate-store", "--from"])
            .arg(format!("sqlite:{}", data.display()))
            .args(["--to", &url, "--password-env", "GH_TEST_STORE_PW"])
            .env("GH_TEST_STORE_PW", pw);
        if let Some(r) = replica {
            cmd.args(["--replica", r]);
        }
        gatehouse_tests::run_cmd(&mut cmd, Duration::from_secs(60))
    };
    // The gateway's audit trail goes along as the chain of the replica that continues it,
    // which must be named.
    let unnamed = run(url.clone(), single.data_dir(), store.password.clone(), None);
    assert!(!unnamed.ok(), "{unnamed:?}");
    assert!(unnamed.stderr.contains("--replica"), "{unnamed:?}");
    let out = run(
        url.clone(),
        single.data_dir(),
        store.password.clone(),
        Some("gw-1"),
    );
    assert!(out.ok(), "{out:?}");
    assert!(out.stdout.contains("grants"), "{out:?}");
    assert!(
        out.stdout
            .contains("as the chain of replica gw-1; it verifies"),
        "{out:?}"
    );
    // A second copy into the same store is refused: it is no longer empty.
    let again = run(
        url.clone(),
        single.data_dir(),
        store.password.clone(),
        Some("gw-1"),
    );
    assert!(!again.ok(), "{again:?}");
    assert!(again.stderr.contains("already holds state"), "{again:?}");

    // The replica on the shared store, from the same data_dir, knows all of it and goes on
    // with the same chain.
    let replica = lone()
        .shared_store(&url, &store.password)
        .server("replica_id = \"gw-1\"")
        .data_dir(&single.data_dir())
        .start()
        .await;
    for (user, secret) in [(ADMIN, &admin), ("dana", &dana), ("ci-bot", &bot)] {
        let c = replica
            .connect(ENV, user, secret)
            .await
            .unwrap_or_else(|e| panic!("{user} through the replica: {e}\n{}", replica.log()));
        c.query_one("SELECT 1", &[]).await.unwrap();
    }
    // The admin's login, committed long before the kill (dana's, just before it, may have been
    // in the batch a kill -9 takes with it: a login is not a write).
    let logins = replica.audit(&admin, "event=auth.login").await;
    assert!(
        logins
            .iter()
            .any(|r| text(r, "identity") == ADMIN && text(r, "prev_hash").is_empty()),
        "the lone gateway's records are in the shared trail: {logins:#?}"
    );
    let out = replica.verify_audit();
    assert!(out.ok(), "{out:?}");
    assert!(out.stdout.contains("chain gw-1:"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_lost_its_store_connections_catches_up_by_itself() {
    let r = Replicas::start().await;
    let admin_b = r.b.login(ADMIN, ADMIN_PASSWORD).await;
    let dana = r.a.login("dana", "dana-pw").await;
    // Every store connection of both replicas is cut (a failover, a network blip), the ones
    // that listen for changes included.
    let direct = r.store.client("gatehouse").await;
    let cut: i64 = direct
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name LIKE 'gatehouse-store%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(cut >= 2, "{cut} store connections cut");
    // A change through B right after still reaches A within a few seconds.
    grant_analysts(&Api::new(r.b.http()), &admin_b).await;
    within(
        Duration::from_secs(4),
        "A catches up after losing its listener",
        || async { r.a.connect(ENV, "dana", &dana).await.is_ok() },
    )
    .await;
    // B's listener comes back on its own schedule (it saw nothing to catch up on).
    within(
        Duration::from_secs(10),
        "both replicas listen again",
        || async {
            let listening: i64 = direct
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE application_name = 'gatehouse-store-listen'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            listening == 2
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_store_is_reached_over_verified_tls_like_an_upstream() {
    let mut store = Cluster::start().await;
    let ca = store.enable_ssl();
    store.exec("postgres", "CREATE DATABASE gatehouse").await;
    let (app, upstream_password) = app_database().await;
    let token = random_token("gha_");
    let url = format!(
        "postgresql://postgres@127.0.0.1:{}/gatehouse?sslmode=verify-full&sslrootcert={}",
        store.port,
        ca.display()
    );
    let gw = GatewayBuilder::new()
        .environment(ENV, "staging", &app_url(&app), Some(&upstream_password))
        .service_account(AGENT, &token, &["agents"])
        .user(ADMIN, ADMIN_PASSWORD, &["admins"])
        .grant(&["admins"], &[ENV])
        .shared_store(&url, &store.password)
        .start()
        .await;
    let session = gw.login(ADMIN, ADMIN_PASSWORD).await;
    gw.connect(ENV, ADMIN, &session)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    // The gateway's store connections (the pool's and the listener) are all encrypted.
    let row = store
        .client("gatehouse")
        .await
        .query_one(
            "SELECT count(*) FILTER (WHERE COALESCE(s.ssl, false)),
                    count(*) FILTER (WHERE NOT COALESCE(s.ssl, false))
             FROM pg_stat_activity a LEFT JOIN pg_stat_ssl s USING (pid)
             WHERE a.application_name LIKE 'gatehouse-store%'",
            &[],
        )
        .await
        .unwrap();
    let (tls, plain): (i64, i64) = (row.get(0), row.get(1));
    assert!(tls >= 2, "{tls} store connections over TLS");
    assert_eq!(plain, 0, "every store connection uses TLS");
}

/// The replica id a gateway gives itself (`/healthz`).
async fn replica_id(gw: &Gateway) -> String {
    let (_, health) = Api::new(gw.http()).get_anonymous("/healthz").await;
    health["replica_id"].as_str().unwrap().to_string()
}

fn text(v: &serde_json::Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_writes_its_own_chain_and_each_reads_them_all() {
    let r = Replicas::start().await;
    let (id_a, id_b) = (replica_id(&r.a).await, replica_id(&r.b).await);
    // A person: an agent's writes in production wait for approval.
    let session = r.a.login(ADMIN, ADMIN_PASSWORD).await;
    let a = r.a.connect(ENV, ADMIN, &session).await.unwrap();
    let b = r.b.connect(ENV, ADMIN, &session).await.unwrap();
    for i in 0..3 {
        a.batch_execute(&format!("SELECT 'through-a-{i}'"))
            .await
            .unwrap();
        b.batch_execute(&format!("SELECT 'through-b-{i}'"))
            .await
            .unwrap();
    }
    // A search through a replica waits for that replica's own writer only: another replica's
    // records show once it commits them (its batch may linger 20 ms). A search through each
    // first makes both commit what they queued.
    let admin = r.b.login(ADMIN, ADMIN_PASSWORD).await;
    for gw in [&r.a, &r.b] {
        gw.audit(&admin, "event=statement&q=through-").await;
    }
    // A search through either replica finds both replicas' records, newest first by time, each
    // naming the chain it is in.
    for gw in [&r.a, &r.b] {
        let records = gw.audit(&admin, "event=statement&q=through-").await;
        let replicas: Vec<String> = records.iter().map(|v| text(v, "replica")).collect();
        assert_eq!(records.len(), 6, "{records:#?}");
        assert_eq!(replicas.iter().filter(|x| **x == id_a).count(), 3);
        assert_eq!(replicas.iter().filter(|x| **x == id_b).count(), 3);
        let times: Vec<String> = records.iter().map(|v| text(v, "ts")).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        let order: Vec<String> = records
            .iter()
            .map(|v| text(v, "statement").replace("SELECT ", ""))
            .collect();
        assert_eq!(
            order,
            [
                "'through-a-0'",
                "'through-b-0'",
                "'through-a-1'",
                "'through-b-1'",
                "'through-a-2'",
                "'through-b-2'"
            ]
        );
        // One replica's chain alone.
        let only_b = gw
            .audit(
                &admin,
                &format!("event=statement&q=through-&replica={id_b}"),
            )
            .await;
        assert_eq!(only_b.len(), 3);
    }
    let export = r.a.audit_export(&admin, "q=through-").await;
    assert_eq!(export.lines().count(), 6, "{export}");

    // `audit verify` checks every chain, each against the key its replica signs with.
    let out = r.a.verify_audit();
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stdout.contains("audit trail intact: 2 chains")
            && out.stdout.contains(&format!("chain {id_a}:"))
            && out.stdout.contains(&format!("chain {id_b}:")),
        "{out:?}"
    );

    // Edits in the store are found and named by chain: a record's content, a record removed,
    // a record moved into another chain.
    let store = r.store.client("gatehouse").await;
    let tampered = |sql: String| {
        let store = &store;
        async move { store.batch_execute(&sql).await.unwrap() }
    };
    tampered(format!(
        "UPDATE audit SET record_json = replace(record_json, 'through-b-1', 'through-b-9') \
         WHERE replica = '{id_b}' AND record_json LIKE '%through-b-1%'"
    ))
    .await;
    let out = r.b.verify_audit();
    assert_eq!(out.status, 1, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("BROKEN in the chain of replica {id_b}"))
            && out.stdout.contains("does not match its hash"),
        "{out:?}"
    );
    tampered(format!(
        "UPDATE audit SET record_json = replace(record_json, 'through-b-9', 'through-b-1') \
         WHERE replica = '{id_b}' AND record_json LIKE '%through-b-9%'"
    ))
    .await;
    assert!(r.b.verify_audit().ok());
    tampered(format!(
        "DELETE FROM audit WHERE replica = '{id_a}' AND record_json LIKE '%through-a-1%'"
    ))
    .await;
    let out = r.b.verify_audit();
    assert_eq!(out.status, 1, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("BROKEN in the chain of replica {id_a}"))
            && out.stdout.contains("is missing"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_under_write_load_loses_no_acknowledged_statement() {
    let mut r = Replicas::start().await;
    let id_a = replica_id(&r.a).await;
    let session = r.a.login(ADMIN, ADMIN_PASSWORD).await;
    r.a.connect(ENV, ADMIN, &session)
        .await
        .unwrap()
        .batch_execute("CREATE TABLE k (id int PRIMARY KEY, via text)")
        .await
        .unwrap();
    // Two writers through each replica; each remembers what it was told succeeded.
    let mut writers = Vec::new();
    for w in 0..4 {
        let gw = if w < 2 { &r.a } else { &r.b };
        let c = gw.connect(ENV, ADMIN, &session).await.unwrap();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..400 {
                let id = w * 1_000_000 + i;
                match c
                    .batch_execute(&format!("INSERT INTO k VALUES ({id}, 'w{w}')"))
                    .await
                {
                    Ok(()) => acknowledged.push(id),
                    Err(_) => break,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    r.a.kill9();
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.push(w.await.unwrap());
    }
    assert!(acknowledged[0].len() > 20 && acknowledged[1].len() > 20);
    assert_eq!(acknowledged[2].len(), 400, "B's writers were not disturbed");

    // Clients reconnect through B, which goes on serving.
    let again = r.b.connect(ENV, ADMIN, &session).await.unwrap();
    again
        .batch_execute("INSERT INTO k VALUES (-1, 'after')")
        .await
        .unwrap();

    // Every statement A acknowledged is in A's chain, and every chain verifies.
    let admin = r.b.login(ADMIN, ADMIN_PASSWORD).await;
    let recorded: std::collections::HashSet<String> =
        r.b.audit(
            &admin,
            &format!("event=statement.start&replica={id_a}&q=INSERT%20INTO%20k"),
        )
        .await
        .iter()
        .map(|v| text(v, "statement"))
        .collect();
    for (w, ids) in acknowledged.iter().enumerate().take(2) {
        gatehouse_tests::assert_all_recorded(
            &recorded,
            ids.iter()
                .map(|id| format!("INSERT INTO k VALUES ({id}, 'w{w}')")),
            "statements acknowledged through A",
        );
    }
    let out = r.b.verify_audit();
    assert!(out.ok(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_restarted_under_load_leaves_every_replica_serving() {
    let mut r = Replicas::start().await;
    let session = r.a.login(ADMIN, ADMIN_PASSWORD).await;
    r.a.connect(ENV, ADMIN, &session)
        .await
        .unwrap()
        .batch_execute("CREATE TABLE load (id serial PRIMARY KEY, n int)")
        .await
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for w in 0..4 {
        let gw = if w % 2 == 0 { &r.a } else { &r.b };
        let c = gw.connect(ENV, ADMIN, &session).await.unwrap();
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            // (succeeded, refused with the errors seen)
            let (mut ok, mut errors) = (0u32, Vec::new());
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let sql = if i % 2 == 0 {
                    format!("INSERT INTO load (n) VALUES ({i})")
                } else {
                    "SELECT count(*) FROM load".to_string()
                };
                match c.batch_execute(&sql).await {
                    Ok(()) => ok += 1,
                    Err(e) => {
                        errors.push((
                            sqlstate(&e),
                            e.as_db_error().map(|d| d.message().to_string()),
                        ));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (ok, errors)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    tokio::task::block_in_place(|| r.store.restart());
    tokio::time::sleep(Duration::from_millis(3000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        let (ok, errors) = c.await.unwrap();
        eprintln!("client: {ok} statements, {} refused", errors.len());
        assert!(ok > 10, "a client made little progress: {ok} {errors:?}");
        // What was refused was refused with a clear error: the audit's store is unreachable
        // (writes need their record durable first), never a dropped connection.
        for (code, message) in &errors {
            assert_eq!(code, "58030", "{errors:?}");
            assert!(
                message
                    .as_deref()
                    .unwrap_or_default()
                    .contains("unreachable"),
                "{errors:?}"
            );
        }
    }
    // Both replicas are alive and healthy, and statements run through both.
    for gw in [&r.a, &r.b] {
        within(
            Duration::from_secs(10),
            "healthy after the restart",
            || async { Api::new(gw.http()).get_anonymous("/healthz").await.0 == 200 },
        )
        .await;
        let c = gw.connect(ENV, ADMIN, &session).await.unwrap();
        c.batch_execute("INSERT INTO load (n) VALUES (0)")
            .await
            .unwrap();
    }
    let out = r.a.verify_audit();
    assert!(out.ok(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_replicas_sink_ships_its_own_chain_once() {
    let r = Replicas::start_with(|b| b.toml("[audit]\nfile = \"trail.jsonl\"")).await;
    let (id_a, id_b) = (replica_id(&r.a).await, replica_id(&r.b).await);
    let session = r.a.login(ADMIN, ADMIN_PASSWORD).await;
    for (gw, tag) in [(&r.a, "sunk-a"), (&r.b, "sunk-b")] {
        let c = gw.connect(ENV, ADMIN, &session).await.unwrap();
        c.batch_execute(&format!("SELECT '{tag}'")).await.unwrap();
    }
    let file = |gw: &Gateway| gw.config.parent().unwrap().join("trail.jsonl");
    let lines = |gw: &Gateway| -> Vec<serde_json::Value> {
        std::fs::read_to_string(file(gw))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    within(Duration::from_secs(10), "both sinks ship", || async {
        lines(&r.a)
            .iter()
            .any(|v| text(v, "statement").contains("sunk-a"))
            && lines(&r.b)
                .iter()
                .any(|v| text(v, "statement").contains("sunk-b"))
    })
    .await;
    // Each replica ships its own chain, all of it in order, and nothing of the other's.
    for (gw, id) in [(&r.a, &id_a), (&r.b, &id_b)] {
        let shipped = lines(gw);
        assert!(
            shipped.iter().all(|v| text(v, "replica") == *id),
            "{shipped:#?}"
        );
        let seqs: Vec<i64> = shipped.iter().map(|v| v["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_stops_answering_refuses_writes_within_seconds_then_recovers() {
    let r = Replicas::start().await;
    let session = r.a.login(ADMIN, ADMIN_PASSWORD).await;
    let c = r.a.connect(ENV, ADMIN, &session).await.unwrap();
    c.batch_execute("CREATE TABLE hung (i int)").await.unwrap();
    // The store's backends that take the replicas' audit commits freeze: the connections stay
    // open and nothing answers, as a store behind a dead network path would.
    let store = r.store.client("gatehouse").await;
    let pids: Vec<i32> = store
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'gatehouse-audit'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(pids.len(), 2, "one audit connection per replica");
    let signal = |sig: &str| {
        for pid in &pids {
            let out = gatehouse_tests::run_cmd(
                std::process::Command::new("kill").args([sig, &pid.to_string()]),
                Duration::from_secs(5),
            );
            assert!(out.ok(), "{out:?}");
        }
    };
    signal("-STOP");
    // A write needs its record committed first: it is refused with a clear error within the
    // writer's wait for an answer, not left hanging.
    let started = Instant::now();
    let e = tokio::time::timeout(
        Duration::from_secs(30),
        c.batch_execute("INSERT INTO hung VALUES (1)"),
    )
    .await
    .expect("a write is answered while the store hangs")
    .expect_err("a write without a durable record is refused");
    // The load balancer is told: this replica cannot write its trail.
    let (status, health) = Api::new(r.a.http()).get_anonymous("/healthz").await;
    signal("-CONT");
    assert_eq!(status, 503, "{health}");
    assert!(
        health["audit"].as_str().unwrap().starts_with("failing"),
        "{health}"
    );
    assert_eq!(sqlstate(&e), "58030", "{e:?}");
    assert!(
        e.as_db_error().unwrap().message().contains("unreachable"),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(25));
    // Reads went on; writes resume by themselves once the store answers.
    c.batch_execute("SELECT count(*) FROM hung").await.unwrap();
    within(Duration::from_secs(15), "writes resume", || async {
        c.batch_execute("INSERT INTO hung VALUES (2)").await.is_ok()
    })
    .await;
    within(Duration::from_secs(5), "healthy again", || async {
        Api::new(r.a.http()).get_anonymous("/healthz").await.0 == 200
    })
    .await;
    let out = r.a.verify_audit();
    assert!(out.ok(), "{out:?}");
}

/// A client that leaves while its statement's record waits for room in the audit queue (the
/// store away, the queue full of reads' records) does not take the record with it: the
/// statement ran upstream, so it is written once the store is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_waiting_for_room_in_the_audit_queue_outlives_its_client() {
    let mut r = Replicas::start_with(|b| b.toml("[audit]\nqueue_records = 4")).await;
    let admin = r.a.login(ADMIN, ADMIN_PASSWORD).await;
    let (client, connection) = r.a.connect_watched(ENV, AGENT, &r.token).await;
    r.store.stop();
    // Reads go on while the store is away; their records wait in the queue until it is full,
    // and then the response waits for room.
    let mut ran = Vec::new();
    let mut held = None;
    for i in 0..200 {
        let text = format!("SELECT 'queued-{i}'");
        match tokio::time::timeout(Duration::from_secs(3), client.simple_query(&text)).await {
            Ok(result) => {
                result.unwrap_or_else(|e| panic!("{text}: {e}\n{}", r.a.log()));
                ran.push(text);
            }
            Err(_) => {
                held = Some(text);
                break;
            }
        }
    }
    let held = held.expect("a full audit queue holds the response back");
    assert!(
        ran.len() < 20,
        "{} statements before the queue filled",
        ran.len()
    );
    // The client gives up and closes its connection.
    connection.abort();
    drop(client);
    tokio::time::sleep(Duration::from_millis(500)).await;

    r.store.start_again();
    let wanted: Vec<String> = ran.iter().chain([&held]).cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let recorded: std::collections::HashSet<String> =
            r.a.audit(&admin, "event=statement&q=queued-")
                .await
                .iter()
                .map(|v| text(v, "statement"))
                .collect();
        if wanted.iter().all(|w| recorded.contains(w)) || Instant::now() > deadline {
            let what = "statements that ran upstream";
            gatehouse_tests::assert_all_recorded(&recorded, wanted, what);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
