//! Guardrails and approvals through the gateway, with the built-in production rules: denials in
//! both protocols, a held statement approved or denied while it waits, the once-only re-run
//! after a late approval, automatic approval from the planner's estimate, approvals that survive
//! a restart, and the events and webhooks approvers' tools rely on.

use std::time::{Duration, Instant};

use gatehouse_tests::{
    app_database, message, random_token, sqlstate, Api, Cluster, Gateway, GatewayBuilder,
};
use serde_json::Value;

const ROOT: &str = "root";
const ROOT_PW: &str = "root-pw";

struct Setup {
    cluster: Cluster,
    gw: Gateway,
    token: String,
    admin: String,
}

/// `prod` (production) and `dev` (development) on one cluster; `agent` may reach both.
async fn setup(extra: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> Setup {
    let (cluster, pw) = app_database().await;
    let url = gatehouse_tests::app_url(&cluster);
    let token = random_token("gha_");
    let builder = GatewayBuilder::new()
        .environment("prod", "production", &url, Some(&pw))
        .environment("dev", "development", &url, Some(&pw))
        .service_account("agent", &token, &["agents"])
        .user(ROOT, ROOT_PW, &["admins"])
        .grant(&["agents", "admins"], &["prod", "dev"]);
    let gw = extra(builder).start().await;
    let admin = gw.login(ROOT, ROOT_PW).await;
    let dev = gw.connect("dev", "agent", &token).await.unwrap();
    dev.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, 0 FROM generate_series(1, 1000) g; ANALYZE t;")
        .await
        .unwrap();
    Setup {
        cluster,
        gw,
        token,
        admin,
    }
}

async fn pending(s: &Setup) -> Vec<Value> {
    let (status, r) = Api::new(s.gw.http())
        .get("/api/v1/approvals?state=pending", &s.admin)
        .await;
    assert_eq!(status, 200, "{r}");
    r["items"].as_array().cloned().unwrap_or_default()
}

/// Waits for a pending approval of a statement containing `needle`.
async fn wait_pending(s: &Setup, needle: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(a) = pending(s)
            .await
            .into_iter()
            .find(|a| a["statement"].as_str().unwrap_or("").contains(needle))
        {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "no pending approval for {needle}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn decide(
    s: &Setup,
    token: &str,
    id: &str,
    verb: &str,
    reason: Option<&str>,
) -> (u16, Value) {
    Api::new(s.gw.http())
        .post(
            &format!("/api/v1/approvals/{id}/{verb}"),
            token,
            serde_json::json!({ "reason": reason }),
        )
        .await
}

async fn count(s: &Setup, sql: &str) -> i64 {
    s.cluster
        .client("appdb")
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangerous_statements_are_denied_in_both_protocols() {
    let s = setup(|b| b).await;
    let c = s.gw.connect("prod", "agent", &s.token).await.unwrap();
    // Simple protocol.
    let e = c.batch_execute("DROP TABLE t").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    assert!(message(&e).contains("prod-no-drop"), "{}", message(&e));
    // Extended protocol (Parse/Bind/Execute).
    let e = c.execute("TRUNCATE t", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    let e = c
        .query("SELECT pg_terminate_backend($1)", &[&1i32])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    // A denial inside a transaction leaves it aborted, as PostgreSQL would; ROLLBACK recovers.
    c.batch_execute("BEGIN").await.unwrap();
    assert_eq!(
        sqlstate(
            &c.batch_execute("GRANT ALL ON t TO PUBLIC")
                .await
                .unwrap_err()
        ),
        "42501"
    );
    let e = c.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&e), "25P02", "{e}");
    c.batch_execute("ROLLBACK").await.unwrap();
    // Safe statements pass, including one that only mentions dropping in a string.
    let r = c
        .query_one("SELECT count(*) FROM t WHERE 'drop table t' <> ''", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, i64>(0), 1000);
    assert_eq!(
        count(&s, "SELECT count(*) FROM t").await,
        1000,
        "nothing was dropped or truncated"
    );
    // The same statement in development is not this rule's business.
    let dev = s.gw.connect("dev", "agent", &s.token).await.unwrap();
    dev.batch_execute("CREATE TABLE scratch (x int); DROP TABLE scratch")
        .await
        .unwrap();
    // The audit names the rule.
    let denied = s.gw.audit(&s.admin, "decision=deny").await;
    assert!(
        denied
            .iter()
            .any(|r| r["rule"] == "prod-no-drop" && r["statement"] == "DROP TABLE t"),
        "{denied:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_statement_runs_when_approved_and_fails_when_denied() {
    let s = setup(|b| b).await;
    // psql shows the NOTICE naming the approval while it waits.
    let conn = s.gw.conn_str("prod", "agent", &s.token);
    let psql = std::thread::spawn(move || {
        gatehouse_tests::run_cmd(
            std::process::Command::new("psql").arg(conn).args([
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "UPDATE t SET v = 1 WHERE id <= 10",
            ]),
            Duration::from_secs(60),
        )
    });
    let a = wait_pending(&s, "UPDATE t SET v = 1").await;
    let id = a["id"].as_str().unwrap().to_string();
    assert_eq!(a["identity"], "agent");
    assert_eq!(a["environment"], "prod");
    assert_eq!(a["rule"], "prod-agent-review-writes");
    // The requester cannot approve its own statement.
    assert_eq!(decide(&s, &s.token, &id, "approve", None).await.0, 403);
    assert_eq!(
        count(&s, "SELECT count(*) FROM t WHERE v = 1").await,
        0,
        "held, not run"
    );
    assert_eq!(
        decide(&s, &s.admin, &id, "approve", Some("looks fine"))
            .await
            .0,
        200
    );
    let out = psql.join().unwrap();
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stderr.contains(&format!("Approval {id} is pending")),
        "{out:?}"
    );
    assert!(out.stdout.contains("UPDATE 10"), "{out:?}");
    assert_eq!(count(&s, "SELECT count(*) FROM t WHERE v = 1").await, 10);

    // Extended protocol, inside a transaction that stays open while it waits; then denied.
    let c = s.gw.connect("prod", "agent", &s.token).await.unwrap();
    c.batch_execute("BEGIN").await.unwrap();
    let waiting = tokio::spawn(async move {
        let r = c.execute("DELETE FROM t WHERE id > $1", &[&990i32]).await;
        (c, r)
    });
    let a = wait_pending(&s, "DELETE FROM t WHERE id > $1").await;
    let id = a["id"].as_str().unwrap().to_string();
    assert_eq!(
        decide(&s, &s.admin, &id, "deny", None).await.0,
        400,
        "a denial needs a reason"
    );
    assert_eq!(
        decide(&s, &s.admin, &id, "deny", Some("not during business hours"))
            .await
            .0,
        200
    );
    let (c, r) = waiting.await.unwrap();
    let e = r.unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    assert!(
        message(&e).contains(&format!(
            "approval {id} was denied by root: not during business hours"
        )),
        "{}",
        message(&e)
    );
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(count(&s, "SELECT count(*) FROM t").await, 1000);
    // Deciding twice is a conflict.
    assert_eq!(decide(&s, &s.admin, &id, "approve", None).await.0, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_approval_lets_the_identical_statement_run_once_even_after_a_restart() {
    let mut s = setup(|b| b.server("approval_window_seconds = 1")).await;
    let c = s.gw.connect("prod", "agent", &s.token).await.unwrap();
    let sql = "UPDATE t SET v = 7 WHERE id = 5";
    let e = c.batch_execute(sql).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501");
    assert!(
        message(&e).contains("was not decided within 1 s"),
        "{}",
        message(&e)
    );
    let a = wait_pending(&s, sql).await;
    let id = a["id"].as_str().unwrap().to_string();

    // Approvals survive a restart of the gateway.
    s.gw.restart();
    let admin = s.gw.login(ROOT, ROOT_PW).await;
    s.admin = admin;
    assert!(pending(&s).await.iter().any(|p| p["id"] == id.as_str()));
    let (_, r) = decide(&s, &s.admin, &id, "approve", None).await;
    assert_eq!(r["state"], "approved");

    let c = s.gw.connect("prod", "agent", &s.token).await.unwrap();
    // A different statement is not covered by the grant.
    assert_eq!(
        sqlstate(
            &c.batch_execute("UPDATE t SET v = 7 WHERE id = 6")
                .await
                .unwrap_err()
        ),
        "42501"
    );
    // The identical one runs, once.
    c.batch_execute(sql).await.unwrap();
    assert_eq!(count(&s, "SELECT v::int8 FROM t WHERE id = 5").await, 7);
    assert_eq!(
        sqlstate(&c.batch_execute(sql).await.unwrap_err()),
        "42501",
        "the grant was spent"
    );
    let used =
        s.gw.audit(&s.admin, &format!("q={id}&event=statement"))
            .await;
    assert!(
        used.iter().any(|r| r["approval_id"] == id.as_str()
            && r["decision"] == "review"
            && r["rows"] == 1),
        "{used:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_changes_are_approved_from_the_planners_estimate() {
    let (port, received) = gatehouse_tests::http_sink::start().await;
    let s = setup(move |b| {
        b.environment_setting("prod", "auto_approve_below_rows = 100")
            .server("approval_window_seconds = 2")
            .toml(&format!("[[webhooks]]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret_env = \"GH_HOOK_SECRET\"\n"))
            .env("GH_HOOK_SECRET", "hook-secret")
    })
    .await;
    // Live events for approvers' screens.
    let events = reqwest::Client::new()
        .get(format!("{}/events", s.gw.http()))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let mut events = events.bytes_stream();

    let c = s.gw.connect("prod", "agent", &s.token).await.unwrap();
    // About 9 rows by the planner's estimate: approved on the spot.
    let started = Instant::now();
    let n = c
        .execute("UPDATE t SET v = 3 WHERE id < 10", &[])
        .await
        .unwrap();
    assert_eq!(n, 9);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no person was waited for"
    );
    let approved = s.gw.audit(&s.admin, "event=approval.approved").await;
    assert!(
        approved
            .iter()
            .any(|r| r["identity"] == "policy:row-estimate"),
        "{approved:#?}"
    );
    // About 1000: a person decides (nobody does here, so the window passes).
    let e = c
        .execute("UPDATE t SET v = 4 WHERE id > 0", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501");
    assert_eq!(count(&s, "SELECT count(*) FROM t WHERE v = 4").await, 0);
    let held = wait_pending(&s, "UPDATE t SET v = 4").await;
    assert!(held["estimated_rows"].as_i64().unwrap() > 100, "{held:#}");

    // The SSE stream and the signed webhook saw the approvals.
    use futures_util::StreamExt;
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen.contains("event: approval.created") && Instant::now() < deadline {
        if let Ok(Some(Ok(chunk))) =
            tokio::time::timeout(Duration::from_secs(1), events.next()).await
        {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(
        seen.contains("event: approval.created") && seen.contains("UPDATE t SET v = "),
        "{seen}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = received.lock().unwrap().clone();
        if got.iter().any(|p| p.event == "approval.created")
            && got.iter().any(|p| p.event == "approval.decided")
        {
            for p in &got {
                assert_eq!(
                    p.signature,
                    gatehouse_tests::http_sink::signature(b"hook-secret", &p.body)
                );
            }
            break;
        }
        assert!(Instant::now() < deadline, "webhooks not delivered: {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_estimate_runs_no_user_code_and_counts_writes_in_ctes() {
    let s = setup(|b| {
        b.environment_setting("prod", "auto_approve_below_rows = 100")
            .server("approval_window_seconds = 2")
    })
    .await;
    // A backend of the upstream role, which a function run by that role could kill.
    let watcher = s.gw.connect("dev", "agent", &s.token).await.unwrap();
    let pid: i32 = watcher
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    watcher
        .batch_execute(
            "CREATE FUNCTION boom(p int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS
             $$BEGIN PERFORM pg_terminate_backend(p); RETURN 1; END$$",
        )
        .await
        .unwrap();
    let c = s.gw.connect("prod", "agent", &s.token).await.unwrap();

    // Planning folds an immutable call with constant arguments: the estimate must not plan it.
    let e = c
        .execute(&format!("UPDATE t SET v = 5 WHERE id = boom({pid})"), &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    assert_eq!(
        watcher
            .query_one("SELECT 7", &[])
            .await
            .expect("the other backend is alive")
            .get::<_, i32>(0),
        7
    );
    let held = wait_pending(&s, "boom(").await;
    assert!(held["estimated_rows"].is_null(), "{held:#}");

    // A write in a CTE under a one-row SELECT counts with its own rows.
    let e = c
        .query(
            "WITH d AS (UPDATE t SET v = 6 RETURNING 1) SELECT count(*) FROM d",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    assert_eq!(count(&s, "SELECT count(*) FROM t WHERE v = 6").await, 0);
}
