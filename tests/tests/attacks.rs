//! Identity and authorization tried as an attacker would (issue 23): each test drives a real
//! gateway the way a bypass would and judges it by effect: the status and body an API call
//! gets, whether a statement ran, whether an event stream delivered, where a browser landed.
//!
//! The bypasses: self-approval by proxy, a grant reaching another environment's database,
//! event and MCP streams outliving their session, a lockout flushed by failed logins for
//! made-up names, an open redirect after SSO, environment enumeration, and cookies not marked
//! `Secure` behind https. The checks that held before are kept here as regression tests: admin
//! routes as non-admins, one identity reaching another's objects, CSRF, cookie flags, escaping
//! of the gateway's own pages, and MCP's binding to bearer tokens and its own hosts.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gatehouse_tests::mcp::McpClient;
use gatehouse_tests::oidc::{browser_stopping_at_any, login as sso_login, sso_fixture, LoginEnd};
use gatehouse_tests::raw::RawConn;
use gatehouse_tests::sse::{SseNext, SseStream};
use gatehouse_tests::tls_front::TlsFront;
use gatehouse_tests::{
    app_database, app_url, ended_with, free_port, message, random_token, server_bin, sqlstate, Api,
    CliHome, Cluster, Fixture, Gateway, GatewayBuilder,
};
use serde_json::{json, Value};

const ROOT: &str = "root";
const ROOT_PW: &str = "root-pw";
/// Approves production's statements.
const BOB: &str = "bob";
const BOB_PW: &str = "bob-pw";
/// A developer: `dev` only.
const DANA: &str = "dana";
const DANA_PW: &str = "dana-pw";
/// An agent (service account) that may reach `prod` and `dev`.
const BOT: &str = "bot";

struct World {
    cluster: Cluster,
    gw: Gateway,
    bot: String,
    root: String,
}

/// `prod` (production, database `appdb`, approvers `approvers` and `admins`), `dev`
/// (development, database `devdb`, on the same server, as often happens) and `secret` (staging,
/// admins only). `bot` reaches prod and dev, bob approves prod, dana has dev, root has all.
/// Table `t` in `appdb` has 100 rows with `v = 0`.
async fn world(extra: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> World {
    let (cluster, pw) = app_database().await;
    cluster
        .exec("postgres", "CREATE DATABASE devdb OWNER app_owner")
        .await;
    cluster
        .exec(
            "appdb",
            "CREATE TABLE t (id int PRIMARY KEY, v int); \
             INSERT INTO t SELECT g, 0 FROM generate_series(1, 100) g; \
             ALTER TABLE t OWNER TO app_owner",
        )
        .await;
    let dev_url = format!(
        "postgresql://app_owner@127.0.0.1:{}/devdb?sslmode=prefer",
        cluster.port
    );
    let bot = random_token("gha_");
    let builder = GatewayBuilder::new()
        .environment("prod", "production", &app_url(&cluster), Some(&pw))
        .environment_setting("prod", "approvers = [\"approvers\", \"admins\"]")
        .environment("dev", "development", &dev_url, Some(&pw))
        .environment("secret", "staging", &app_url(&cluster), Some(&pw))
        .service_account(BOT, &bot, &["agents"])
        .user(ROOT, ROOT_PW, &["admins"])
        .user(BOB, BOB_PW, &["approvers"])
        .user(DANA, DANA_PW, &["devs"])
        .grant(&["agents", "approvers"], &["prod"])
        .grant(&["agents", "devs"], &["dev"])
        .grant(&["admins"], &["*"]);
    let gw = extra(builder).start().await;
    let root = gw.login(ROOT, ROOT_PW).await;
    World {
        cluster,
        gw,
        bot,
        root,
    }
}

impl World {
    fn api(&self) -> Api {
        Api::new(self.gw.http())
    }

    async fn count(&self, db: &str, sql: &str) -> i64 {
        self.cluster
            .client(db)
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }

    /// A pending approval whose statement contains `needle`, as root sees it.
    async fn pending(&self, needle: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, r) = self
                .api()
                .get("/api/v1/approvals?state=pending", &self.root)
                .await;
            assert_eq!(status, 200, "{r}");
            if let Some(a) = r["items"].as_array().and_then(|items| {
                items
                    .iter()
                    .find(|a| a["statement"].as_str().unwrap_or("").contains(needle))
                    .cloned()
            }) {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "no pending approval for {needle}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn decide(&self, token: &str, id: &str, verb: &str) -> (u16, Value) {
        self.api()
            .post(
                &format!("/api/v1/approvals/{id}/{verb}"),
                token,
                json!({ "reason": "decided in a test" }),
            )
            .await
    }

    /// An exemption request in `env` (an approval of its own kind, nobody held) by the holder
    /// of `token` for `group`; the status and the approval.
    async fn exemption_request(
        &self,
        token: &str,
        group: &str,
        env: &str,
        reason: &str,
    ) -> (u16, Value) {
        self.api()
            .post(
                "/api/v1/exemptions/requests",
                token,
                json!({
                    "group": group, "environment": env, "category": "email",
                    "expires_in_seconds": 3600, "reason": reason,
                }),
            )
            .await
    }
}

/// Logs in over the wire with extra startup parameters (such as `gatehouse.on_behalf_of`,
/// which no driver sends); the refusal as `"SQLSTATE message"`.
async fn wire_login(
    w: &World,
    user: &str,
    db: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> Result<RawConn, String> {
    let mut params = vec![("user", user), ("database", db)];
    params.extend_from_slice(extra);
    RawConn::login_with("127.0.0.1", w.gw.pg_port, &params, token)
        .await
        .map_err(|m| {
            format!(
                "{} {}",
                m.field(b'C').unwrap_or_default(),
                m.field(b'M').unwrap_or_default()
            )
        })
}

/// The same text once the environment name each one mentions is replaced.
fn same_but_name(a: &str, a_name: &str, b: &str, b_name: &str) -> bool {
    a.replace(a_name, "ENV") == b.replace(b_name, "ENV")
}

// ---------------------------------------------------------------------------------------------
// Who may decide
// ---------------------------------------------------------------------------------------------

/// An agent that no one bound to a person may not name one on its own: not over the wire,
/// not through MCP, not for the approver it hopes will wave its statement through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_names_a_person_only_when_the_config_lets_it() {
    let w = world(|b| b).await;
    let refused = wire_login(&w, BOT, "prod", &w.bot, &[("gatehouse.on_behalf_of", BOB)])
        .await
        .err()
        .expect("an unbound agent may not name bob");
    assert!(
        refused.starts_with("28000") && refused.contains("may_act_for"),
        "{refused}"
    );
    let mut mcp = McpClient::connect(&w.gw.http(), &w.bot, &[("x-gatehouse-on-behalf-of", BOB)])
        .await
        .expect("MCP session");
    let r = mcp
        .call("list_environments", json!({}))
        .await
        .expect("an answer");
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(r["structuredContent"]["error"], "on_behalf_of", "{r}");
    let r = mcp
        .call(
            "query",
            json!({"environment": "prod", "sql": "SELECT 1", "on_behalf_of": BOB}),
        )
        .await
        .expect("an answer");
    assert_eq!(r["isError"], true, "{r}");
    // As itself it works.
    let mut c = wire_login(&w, BOT, "prod", &w.bot, &[])
        .await
        .expect("the agent as itself");
    assert_eq!(c.simple_query("SELECT 'ok'").await.unwrap(), ["ok"]);
}

/// An agent allowed to act for bob has its production write held; neither the agent nor bob
/// may decide it, another approver may, and the audit names both requesters. The same holds
/// for an exemption request by an agent bound to bob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_the_agent_nor_the_person_it_acts_for_decides_its_requests() {
    let helper = random_token("gha_");
    let helper2 = helper.clone();
    let w = world(move |b| {
        b.service_account_setting(BOT, "may_act_for = [\"bob\"]")
            .service_account("helper", &helper2, &["agents"])
            .service_account_setting("helper", "on_behalf_of = \"bob\"")
    })
    .await;
    let e = wire_login(&w, BOT, "prod", &w.bot, &[("gatehouse.on_behalf_of", DANA)])
        .await
        .err()
        .expect("bob only");
    assert!(e.starts_with("28000"), "{e}");

    let mut c = wire_login(&w, BOT, "prod", &w.bot, &[("gatehouse.on_behalf_of", BOB)])
        .await
        .expect("bot may act for bob");
    let held = tokio::spawn(async move {
        c.simple_query("UPDATE t SET v = 1")
            .await
            .map(|_| ())
            .map_err(|m| format!("{:?} {:?}", m.field(b'C'), m.field(b'M')))
    });
    let a = w.pending("UPDATE t SET v = 1").await;
    let id = a["id"].as_str().unwrap().to_string();
    assert_eq!(
        (a["identity"].as_str(), a["on_behalf_of"].as_str()),
        (Some(BOT), Some(BOB))
    );

    let bob = w.gw.login(BOB, BOB_PW).await;
    let (status, body) = w.decide(&bob, &id, "approve").await;
    assert_eq!(
        status, 403,
        "bob decided a statement made on his behalf: {body}"
    );
    assert_eq!(w.decide(&bob, &id, "deny").await.0, 403);
    assert_eq!(w.decide(&w.bot, &id, "approve").await.0, 403);
    assert_eq!(
        w.count("appdb", "SELECT count(*) FROM t WHERE v = 1").await,
        0,
        "held, not run"
    );
    assert_eq!(w.decide(&w.root, &id, "approve").await.0, 200);
    held.await
        .unwrap()
        .expect("the statement ran once root approved");
    assert_eq!(
        w.count("appdb", "SELECT count(*) FROM t WHERE v = 1").await,
        100
    );
    let decided = w.gw.audit(&w.root, "event=approval.approved").await;
    let d = decided
        .iter()
        .find(|r| r["approval_id"] == id.as_str())
        .expect("the decision is audited");
    assert_eq!(d["identity"], ROOT);
    assert_eq!(d["details"]["requester"], BOT, "{d:#}");
    assert_eq!(d["details"]["on_behalf_of"], BOB, "{d:#}");

    // An exemption request by an agent bound to bob: bob does not decide it either.
    let (status, a) = w
        .exemption_request(&helper, "agents", "prod", "debugging a mail bounce")
        .await;
    assert_eq!(status, 202, "{a}");
    assert_eq!(a["on_behalf_of"], BOB, "{a}");
    let id = a["id"].as_str().unwrap();
    assert_eq!(w.decide(&bob, id, "approve").await.0, 403);
    assert_eq!(w.decide(&helper, id, "approve").await.0, 403);
    assert_eq!(w.decide(&w.root, id, "approve").await.0, 200);
}

// ---------------------------------------------------------------------------------------------
// Grants bind databases
// ---------------------------------------------------------------------------------------------

/// A grant for `dev` reaches dev's own database and no other on the same server: not
/// production's rows, and an agent's unbounded UPDATE does not slip past production's review.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_reaches_only_its_environments_database() {
    let w = world(|b| b).await;
    let dana = w.gw.login(DANA, DANA_PW).await;
    for own in ["dev", "dev/devdb"] {
        let c = w.gw.connect(own, DANA, &dana).await.expect(own);
        c.batch_execute("SELECT 1").await.unwrap();
    }
    match w.gw.connect("dev/appdb", DANA, &dana).await {
        Ok(c) => {
            let rows = c.query_one("SELECT count(*) FROM t", &[]).await;
            panic!("dana read production's database through dev: {rows:?}");
        }
        Err(e) => {
            assert_eq!(sqlstate(&e), "28000", "{e}");
            assert!(message(&e).contains("\"appdb\""), "{}", message(&e));
        }
    }
    for (db, who, token) in [
        ("dev/appdb", BOT, w.bot.as_str()),
        ("dev/postgres", BOT, w.bot.as_str()),
        ("prod/devdb", BOT, w.bot.as_str()),
    ] {
        match w.gw.connect(db, who, token).await {
            Ok(c) => {
                let r = c.batch_execute("UPDATE t SET v = 2").await;
                panic!("{who} reached {db}: {r:?}");
            }
            Err(e) => assert_eq!(sqlstate(&e), "28000", "{db}: {e}"),
        }
    }
    assert_eq!(
        w.count("appdb", "SELECT count(*) FROM t WHERE v = 2").await,
        0,
        "the unbounded UPDATE never ran"
    );
    // MCP follows the same list: it is a session like any other.
    let mut mcp = McpClient::connect(&w.gw.http(), &w.bot, &[]).await.unwrap();
    let r = mcp
        .call(
            "query",
            json!({"environment": "dev/appdb", "sql": "SELECT count(*) AS n FROM t"}),
        )
        .await
        .unwrap();
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(r["structuredContent"]["sqlstate"], "28000", "{r}");
    // The catalog of dev holds dev's database only.
    let (status, cat) = w
        .api()
        .get("/api/v1/environments/dev/catalog", &w.root)
        .await;
    assert_eq!(status, 200, "{cat}");
    let dbs: Vec<&str> = cat["databases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["database"].as_str())
        .collect();
    assert_eq!(dbs, ["devdb"], "{cat:#}");
}

/// `databases = [...]` opens more databases to an environment, each decided with that
/// environment's tier and rules; `*` opens all. Bad lists stop the config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_reaches_the_databases_it_lists_under_its_own_rules() {
    let w = world(|b| {
        b.environment_setting("dev", "databases = [\"scratch\"]")
            .environment_setting("prod", "databases = [\"*\"]")
            .server("approval_window_seconds = 2")
    })
    .await;
    w.cluster
        .exec("postgres", "CREATE DATABASE scratch OWNER app_owner")
        .await;
    let dana = w.gw.login(DANA, DANA_PW).await;
    w.gw.connect("dev/scratch", DANA, &dana)
        .await
        .expect("a listed database");
    let e =
        w.gw.connect("dev/appdb", DANA, &dana)
            .await
            .expect_err("not listed");
    assert_eq!(sqlstate(&e), "28000");

    // The same unbounded UPDATE on dev's database: at once through dev, held through prod.
    let dev = w.gw.connect("dev", BOT, &w.bot).await.unwrap();
    dev.batch_execute(
        "CREATE TABLE d (id int PRIMARY KEY, v int); INSERT INTO d SELECT g, 0 FROM generate_series(1, 10) g",
    )
    .await
    .unwrap();
    let through_prod = w.gw.connect("prod/devdb", BOT, &w.bot).await.unwrap();
    let e = through_prod
        .batch_execute("UPDATE d SET v = 1")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    assert_eq!(
        w.count("devdb", "SELECT count(*) FROM d WHERE v = 1").await,
        0
    );
    dev.batch_execute("UPDATE d SET v = 1").await.unwrap();
    assert_eq!(
        w.count("devdb", "SELECT count(*) FROM d WHERE v = 1").await,
        10
    );

    // The environments list says which databases each one reaches.
    let (_, envs) = w.api().get("/api/v1/environments", &dana).await;
    assert_eq!(envs["items"][0]["name"], "dev");
    assert_eq!(envs["items"][0]["databases"], json!(["devdb", "scratch"]));

    // Mistakes are reported with key and line.
    let text = std::fs::read_to_string(&w.gw.config).unwrap();
    for bad in [
        "databases = [\"a/b\"]",
        "databases = [\"\"]",
        "databases = [\"*\", \"x\"]",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text.replace("databases = [\"scratch\"]", bad)).unwrap();
        let out = gatehouse_tests::run_cmd(
            std::process::Command::new(server_bin())
                .args(["check-config", "--config"])
                .arg(&path),
            Duration::from_secs(30),
        );
        assert_eq!(out.status, 2, "{bad}: {out:?}");
        assert!(
            out.stderr.contains("environments[1].databases"),
            "{bad}: {out:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Every long-lived channel follows the session
// ---------------------------------------------------------------------------------------------

/// Waits for the stream to end; panics if it delivers an event or stays open past `limit`.
/// Events without data (an MCP stream's priming event) carry nothing and are skipped.
async fn ends_within(stream: &mut SseStream, limit: Duration, what: &str) {
    let t = Instant::now();
    loop {
        let left = (limit + Duration::from_secs(3)).saturating_sub(t.elapsed());
        match stream.next(left).await {
            SseNext::Ended => {
                assert!(
                    t.elapsed() <= limit,
                    "{what}: ended only after {:?}",
                    t.elapsed()
                );
                return;
            }
            SseNext::Event { data, .. } if data.is_empty() => continue,
            other => panic!("{what}: the stream outlived it: {other:?}"),
        }
    }
}

/// Drains what a stream has already buffered (keep-alives) without waiting long.
async fn quiet(stream: &mut SseStream) {
    while let SseNext::Event { .. } = stream.next(Duration::from_millis(200)).await {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_stream_ends_with_its_session_and_its_groups() {
    let w = world(|b| b).await;
    let api = w.api();
    let events = format!("{}/events", w.gw.http());

    // Bob's stream delivers while his session lasts.
    let bob = w.gw.login(BOB, BOB_PW).await;
    let mut stream = SseStream::open(&events, &bob).await;
    let (_, a) = w.exemption_request(&w.bot, "agents", "prod", "first").await;
    stream
        .next_matching(Duration::from_secs(10), |v| v["approval"]["id"] == a["id"])
        .await
        .expect("delivered while the session lasts");
    // Logout: the token is refused at once, and the stream delivers nothing more and ends.
    assert_eq!(
        api.post("/api/v1/auth/logout", &bob, json!({})).await.0,
        204
    );
    let (_, a2) = w
        .exemption_request(&w.bot, "agents", "prod", "after logout")
        .await;
    match stream
        .next_matching(Duration::from_secs(5), |v| v["approval"]["id"] == a2["id"])
        .await
    {
        Err(SseNext::Ended) => {}
        other => panic!("the stream outlived the logout: {other:?}"),
    }

    // An administrator revokes the session: the same.
    let bob = w.gw.login(BOB, BOB_PW).await;
    let mut stream = SseStream::open(&events, &bob).await;
    quiet(&mut stream).await;
    let (_, sessions) = api.get("/api/v1/sessions?identity=bob", &w.root).await;
    let sid = sessions["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        api.delete(&format!("/api/v1/sessions/{sid}"), &w.root)
            .await
            .0,
        204
    );
    ends_within(&mut stream, Duration::from_secs(2), "session revoked").await;

    // A membership that made dana an approver is removed: her stream ends.
    let (status, _) = api
        .post(
            "/api/v1/groups/approvers/members",
            &w.root,
            json!({"member": DANA}),
        )
        .await;
    assert_eq!(status, 201);
    let dana = w.gw.login(DANA, DANA_PW).await;
    let mut stream = SseStream::open(&events, &dana).await;
    let (_, a3) = w
        .exemption_request(&w.bot, "agents", "prod", "for dana")
        .await;
    stream
        .next_matching(Duration::from_secs(10), |v| v["approval"]["id"] == a3["id"])
        .await
        .expect("dana approves prod now");
    assert_eq!(
        api.delete("/api/v1/groups/approvers/members/dana", &w.root)
            .await
            .0,
        204
    );
    ends_within(&mut stream, Duration::from_secs(2), "membership removed").await;

    // Each end is in the audit trail, as an ended database connection is.
    let closed = w.gw.audit(&w.root, "event=channel.close").await;
    let reasons: Vec<(String, String)> = closed
        .iter()
        .map(|r| {
            (
                r["identity"].as_str().unwrap_or("").to_string(),
                r["details"]["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(closed.len(), 3, "{closed:#?}");
    assert!(
        closed.iter().all(|r| r["details"]["channel"] == "events"),
        "{closed:#?}"
    );
    assert_eq!(reasons[0].0, BOB);
    assert!(reasons[0].1.contains("revoked"), "{reasons:?}");
    assert_eq!(reasons[2].0, DANA);
    assert!(reasons[2].1.contains("approvers"), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_stream_ends_when_its_session_expires() {
    let f = Fixture::start_with(|b| {
        b.user("erin", "erin-pw", &["admins"])
            .server("session_ttl_seconds = 3\nrefresh_ttl_seconds = 0")
    })
    .await;
    let erin = f.gw.login("erin", "erin-pw").await;
    let mut stream = SseStream::open(&format!("{}/events", f.gw.http()), &erin).await;
    let opened = Instant::now();
    match stream.next(Duration::from_secs(8)).await {
        SseNext::Ended => {}
        other => panic!("the stream outlived its session: {other:?}"),
    }
    assert!(
        opened.elapsed() <= Duration::from_secs(6),
        "{:?}",
        opened.elapsed()
    );
}

/// What a tunnel carries follows the session too: its connections end when the membership
/// that granted the environment is removed, and when an administrator revokes the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnels_connections_end_with_its_session_and_its_groups() {
    let w = world(|b| b).await;
    let api = w.api();
    let (status, _) = api
        .post(
            "/api/v1/grants",
            &w.root,
            json!({"groups": ["oncall"], "environments": ["dev"]}),
        )
        .await;
    assert_eq!(status, 201);
    let member = json!({"member": BOB});
    assert_eq!(
        api.post("/api/v1/groups/oncall/members", &w.root, member.clone())
            .await
            .0,
        201
    );
    let home = CliHome::new();
    home.must_login(&w.gw, BOB, BOB_PW);
    let tunnel = home.tunnel("dev", &[]);
    let open = || async {
        let (c, conn) = tokio_postgres::connect(&tunnel.conn_str("dev"), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("through the tunnel: {e}\n{}", tunnel.log()));
        let watch = tokio::spawn(conn);
        c.simple_query("SELECT 1").await.expect("connected");
        (c, watch)
    };

    let (_c, watch) = open().await;
    assert_eq!(
        api.delete("/api/v1/groups/oncall/members/bob", &w.root)
            .await
            .0,
        204
    );
    let t = Instant::now();
    let (code, m) = ended_with(watch).await;
    assert!(t.elapsed() <= Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(code, "57P01", "{m}");

    assert_eq!(
        api.post("/api/v1/groups/oncall/members", &w.root, member)
            .await
            .0,
        201
    );
    let (_c, watch) = open().await;
    let (_, sessions) = api.get("/api/v1/sessions?identity=bob", &w.root).await;
    let sid = sessions["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        api.delete(&format!("/api/v1/sessions/{sid}"), &w.root)
            .await
            .0,
        204
    );
    let t = Instant::now();
    let (code, m) = ended_with(watch).await;
    assert!(t.elapsed() <= Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(code, "57P01", "{m}");
}

/// An MCP session whose token is revoked ends: a tool call waiting for an approval and the
/// session's own stream stop within two seconds, without an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_session_ends_when_its_token_does() {
    let w = world(|b| b).await;
    let api = w.api();
    let (status, sa) = api
        .post(
            "/api/v1/service-accounts",
            &w.root,
            json!({"name": "temp-bot", "groups": ["agents"]}),
        )
        .await;
    assert_eq!(status, 201, "{sa}");
    let token = sa["token"].as_str().unwrap().to_string();
    let sa_id = sa["service_account"]["id"].as_str().unwrap().to_string();
    let (_, a) = w
        .exemption_request(&token, "agents", "prod", "to wait for")
        .await;
    let mut mcp = McpClient::connect(&w.gw.http(), &token, &[]).await.unwrap();
    let (call, mut waiting) = mcp
        .call_stream(
            "wait_for_approval",
            json!({"approval_id": a["id"], "timeout_seconds": 30}),
        )
        .await
        .unwrap();
    let listen = mcp.listen().await;
    assert_eq!(listen.status(), 200);
    let mut listening = SseStream::new(listen);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api.delete(&format!("/api/v1/service-accounts/{sa_id}"), &w.root)
            .await
            .0,
        204
    );
    let t = Instant::now();
    match waiting
        .next_matching(Duration::from_secs(5), |v| v["id"] == call)
        .await
    {
        Err(SseNext::Ended) => assert!(t.elapsed() <= Duration::from_secs(2), "{:?}", t.elapsed()),
        other => panic!("the tool call outlived its token: {other:?}"),
    }
    ends_within(&mut listening, Duration::from_secs(2), "token revoked").await;
    let closed =
        w.gw.audit(&w.root, "event=channel.close&identity=temp-bot")
            .await;
    assert!(
        closed.iter().any(|r| r["details"]["channel"] == "mcp"
            && r["details"]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("revoked")),
        "{closed:#?}"
    );
}

/// An MCP session belongs to the identity that opened it: another token cannot ride on its
/// session id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_session_belongs_to_the_identity_that_opened_it() {
    let other = random_token("gha_");
    let other2 = other.clone();
    let w = world(move |b| b.service_account("other-bot", &other2, &["agents"])).await;
    let mut mine = McpClient::connect(&w.gw.http(), &w.bot, &[]).await.unwrap();
    assert!(mine.session_id().is_some());
    let mut thief = mine.with_token(&other);
    let refused = thief
        .call("list_environments", json!({}))
        .await
        .expect_err("another identity's session");
    assert_eq!(refused.0, 404, "{refused:?}");
    let resp = thief.listen().await;
    assert_eq!(resp.status(), 404);
    // The owner carries on.
    let r = mine.call("list_environments", json!({})).await.unwrap();
    assert_eq!(r["structuredContent"]["identity"], BOT, "{r}");
}

// ---------------------------------------------------------------------------------------------
// Lockouts that cannot be flushed
// ---------------------------------------------------------------------------------------------

fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .build()
        .unwrap()
}

async fn password_login(http: &reqwest::Client, base: &str, user: &str, pw: &str) -> (u16, String) {
    let r = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": user, "password": pw}))
        .send()
        .await
        .expect("login request");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_survives_a_flood_of_failed_logins_for_made_up_names() {
    let mut f = Fixture::start_with(|b| b.user("alice", "alice-pw", &["people"])).await;
    let base = f.gw.http();
    let here = client_from([127, 0, 0, 1]);
    for _ in 0..5 {
        password_login(&here, &base, "alice", "guess").await;
    }
    let (status, body) = password_login(&here, &base, "alice", "alice-pw").await;
    assert_eq!(status, 429, "{body}");

    // Over ten thousand failures for names nobody has, from another address.
    let flood = client_from([127, 0, 0, 2]);
    let answers: Vec<u16> = futures_util::stream::iter(0..10_050)
        .map(|i| {
            let (flood, base) = (&flood, &base);
            async move {
                password_login(flood, base, &format!("ghost-{i}"), "x")
                    .await
                    .0
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let (status, body) = password_login(&here, &base, "alice", "alice-pw").await;
    assert_eq!(status, 429, "the flood lifted alice's lockout: {body}");
    assert!(body.contains("this user"), "{body}");
    // The flooding address itself was stopped early: most attempts cost no password check.
    let limited = answers.iter().filter(|s| **s == 429).count();
    assert!(limited > 9_000, "{limited} of {} refused", answers.len());

    // The lockout is in the store: a restart keeps it.
    f.gw.restart();
    let (status, body) = password_login(&here, &base, "alice", "alice-pw").await;
    assert_eq!(status, 429, "a restart lifted alice's lockout: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_limited_per_source_address() {
    let f = Fixture::start_with(|b| {
        b.user("alice", "alice-pw", &["people"])
            .user(ROOT, ROOT_PW, &["admins"])
            .server("login_max_failures_per_address = 10")
    })
    .await;
    let base = f.gw.http();
    let attacker = client_from([127, 0, 0, 3]);
    for i in 0..10 {
        let (status, _) = password_login(&attacker, &base, &format!("n{i}"), "x").await;
        assert_eq!(status, 401);
    }
    // Past the limit the address is refused before any password is checked, even a right one.
    let (status, body) = password_login(&attacker, &base, "alice", "alice-pw").await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("address"), "{body}");
    // Alice, elsewhere, is not affected.
    let (status, body) =
        password_login(&client_from([127, 0, 0, 1]), &base, "alice", "alice-pw").await;
    assert_eq!(status, 200, "{body}");
    let root = f.gw.login(ROOT, ROOT_PW).await;
    let failed = f.gw.audit(&root, "event=auth.login_failed").await;
    assert!(
        failed
            .iter()
            .any(|r| r["details"]["address_limited"] == true && r["client_addr"] == "127.0.0.3"),
        "{failed:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Redirects only to the gateway's own paths
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_sends_the_browser_only_to_the_gateways_own_paths() {
    let (f, idp) = sso_fixture(&["people"]).await;
    let gw = f.gw.http();
    let own = url::Url::parse(&gw).unwrap();
    // Where a browser lands after logging in through `return_to` (the raw query value).
    let land = |return_to: String| {
        let gw = gw.clone();
        async move {
            let browser = browser_stopping_at_any(&[
                &format!("{gw}/"),
                "http://evil.example",
                "https://evil.example",
            ]);
            let start = format!("{gw}/auth/oidc/start?return_to={return_to}");
            match sso_login(&browser, &start, "alice").await {
                LoginEnd::Redirect(cb) => {
                    let r = browser.get(cb.clone()).send().await.unwrap();
                    assert_eq!(r.status(), 303, "{return_to}");
                    let location = r.headers()["location"].to_str().unwrap().to_string();
                    Ok(cb.join(&location).unwrap())
                }
                LoginEnd::Page(status, body) => Err((status, body)),
            }
        }
    };
    for bad in [
        "/%09/evil.example/x",
        "/%0A/evil.example/x",
        "//evil.example/x",
        "/%5Cevil.example/x",
        "/%5C/evil.example/x",
        "%2F%2Fevil.example/x",
        "/%252F%252Fevil.example/x",
        "/%255Cevil.example/x",
        "/%2509/evil.example/x",
        "https://evil.example/x",
        "/x%0D%0ASet-Cookie:%20a=b",
    ] {
        match land(bad.to_string()).await {
            Err((status, body)) => {
                assert_eq!(status, 400, "{bad}: {body}");
                assert!(body.contains("return_to"), "{bad}: {body}");
            }
            Ok(landed) => panic!("return_to={bad} sent the browser to {landed}"),
        }
    }
    for (good, expect) in [
        ("/", "/"),
        (
            "/%23/approvals%3Fstate%3Dpending",
            "/#/approvals?state=pending",
        ),
        ("/console", "/console"),
    ] {
        let landed = land(good.to_string())
            .await
            .unwrap_or_else(|e| panic!("{good}: {e:?}"));
        assert_eq!(landed.origin(), own.origin(), "{good}");
        assert_eq!(&landed.as_str()[gw.len()..], expect, "{good}");
    }
    // The gateway's own pages escape what they echo.
    let r = reqwest::get(format!(
        "{gw}/auth/oidc/start?redirect_uri=%3Cscript%3Ealert(1)%3C/script%3E&code_challenge=x&code_challenge_method=S256&state=s"
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(!body.contains("<script>alert(1)"), "{body}");
    let _ = &idp;
}

// ---------------------------------------------------------------------------------------------
// No existence oracle
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_without_a_grant_looks_like_one_that_does_not_exist() {
    let w = world(|b| b).await;
    let api = w.api();
    let dana = w.gw.login(DANA, DANA_PW).await;

    // The dry run.
    let dry = |env: &str| json!({"sql": "UPDATE t SET v = 3", "environment": env});
    let (s1, b1) = api
        .post("/api/v1/policy/dry-run", &dana, dry("secret"))
        .await;
    let (s2, b2) = api.post("/api/v1/policy/dry-run", &dana, dry("nope")).await;
    assert_eq!((s1, s2), (404, 404), "{b1} {b2}");
    assert!(
        same_but_name(&b1.to_string(), "secret", &b2.to_string(), "nope"),
        "{b1} {b2}"
    );
    assert_eq!(
        api.post("/api/v1/policy/dry-run", &dana, dry("dev"))
            .await
            .0,
        200
    );
    assert_eq!(
        api.post("/api/v1/policy/dry-run", &w.root, dry("secret"))
            .await
            .0,
        200
    );

    // An exemption request.
    let (s1, b1) = w.exemption_request(&dana, "devs", "secret", "x").await;
    let (s2, b2) = w.exemption_request(&dana, "devs", "nope", "x").await;
    assert_eq!((s1, s2), (404, 404), "{b1} {b2}");
    assert!(
        same_but_name(&b1.to_string(), "secret", &b2.to_string(), "nope"),
        "{b1} {b2}"
    );

    // The catalog is for administrators: anyone else hears the same for every name.
    let (s1, b1) = api.get("/api/v1/environments/secret/catalog", &dana).await;
    let (s2, b2) = api.get("/api/v1/environments/nope/catalog", &dana).await;
    assert_eq!((s1, s2), (403, 403));
    assert_eq!(b1, b2);

    // The list.
    let (_, envs) = api.get("/api/v1/environments", &dana).await;
    let names: Vec<&str> = envs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["dev"]);

    // The database listener.
    let e1 = w.gw.connect("secret", DANA, &dana).await.err().unwrap();
    let e2 = w.gw.connect("nope", DANA, &dana).await.err().unwrap();
    let e3 =
        w.gw.connect("secret/appdb", DANA, &dana)
            .await
            .err()
            .unwrap();
    let e4 = w.gw.connect("nope/appdb", DANA, &dana).await.err().unwrap();
    for (a, an, b, bn) in [(&e1, "secret", &e2, "nope"), (&e3, "secret", &e4, "nope")] {
        assert_eq!((sqlstate(a), sqlstate(b)), ("28000".into(), "28000".into()));
        let (da, db) = (a.as_db_error().unwrap(), b.as_db_error().unwrap());
        assert!(
            same_but_name(da.message(), an, db.message(), bn),
            "{a} / {b}"
        );
        assert_eq!(da.hint(), db.hint());
        assert_eq!(da.detail(), db.detail());
    }

    // MCP, which is a database session underneath.
    let mut mcp = McpClient::connect(&w.gw.http(), &w.bot, &[]).await.unwrap();
    let mut answers = Vec::new();
    for env in ["secret", "nope"] {
        let r = mcp
            .call("describe", json!({"environment": env}))
            .await
            .unwrap();
        assert_eq!(r["isError"], true, "{r}");
        answers.push(r["structuredContent"].to_string());
    }
    assert!(
        same_but_name(&answers[0], "secret", &answers[1], "nope"),
        "{answers:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Cookies
// ---------------------------------------------------------------------------------------------

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// Behind a TLS front (`public_url` https, in any spelling) every cookie is `Secure`, and the
/// console's session works over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_when_the_gateway_is_served_over_https() {
    let (cluster, pw) = app_database().await;
    for scheme in ["https", "HTTPS"] {
        let front_port = free_port();
        let gw = GatewayBuilder::new()
            .environment("app", "staging", &app_url(&cluster), Some(&pw))
            .user(ROOT, ROOT_PW, &["admins"])
            .public_url(&format!("{scheme}://127.0.0.1:{front_port}"))
            .start()
            .await;
        let front = TlsFront::start(front_port, gw.http_port).await;
        let browser = front.browser();
        let r = browser
            .post(format!("{}/api/v1/auth/login", front.url()))
            .json(&json!({"username": ROOT, "password": ROOT_PW, "cookie": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
        let cookies = set_cookies(&r);
        assert_eq!(cookies.len(), 2, "{cookies:?}");
        for c in &cookies {
            assert!(c.contains("; Secure"), "{scheme}: {c}");
            assert!(c.contains("SameSite=Lax"), "{c}");
        }
        let session = cookies
            .iter()
            .find(|c| c.starts_with("gatehouse_session="))
            .unwrap();
        assert!(session.contains("HttpOnly"), "{session}");
        let csrf = cookies
            .iter()
            .find(|c| c.starts_with("gatehouse_csrf="))
            .unwrap();
        assert!(!csrf.contains("HttpOnly"), "{csrf}");
        let csrf = csrf["gatehouse_csrf=".len()..]
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let me = browser
            .get(format!("{}/api/v1/whoami", front.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
        let r = browser
            .post(format!("{}/api/v1/auth/logout", front.url()))
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        for c in set_cookies(&r) {
            assert!(c.contains("; Secure") && c.contains("Max-Age=0"), "{c}");
        }
        let me = browser
            .get(format!("{}/api/v1/whoami", front.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 401);
    }
}

// ---------------------------------------------------------------------------------------------
// Regression: what held before
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_refuse_everyone_else() {
    let w = world(|b| b).await;
    let dana = w.gw.login(DANA, DANA_PW).await;
    let api = w.api();
    let routes: &[(&str, &str)] = &[
        ("GET", "/api/v1/sessions"),
        ("DELETE", "/api/v1/sessions/x"),
        ("GET", "/api/v1/grants"),
        ("POST", "/api/v1/grants"),
        ("DELETE", "/api/v1/grants/x"),
        ("GET", "/api/v1/groups"),
        ("POST", "/api/v1/groups/admins/members"),
        ("DELETE", "/api/v1/groups/admins/members/dana"),
        ("GET", "/api/v1/service-accounts"),
        ("POST", "/api/v1/service-accounts"),
        ("DELETE", "/api/v1/service-accounts/x"),
        ("POST", "/api/v1/service-accounts/x/rotate"),
        ("GET", "/api/v1/rules"),
        ("POST", "/api/v1/rules"),
        ("GET", "/api/v1/rules/versions"),
        ("PUT", "/api/v1/rules/x"),
        ("DELETE", "/api/v1/rules/x"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/audit/export"),
        ("POST", "/api/v1/connections/x/terminate"),
        ("GET", "/api/v1/environments/dev/catalog"),
        ("POST", "/api/v1/environments/dev/catalog/refresh"),
        ("PUT", "/api/v1/environments/dev/catalog/columns/public/t/v"),
        (
            "DELETE",
            "/api/v1/environments/dev/catalog/columns/public/t/v",
        ),
        ("GET", "/api/v1/exemptions"),
        ("POST", "/api/v1/exemptions"),
        ("DELETE", "/api/v1/exemptions/x"),
    ];
    for (method, path) in routes {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let body = (*method != "GET" && *method != "DELETE").then(|| json!({}));
        for token in [dana.as_str(), w.bot.as_str()] {
            let (status, r) = api.send(m.clone(), path, Some(token), body.clone()).await;
            assert_eq!(status, 403, "{method} {path}: {r}");
        }
        let (status, _) = api.send(m.clone(), path, None, body.clone()).await;
        assert_eq!(status, 401, "{method} {path} without a token");
    }
    // Nor may a non-admin dry-run as someone else.
    let (status, _) = api
        .post(
            "/api/v1/policy/dry-run",
            &dana,
            json!({"sql": "SELECT 1", "environment": "dev", "identity": ROOT}),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_identity_cannot_reach_anothers_approvals_connections_or_sessions() {
    let w = world(|b| b).await;
    let api = w.api();
    let dana = w.gw.login(DANA, DANA_PW).await;
    let bob = w.gw.login(BOB, BOB_PW).await;
    let (_, a) = w
        .exemption_request(&w.bot, "agents", "prod", "not dana's")
        .await;
    let id = a["id"].as_str().unwrap();
    assert_eq!(
        api.get(&format!("/api/v1/approvals/{id}"), &dana).await.0,
        404
    );
    assert_eq!(w.decide(&dana, id, "approve").await.0, 404);
    assert_eq!(w.decide(&dana, id, "deny").await.0, 404);
    let (_, list) = api.get("/api/v1/approvals", &dana).await;
    assert_eq!(list["items"], json!([]));

    let bots = w.gw.connect("dev", BOT, &w.bot).await.unwrap();
    let (_, conns) = api.get("/api/v1/connections", &w.root).await;
    let conn = conns["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["identity"] == BOT)
        .expect("bot's connection")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, mine) = api.get("/api/v1/connections", &dana).await;
    assert_eq!(mine["items"], json!([]));
    assert_eq!(
        api.post(
            &format!("/api/v1/connections/{conn}/terminate"),
            &dana,
            json!({})
        )
        .await
        .0,
        403
    );
    bots.batch_execute("SELECT 1").await.expect("still open");

    let (_, sessions) = api.get("/api/v1/sessions?identity=bob", &w.root).await;
    let sid = sessions["items"][0]["id"].as_str().unwrap();
    assert_eq!(
        api.delete(&format!("/api/v1/sessions/{sid}"), &dana)
            .await
            .0,
        403
    );
    assert_eq!(api.get("/api/v1/whoami", &bob).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_sessions_need_the_csrf_header_and_never_reach_mcp() {
    let w = world(|b| b).await;
    let base = w.gw.http();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let r = browser
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": DANA, "password": DANA_PW, "cookie": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookies = set_cookies(&r);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("gatehouse_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert!(
        !session.contains("Secure"),
        "plain http on loopback: {session}"
    );
    let body: Value = r.json().await.unwrap();
    assert!(body.get("token").is_none(), "{body}");
    let csrf = cookies
        .iter()
        .find(|c| c.starts_with("gatehouse_csrf="))
        .unwrap()["gatehouse_csrf=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();

    // Reading needs no header; changing state does.
    let r = browser
        .get(format!("{base}/api/v1/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let request = json!({"group": "devs", "environment": "dev", "category": "email",
                         "expires_in_seconds": 60, "reason": "csrf"});
    let r = browser
        .post(format!("{base}/api/v1/exemptions/requests"))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = browser
        .post(format!("{base}/api/v1/exemptions/requests"))
        .header("x-csrf-token", "0".repeat(64))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = browser
        .post(format!("{base}/api/v1/exemptions/requests"))
        .header("x-csrf-token", &csrf)
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // MCP takes bearer tokens only: the console's cookie is worth nothing there.
    let r = browser
        .post(format!("{base}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "page", "version": "0"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Nor does it answer a host name it does not serve (DNS rebinding).
    let r = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .header("host", "evil.example")
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(&w.bot)
        .json(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "page", "version": "0"}}}),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    // The console is not to be framed and runs only its own scripts.
    let r = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
}
