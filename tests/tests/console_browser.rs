//! The web console: served by the gateway at `/` (the built `ui/dist`, with the app's routes
//! falling back to `index.html` and API paths still answering JSON), the cookie login it uses
//! (HttpOnly session cookie, CSRF header on changes), and the whole console in a real browser:
//! headless Chromium (Debian's, driven by npm `playwright-core` through
//! `tests/console/console-e2e.mjs`) signs in through the real OpenID provider, sees the
//! environments, approves a statement a psql session is waiting on (the session then completes)
//! and denies another, adds a grant (which a second, non-admin browser session then sees) and
//! takes it back, adds a user to a group,
//! dry-runs a rule, searches the audit, manages a service account and revokes the other
//! session, which its console reports as expired. Screenshots go to
//! `target/test-output/console/`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use gatehouse_tests::oidc::{oidc_toml, repo_root, NodeIdp, CLIENT_SECRET, SECRET_ENV};
use gatehouse_tests::{
    app_database, app_url, free_port, random_token, spawn_tied, Api, Cluster, Gateway,
    GatewayBuilder,
};
use serde_json::{json, Value};

const ROOT: &str = "root";
const ROOT_PW: &str = "root-password";
const ALICE_PW: &str = "alice-password";

fn dist() -> PathBuf {
    let dist = repo_root().join("ui/dist");
    assert!(
        dist.join("index.html").is_file(),
        "the web console is not built: run `npm ci && npm run build` in {} (scripts/test.sh does)",
        repo_root().display()
    );
    dist
}

/// `prod` (production, tagged) and `dev` (development) on one cluster with table `t` of 1000
/// rows; service account `agent` and admin `root` may reach both; local user `alice`
/// (engineers) has no grant.
async fn setup(extra: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> (Cluster, Gateway, String) {
    let (cluster, pw) = app_database().await;
    let url = app_url(&cluster);
    let token = random_token("gha_");
    let builder = GatewayBuilder::new()
        .environment("prod", "production", &url, Some(&pw))
        .environment_setting("prod", "tags = [\"payments\", \"eu\"]")
        .environment_setting("prod", "description = \"Payments, live customer data\"")
        // Below one row never happens, so nothing is auto-approved, but held statements carry
        // the planner's estimate for the approver.
        .environment_setting("prod", "auto_approve_below_rows = 1")
        .environment("dev", "development", &url, Some(&pw))
        .environment_setting("dev", "tags = [\"payments\"]")
        .service_account("agent", &token, &["agents"])
        .user(ROOT, ROOT_PW, &["admins"])
        .user("alice", ALICE_PW, &["engineers"])
        .grant(&["agents", "admins"], &["prod", "dev"]);
    let gw = extra(builder).start().await;
    let dev = gw.connect("dev", "agent", &token).await.unwrap();
    dev.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v int); \
         INSERT INTO t SELECT g, 0 FROM generate_series(1, 1000) g; ANALYZE t;",
    )
    .await
    .unwrap();
    (cluster, gw, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_at_the_root_with_its_routes_and_the_api_404s() {
    dist();
    let (_cluster, gw, _) = setup(|b| b).await;
    let http = reqwest::Client::new();
    for path in ["/", "/index.html", "/approvals", "/audit/anything"] {
        let r = http
            .get(format!("{}{path}", gw.http()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["x-frame-options"], "DENY", "{path}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let body = r.text().await.unwrap();
        assert!(body.contains("<div id=\"app\">"), "{path}: {body}");
    }
    // The app's script, named by its content hash, is served and cached for good.
    let index = http
        .get(format!("{}/", gw.http()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let script = index
        .split('"')
        .find(|s| s.contains("assets/") && s.ends_with(".js"))
        .expect("a script in index.html")
        .trim_start_matches('.');
    let r = http
        .get(format!("{}{script}", gw.http()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    // API paths never fall back to the app.
    for path in ["/api/v1/nope", "/auth/nope"] {
        let r = http
            .get(format!("{}{path}", gw.http()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_without_a_built_console_says_how_to_build_it() {
    let empty = tempfile::tempdir().unwrap();
    let line = format!("console_dir = {:?}", empty.path().display().to_string());
    let (_cluster, gw, _) = setup(|b| b.server(&line)).await;
    let r = reqwest::get(format!("{}/", gw.http())).await.unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("has not been built"), "{body}");
    assert!(body.contains("npm run build"), "{body}");
    assert!(body.contains("console_dir"), "{body}");
    // The API is unaffected.
    let r = reqwest::get(format!("{}/healthz", gw.http()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn set_cookie_value(r: &reqwest::Response, name: &str) -> Option<(String, String)> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let value = v[name.len() + 1..].split(';').next().unwrap().to_string();
            (value, v.to_string())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consoles_password_login_sets_cookies_and_changes_need_the_csrf_header() {
    let (_cluster, gw, _) = setup(|b| b).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/v1/auth/login", gw.http()))
        .json(&json!({"username": ROOT, "password": ROOT_PW, "cookie": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (session, raw) = set_cookie_value(&r, "gatehouse_session").expect("session cookie");
    assert!(raw.contains("HttpOnly"), "{raw}");
    assert!(raw.contains("SameSite=Lax"), "{raw}");
    let (csrf, raw_csrf) = set_cookie_value(&r, "gatehouse_csrf").expect("csrf cookie");
    assert!(
        !raw_csrf.contains("HttpOnly"),
        "the page must read it: {raw_csrf}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["identity"], ROOT);
    assert!(
        body.get("token").is_none(),
        "a cookie login keeps the token out of the page: {body}"
    );

    let cookie = format!("gatehouse_session={session}; gatehouse_csrf={csrf}");
    let who: Value = http
        .get(format!("{}/api/v1/whoami", gw.http()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["name"], ROOT);
    assert_eq!(who["admin"], true);

    let grant = json!({"groups": ["engineers"], "environments": ["dev"]});
    let r = http
        .post(format!("{}/api/v1/grants", gw.http()))
        .header("cookie", &cookie)
        .json(&grant)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a cookie request without the CSRF header");
    let r = http
        .post(format!("{}/api/v1/grants", gw.http()))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&grant)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);

    // Without `cookie`, the login answers with a token as before.
    let body: Value = http
        .post(format!("{}/api/v1/auth/login", gw.http()))
        .json(&json!({"username": ROOT, "password": ROOT_PW}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["token"].as_str().is_some(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_approves_a_waiting_statement_grants_dry_runs_and_searches_the_audit() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: apt-get install chromium (scripts/install-deps.sh does)"
    );
    dist();
    let idp_port = free_port();
    let (cluster, gw, token) = setup(move |b| {
        b.toml(&oidc_toml(&format!("http://127.0.0.1:{idp_port}")))
            .env(SECRET_ENV, CLIENT_SECRET)
    })
    .await;
    let gw_http = gw.http();
    let _idp = tokio::task::spawn_blocking(move || NodeIdp::provider(idp_port, &gw_http))
        .await
        .unwrap();

    let out_dir = repo_root().join("target/test-output/console");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let script = repo_root().join("tests/console/console-e2e.mjs");
    let log = std::fs::File::create(out_dir.join("browser.log")).unwrap();
    let base = gw.http();
    let mut browser = spawn_tied(
        "node",
        &[script.to_str().unwrap(), &base, out_dir.to_str().unwrap()],
        &[],
        None,
        "KILL",
        Stdio::piped(),
        Stdio::from(log),
    );
    let stdout = browser.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let browser_log = || std::fs::read_to_string(out_dir.join("browser.log")).unwrap_or_default();
    // Everything the script printed until `until` (or its end); panics on a timeout.
    let mut seen: Vec<String> = Vec::new();
    let wait_for = |until: &str, seen: &mut Vec<String>| loop {
        match lines.recv_timeout(Duration::from_secs(120)) {
            Ok(l) => {
                let hit = l.starts_with(until);
                seen.push(l);
                if hit {
                    return;
                }
            }
            Err(e) => panic!(
                "the browser did not reach `{until}` ({e:?}); it printed {seen:?}\n{}\ngateway log:\n{}",
                browser_log(),
                gw.log()
            ),
        }
    };

    // psql as the agent in production, in a thread: it waits while the statement is held.
    let psql = |sql: &'static str| {
        let conn = gw.conn_str("prod", "agent", &token);
        std::thread::spawn(move || {
            gatehouse_tests::run_cmd(
                std::process::Command::new("psql").arg(conn).args([
                    "-X",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    sql,
                ]),
                Duration::from_secs(90),
            )
        })
    };

    wait_for("STEP approvals-open", &mut seen);
    // The Approvals screen is open: now an unbounded DELETE in production, which the built-in
    // rules send to review. psql waits for the decision made in the browser.
    let held = psql("DELETE FROM t");
    wait_for("STEP approved", &mut seen);
    let out = held.join().unwrap();
    assert!(
        out.ok(),
        "the approved statement's session did not complete: {out:?}"
    );
    assert!(out.stdout.contains("DELETE 1000"), "{out:?}");
    let left: i64 = cluster
        .client("appdb")
        .await
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);

    wait_for("STEP deny-ready", &mut seen);
    let held = psql("UPDATE t SET v = 1");
    wait_for("STEP denied", &mut seen);
    let out = held.join().unwrap();
    assert!(!out.ok(), "a denied statement must fail: {out:?}");
    assert!(
        out.stderr
            .contains("no bulk updates during the audit freeze"),
        "the requester hears the reason: {out:?}"
    );

    wait_for("STEP done", &mut seen);
    let status = browser.wait().unwrap();
    assert!(
        status.success(),
        "the browser script failed: {seen:?}\n{}",
        browser_log()
    );

    // What the browser printed after `prefix` (e.g. `DRYRUN `), by the line's name.
    let printed = |prefix: &str| {
        seen.iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in {seen:?}"))
            .to_string()
    };
    // What the page showed for the dry run is the gateway's decision.
    let dry = printed("DRYRUN ");
    assert_eq!(dry, "deny prod-no-drop", "DROP TABLE in production");
    let dry = printed("DRYRUN2 ");
    assert_eq!(
        dry, "deny t-is-append-only",
        "the rule added in the browser decides"
    );
    let estimate: i64 = printed("ESTIMATE ").parse().expect("a number");
    assert!(
        (500..=2000).contains(&estimate),
        "the planner's estimate for 1000 rows: {estimate}"
    );
    let timeline: usize = printed("TIMELINE ").parse().expect("a number");
    assert!(timeline >= 2, "open, statement(s), …: {timeline}");
    let exported: usize = printed("EXPORT ").parse().expect("a number");
    assert_eq!(
        exported, timeline,
        "the CSV export holds the timeline's records"
    );

    // The grant made and removed in the browser: both changes are in the audit, by root.
    let admin = gw.login(ROOT, ROOT_PW).await;
    for event in ["admin.grant.create", "admin.grant.delete"] {
        let records = gw.audit(&admin, &format!("event={event}")).await;
        assert!(
            records.iter().any(|r| r["identity"] == "root@example.com"),
            "{event}: {records:?}\nall admin records: {:?}",
            gw.audit(&admin, "event=admin.")
                .await
                .iter()
                .map(|r| r["event"].to_string())
                .collect::<Vec<_>>()
        );
    }
    let api = Api::new(gw.http());
    let (_, grants) = api.get("/api/v1/grants", &admin).await;
    assert!(
        !grants["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["groups"] == json!(["engineers"])),
        "{grants}"
    );
    // The decision was made by the SSO identity, with its reason, and audited.
    let decided = gw.audit(&admin, "event=approval.approved").await;
    assert!(
        decided.iter().any(|r| r["identity"] == "root@example.com"
            && r["details"]["reason"]
                .as_str()
                .is_some_and(|s| s.contains("checked with the team"))),
        "{decided:?}"
    );
    // The service account made, rotated and revoked in the browser: its last token is refused.
    let rotated = printed("TOKEN ");
    assert!(
        gw.connect("prod", "reporting-bot", &rotated).await.is_err(),
        "a revoked service account's token still connects"
    );
    // alice's session, revoked in the browser, is gone.
    let (_, sessions) = api
        .get("/api/v1/sessions?identity=alice&all=true", &admin)
        .await;
    let items = sessions["items"].as_array().unwrap();
    assert!(
        !items.is_empty() && items.iter().all(|s| !s["revoked_at"].is_null()),
        "{sessions}"
    );
    // alice, added to `oncall` on the Groups screen, is a member through the API, by root.
    let (status, groups) = api.get("/api/v1/groups", &admin).await;
    assert_eq!(status, 200);
    let oncall = groups["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "oncall")
        .unwrap_or_else(|| panic!("no group oncall: {groups}"));
    assert_eq!(oncall["members"][0]["member"], "alice", "{oncall}");
    assert_eq!(oncall["members"][0]["source"], "api", "{oncall}");
    assert_eq!(
        oncall["members"][0]["added_by"], "root@example.com",
        "{oncall}"
    );
    let added = gw.audit(&admin, "event=admin.group.add_member").await;
    assert!(
        added.iter().any(|r| r["identity"] == "root@example.com"
            && r["details"]["group"] == "oncall"
            && r["details"]["member"] == "alice"),
        "{added:?}"
    );
    // The override made in the browser is the gateway's, and audited.
    let (status, catalog) = api.get("/api/v1/environments/prod/catalog", &admin).await;
    assert_eq!(status, 200, "{catalog}");
    let text = catalog.to_string();
    assert!(text.contains("person_name"), "{catalog}");
    let tagged = gw.audit(&admin, "event=admin.masking.tag").await;
    assert!(
        tagged.iter().any(|r| r["identity"] == "root@example.com"
            && r["details"].to_string().contains("person_name")),
        "{tagged:?}"
    );
    for shot in [
        "01-login",
        "02-environments",
        "03-approval-pending",
        "04-approval-decided",
        "05-grants",
        "06-rules-dry-run",
        "07-audit-search",
        "08-audit-timeline",
        "09-deny-needs-a-reason",
        "10-no-environment-yet",
        "11-service-account-created",
        "12-sessions",
        "13-session-expired",
        "14-masking",
        "15-rule-added",
        "16-groups",
    ] {
        let p = out_dir.join(format!("{shot}.png"));
        assert!(
            std::fs::metadata(&p).is_ok_and(|m| m.len() > 1000),
            "{}",
            p.display()
        );
    }
}
