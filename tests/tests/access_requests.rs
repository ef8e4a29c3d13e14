//! Access on request: a person with no grant asks for an environment for a while (CLI and
//! API), an approver decides it through the approvals API, and the access that follows is the
//! requester's alone and ends by itself, ending its connections. Denied, withdrawn and expired
//! requests give nothing; a requester never approves their own request except under
//! break-glass, which is capped, marked and announced. Bad requests are 400s naming the field.

use std::time::{Duration, Instant};

use gatehouse_tests::http_sink::{self, Posts};
use gatehouse_tests::{
    app_database, app_url, ended_with, sqlstate, Api, CliHome, Gateway, GatewayBuilder,
};
use serde_json::{json, Value};

const PROD: &str = "prod";
/// An environment whose requests may last a few seconds only: for watching access end.
const BRIEF: &str = "brief";

struct Setup {
    gw: Gateway,
    api: Api,
    /// An approver (`admins`).
    root: String,
    /// Webhook deliveries.
    hooks: Posts,
    /// The token of service account `agent` (granted `dev`).
    agent: String,
    _cluster: gatehouse_tests::Cluster,
}

/// `prod` takes requests of up to an hour (role `app_reader` on offer; `oncall` may break
/// glass for up to 10 minutes), `brief` of up to 3 seconds, `dev` none. Nobody but `agents`
/// has a grant.
async fn setup(pending_expiry_seconds: u64) -> Setup {
    let (cluster, password) = app_database().await;
    cluster
        .exec(
            "postgres",
            "CREATE ROLE app_reader NOLOGIN; GRANT app_reader TO app_owner;",
        )
        .await;
    let (port, hooks) = http_sink::start().await;
    let url = app_url(&cluster);
    let agent = gatehouse_tests::random_token("gha_");
    let gw = GatewayBuilder::new()
        .environment(PROD, "production", &url, Some(&password))
        .environment_setting(
            PROD,
            &format!(
                "access_requests = {{ max_duration_seconds = 3600, pending_expiry_seconds = {pending_expiry_seconds}, roles = [\"app_reader\"], break_glass_groups = [\"oncall\"], break_glass_max_seconds = 600 }}"
            ),
        )
        .environment(BRIEF, "staging", &url, Some(&password))
        .environment_setting(BRIEF, "access_requests = { max_duration_seconds = 3 }")
        .environment("dev", "development", &url, Some(&password))
        .user("root", "root-pw", &["admins"])
        .user("ana", "ana-pw", &["engineers"])
        .user("olga", "olga-pw", &["engineers", "oncall"])
        .service_account("agent", &agent, &["agents"])
        .grant(&["agents"], &["dev"])
        .toml(&format!(
            "[[webhooks]]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret_env = \"GH_HOOK_SECRET\"\n"
        ))
        .env("GH_HOOK_SECRET", "hook-secret")
        .start()
        .await;
    let api = Api::new(gw.http());
    let root = gw.login("root", "root-pw").await;
    Setup {
        gw,
        api,
        root,
        hooks,
        agent,
        _cluster: cluster,
    }
}

/// Waits up to 10 s for a webhook delivery of `event` about approval `id`, checks its signature
/// and returns its body.
async fn hook(s: &Setup, event: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = s.hooks.lock().unwrap().clone();
        for p in &got {
            let body: Value = serde_json::from_slice(&p.body).unwrap_or_default();
            if p.event == event && body["approval"]["id"] == id {
                assert_eq!(
                    p.signature,
                    http_sink::signature(b"hook-secret", &p.body),
                    "signed like every webhook"
                );
                return body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no {event} webhook for {id}: {:?}",
            got.iter().map(|p| &p.event).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn request(s: &Setup, token: &str, body: Value) -> (u16, Value) {
    s.api.post("/api/v1/access-requests", token, body).await
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_approved_by_another_person_lets_the_requester_alone_in_until_it_ends() {
    let s = setup(3600).await;
    let ana = CliHome::new();
    ana.must_login(&s.gw, "ana", "ana-pw");
    let ana_token = s.gw.login("ana", "ana-pw").await;
    let olga = s.gw.login("olga", "olga-pw").await;

    // No grant: no connection, and prod is not among her environments.
    let e = s.gw.connect(PROD, "ana", &ana_token).await.unwrap_err();
    assert_eq!(sqlstate(&e), "28000", "{e}");
    let listed = ana.run(&["requests"]);
    assert!(listed.ok(), "{listed:?}");
    assert!(
        listed.stdout.contains("You have made no access requests")
            && listed.stdout.contains(PROD)
            && !listed.stdout.contains("dev "),
        "{}",
        listed.stdout
    );

    // From the CLI: prod for an hour.
    let made = ana.run(&[
        "--json",
        "request",
        PROD,
        "--for",
        "1h",
        "--reason",
        "ticket 4312: orders stuck",
    ]);
    assert!(made.ok(), "{made:?}\n{}", s.gw.log());
    let made: Value = serde_json::from_str(made.stdout.trim()).expect("JSON");
    let id = made["id"].as_str().expect("id").to_string();
    assert_eq!(made["state"], "pending");
    assert_eq!(made["kind"], "access");
    assert_eq!(made["access"]["duration_seconds"], 3600);
    let created = hook(&s, "access_request.created", &id).await;
    assert!(
        created["link"]
            .as_str()
            .is_some_and(|l| l.starts_with(&s.gw.http()) && l.contains(&id)),
        "a link to decide in the console: {created}"
    );

    // Still nothing before a decision; the requester cannot decide it, nor can someone who is
    // not an approver.
    assert!(s.gw.connect(PROD, "ana", &ana_token).await.is_err());
    let own = ana.run(&["approve", &id, "--reason", "I am sure"]);
    assert_eq!(own.status, 4, "{own:?}");
    assert!(own.stderr.contains("another approver must"), "{own:?}");
    let (status, body) = s
        .api
        .post(
            &format!("/api/v1/approvals/{id}/approve"),
            &olga,
            json!({"reason": "looks fine"}),
        )
        .await;
    assert_eq!(status, 404, "not hers to see: {body}");

    // The approver sees it in the inbox with the statements, and approves it.
    let (status, pending) = s
        .api
        .get("/api/v1/approvals?state=pending&kind=access", &s.root)
        .await;
    assert_eq!(status, 200);
    let item = pending["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("the approver sees the request: {pending}"));
    assert_eq!(item["identity"], "ana");
    assert_eq!(item["reason"], "ticket 4312: orders stuck");
    // And from the CLI, with the statements or on its own.
    let root_home = CliHome::new();
    root_home.must_login(&s.gw, "root", "root-pw");
    let listed = root_home.run(&["--json", "approvals", "--pending", "--kind", "access"]);
    assert!(listed.ok(), "{listed:?}");
    let listed: Value = serde_json::from_str(listed.stdout.trim()).expect("JSON");
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["kind"] == "access")
            && listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["id"] == id.as_str()),
        "{listed}"
    );
    let before = now();
    let (status, decided) = s
        .api
        .post(
            &format!("/api/v1/approvals/{id}/approve"),
            &s.root,
            json!({"reason": "go ahead"}),
        )
        .await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["state"], "approved");
    assert_eq!(decided["access"]["break_glass"], false);
    let until = decided["grant_expires_at"].as_i64().expect("until");
    assert!(
        (before + 3600..=now() + 3600).contains(&until),
        "an hour from the approval: {decided}"
    );
    let d = hook(&s, "access_request.decided", &id).await;
    assert_eq!(d["approval"]["state"], "approved");
    // Deciding twice is a conflict.
    let (status, _) = s
        .api
        .post(
            &format!("/api/v1/approvals/{id}/deny"),
            &s.root,
            json!({"reason": "no"}),
        )
        .await;
    assert_eq!(status, 409);

    // She connects, through a tunnel with psql and directly; another engineer still cannot.
    let tunnel = ana.tunnel(PROD, &[]);
    let out = tunnel.psql(PROD, &["-tAc", "SELECT current_user"]);
    assert!(out.ok(), "{out:?}\n{}", tunnel.log());
    assert_eq!(out.stdout.trim(), "app_owner");
    let c =
        s.gw.connect(PROD, "ana", &ana_token)
            .await
            .expect("connect");
    let one: i32 = c.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    assert!(s.gw.connect(PROD, "olga", &olga).await.is_err());
    let listed = ana.run(&["requests"]);
    assert!(
        listed.stdout.contains(&id) && listed.stdout.contains("approved"),
        "{}",
        listed.stdout
    );
    // The grant shows whose it is and where it came from.
    let (_, grants) = s.api.get("/api/v1/grants", &s.root).await;
    assert!(
        grants["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["identity"] == "ana"
                && g["approval_id"] == id.as_str()
                && g["expires_at"].is_string()),
        "{grants}"
    );

    // Every step is in the audit trail.
    for (event, who) in [("access.requested", "ana"), ("access.approved", "root")] {
        let r = s.gw.audit(&s.root, &format!("event={event}")).await;
        assert!(
            r.iter()
                .any(|r| r["identity"] == who && r["approval_id"] == id.as_str()),
            "{event}: {r:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_access_ends_by_itself_and_ends_its_connections() {
    let s = setup(3600).await;
    let ana = s.gw.login("ana", "ana-pw").await;
    let (status, made) = request(
        &s,
        &ana,
        json!({"environment": BRIEF, "duration_seconds": 3, "reason": "a quick look"}),
    )
    .await;
    assert_eq!(status, 202, "{made}");
    let id = made["id"].as_str().unwrap().to_string();
    let (status, decided) = s
        .api
        .post(
            &format!("/api/v1/approvals/{id}/approve"),
            &s.root,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{decided}");
    let (c, conn) = s.gw.connect_watched(BRIEF, "ana", &ana).await;
    c.query_one("SELECT 1", &[])
        .await
        .expect("in while it lasts");
    let (code, message) = ended_with(conn).await;
    assert_eq!(code, "57P01");
    assert!(
        message.contains("access to environment \"brief\" expired at")
            && message.contains("request it again"),
        "{message}"
    );
    let e = s.gw.connect(BRIEF, "ana", &ana).await.unwrap_err();
    assert_eq!(sqlstate(&e), "28000", "{e}");
    let expired = s.gw.audit(&s.root, "event=admin.grant.expired").await;
    assert!(
        expired
            .iter()
            .any(|r| r["details"]["approval_id"] == id.as_str()
                && r["details"]["identity"] == "ana"
                && r["details"]["connections_closed"] == 1),
        "{expired:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_withdrawn_and_expired_requests_give_no_access_and_bad_ones_name_the_field() {
    let s = setup(2).await;
    let ana = s.gw.login("ana", "ana-pw").await;
    let ask = |env: &str, secs: Option<i64>, role: Option<&str>, reason: Option<&str>| json!({"environment": env, "duration_seconds": secs, "role": role, "reason": reason});

    for (body, field) in [
        (ask(PROD, Some(7200), None, Some("r")), "`duration_seconds`"),
        (ask(PROD, Some(0), None, Some("r")), "`duration_seconds`"),
        (ask(PROD, None, None, Some("r")), "`duration_seconds`"),
        (ask("nowhere", Some(60), None, Some("r")), "`environment`"),
        // An environment that takes no requests answers as a missing one.
        (ask("dev", Some(60), None, Some("r")), "`environment`"),
        (ask(PROD, Some(60), Some("postgres"), Some("r")), "`role`"),
        (ask(PROD, Some(60), None, None), "`reason`"),
        (ask(PROD, Some(60), None, Some("  ")), "`reason`"),
    ] {
        let (status, answer) = request(&s, &ana, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(field), "{body}: {message}");
    }
    let (_, answer) = request(&s, &ana, ask(PROD, Some(7200), None, Some("r"))).await;
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("maximum of 1h"),
        "{answer}"
    );
    let (_, answer) = request(&s, &ana, ask("dev", Some(60), None, Some("r"))).await;
    let unknown = request(&s, &ana, ask("nowhere", Some(60), None, Some("r")))
        .await
        .1;
    assert_eq!(
        answer["message"].as_str().unwrap().replace("dev", "X"),
        unknown["message"].as_str().unwrap().replace("nowhere", "X"),
        "the same words for both"
    );

    // Denied: a reason is required, the requester cannot deny their own either, and no access.
    let (_, made) = request(
        &s,
        &ana,
        ask(PROD, Some(600), Some("app_reader"), Some("report")),
    )
    .await;
    let id = made["id"].as_str().unwrap().to_string();
    let (status, _) = s
        .api
        .post(&format!("/api/v1/approvals/{id}/deny"), &s.root, json!({}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .api
        .post(
            &format!("/api/v1/approvals/{id}/deny"),
            &ana,
            json!({"reason": "nvm"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, denied) = s
        .api
        .post(
            &format!("/api/v1/approvals/{id}/deny"),
            &s.root,
            json!({"reason": "use the replica"}),
        )
        .await;
    assert_eq!(status, 200, "{denied}");
    assert_eq!(denied["state"], "denied");
    hook(&s, "access_request.decided", &id).await;
    let e = s.gw.connect(PROD, "ana", &ana).await.unwrap_err();
    assert_eq!(sqlstate(&e), "28000", "{e}");

    // Withdrawn by her (nobody else may), then it cannot be approved.
    let (_, made) = request(&s, &ana, ask(PROD, Some(600), None, Some("again"))).await;
    let id = made["id"].as_str().unwrap().to_string();
    let (status, _) = s
        .api
        .post(
            &format!("/api/v1/access-requests/{id}/withdraw"),
            &s.root,
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
    let home = CliHome::new();
    home.must_login(&s.gw, "ana", "ana-pw");
    let out = home.run(&["withdraw", &id]);
    assert!(out.ok(), "{out:?}");
    let (status, _) = s
        .api
        .post(
            &format!("/api/v1/approvals/{id}/approve"),
            &s.root,
            json!({}),
        )
        .await;
    assert_eq!(status, 409);
    hook(&s, "access_request.withdrawn", &id).await;
    assert!(s.gw.connect(PROD, "ana", &ana).await.is_err());

    // Nobody decides within the pending expiry (2 s here): expired, and announced.
    let (_, made) = request(&s, &ana, ask(PROD, Some(600), None, Some("later"))).await;
    let id = made["id"].as_str().unwrap().to_string();
    let expired = hook(&s, "access_request.expired", &id).await;
    assert_eq!(expired["approval"]["state"], "expired");
    let (status, _) = s
        .api
        .post(
            &format!("/api/v1/approvals/{id}/approve"),
            &s.root,
            json!({}),
        )
        .await;
    assert_eq!(status, 409);
    assert!(s.gw.connect(PROD, "ana", &ana).await.is_err());
    let records = s.gw.audit(&s.root, "event=access.expired").await;
    assert!(
        records.iter().any(|r| r["approval_id"] == id.as_str()),
        "{records:#?}"
    );
    let (_, mine) = s.api.get("/api/v1/access-requests", &ana).await;
    // Made within the same second or two: their order among themselves is not the point.
    let mut states: Vec<&str> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["state"].as_str().unwrap())
        .collect();
    states.sort();
    assert_eq!(states, ["denied", "expired", "withdrawn"], "{mine}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_is_self_approved_with_a_reason_short_marked_and_announced() {
    let s = setup(3600).await;
    let olga_home = CliHome::new();
    olga_home.must_login(&s.gw, "olga", "olga-pw");
    let olga = s.gw.login("olga", "olga-pw").await;
    let ana = s.gw.login("ana", "ana-pw").await;

    // Outside the break-glass group, approving one's own request stays refused.
    let (_, made) = request(
        &s,
        &ana,
        json!({"environment": PROD, "duration_seconds": 600, "reason": "please"}),
    )
    .await;
    let ana_id = made["id"].as_str().unwrap().to_string();
    let (status, body) = s
        .api
        .post(
            &format!("/api/v1/approvals/{ana_id}/approve"),
            &ana,
            json!({"reason": "emergency"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");

    // In it: a reason is required …
    let (_, made) = request(
        &s,
        &olga,
        json!({"environment": PROD, "duration_seconds": 3600, "role": "app_reader", "reason": "database on fire"}),
    )
    .await;
    let id = made["id"].as_str().unwrap().to_string();
    let (status, body) = s
        .api
        .post(&format!("/api/v1/approvals/{id}/approve"), &olga, json!({}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("break-glass"),
        "{body}"
    );
    // … and with one, the access is capped at 10 minutes, marked, and announced.
    let (status, decided) = s
        .api
        .post(
            &format!("/api/v1/approvals/{id}/approve"),
            &olga,
            json!({"reason": "incident 77: checkout down"}),
        )
        .await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["access"]["break_glass"], true);
    let until = decided["grant_expires_at"].as_i64().unwrap();
    assert!(until <= now() + 600, "capped: {decided}");
    let announced = hook(&s, "access_request.break_glass", &id).await;
    assert_eq!(announced["approval"]["decided_by"], "olga");
    let glass = s.gw.audit(&s.root, "event=access.break_glass").await;
    assert!(
        glass.iter().any(|r| r["identity"] == "olga"
            && r["approval_id"] == id.as_str()
            && r["details"]["reason"] == "incident 77: checkout down"),
        "{glass:#?}"
    );
    let (_, grants) = s.api.get("/api/v1/grants", &s.root).await;
    assert!(
        grants["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["identity"] == "olga" && g["break_glass"] == true),
        "{grants}"
    );
    // She is in, as the role she asked for.
    let c = s.gw.connect(PROD, "olga", &olga).await.expect("connect");
    let who: String = c
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "app_reader");

    // The CLI does both steps with --break-glass.
    let out = olga_home.run(&[
        "request",
        "brief",
        "--for",
        "3s",
        "--reason",
        "second incident",
        "--break-glass",
    ]);
    assert_eq!(out.status, 4, "brief has no break-glass group: {out:?}");
    let out = olga_home.run(&[
        "request",
        PROD,
        "--for",
        "5m",
        "--reason",
        "incident 78",
        "--break-glass",
    ]);
    assert!(out.ok() && out.stdout.contains("BREAK-GLASS"), "{out:?}");
}

/// The whole flow in the web console, in headless Chromium (`tests/console/access-e2e.mjs`):
/// ana requests prod, root approves it from his inbox, ana's console lists prod and she can
/// connect; olga breaks glass and root's console shows the banner; root replays an agent's
/// session step by step from the audit trail. Screenshots go to `target/test-output/access/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_requests_access_and_an_approver_approves_it_in_the_console() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let root_dir = gatehouse_tests::oidc::repo_root();
    assert!(
        root_dir.join("ui/dist/index.html").is_file(),
        "the web console is not built: run `npm run build` (scripts/test.sh does)"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: apt-get install chromium (scripts/install-deps.sh does)"
    );
    let s = setup(3600).await;
    // A session to replay: three statements, the last one failing.
    let agent =
        s.gw.connect("dev", "agent", &s.agent)
            .await
            .expect("agent connects");
    agent.query_one("SELECT 1", &[]).await.unwrap();
    agent
        .query_one("SELECT count(*) FROM pg_class", &[])
        .await
        .unwrap();
    agent.query_one("SELECT 1/0", &[]).await.unwrap_err();
    drop(agent);
    let mut connection = String::new();
    for _ in 0..100 {
        let records = s.gw.audit(&s.root, "identity=agent&event=statement").await;
        if records.len() >= 3 {
            connection = records[0]["connection_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !connection.is_empty(),
        "the agent's statements were audited"
    );
    let out_dir = root_dir.join("target/test-output/access");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let log = std::fs::File::create(out_dir.join("browser.log")).unwrap();
    let script = root_dir.join("tests/console/access-e2e.mjs");
    let base = s.gw.http();
    let mut browser = gatehouse_tests::spawn_tied(
        "node",
        &[
            script.to_str().unwrap(),
            &base,
            out_dir.to_str().unwrap(),
            &connection,
        ],
        &[],
        None,
        "KILL",
        Stdio::piped(),
        Stdio::from(log),
    );
    let stdout = browser.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let mut wait_for = |until: &str| loop {
        match lines.recv_timeout(Duration::from_secs(120)) {
            Ok(l) => {
                let hit = l.starts_with(until);
                seen.push(l.clone());
                if hit {
                    return l;
                }
            }
            Err(e) => panic!(
                "the browser did not reach `{until}` ({e:?}); it printed {seen:?}\n{}\ngateway log:\n{}",
                std::fs::read_to_string(out_dir.join("browser.log")).unwrap_or_default(),
                s.gw.log()
            ),
        }
    };
    let id = wait_for("REQUEST ")
        .trim_start_matches("REQUEST ")
        .trim()
        .to_string();
    assert!(id.starts_with("apr_"), "{id}");
    wait_for("STEP approved");
    let (_, decided) = s.api.get(&format!("/api/v1/approvals/{id}"), &s.root).await;
    assert_eq!(decided["state"], "approved", "{decided}");
    assert_eq!(decided["decided_by"], "root");
    assert_eq!(decided["decision_reason"], "ok for the incident window");
    assert_eq!(decided["access"]["duration_seconds"], 3600);
    wait_for("STEP ana-sees-prod");
    let ana = s.gw.login("ana", "ana-pw").await;
    let c = s.gw.connect(PROD, "ana", &ana).await.expect("ana connects");
    c.query_one("SELECT 1", &[]).await.unwrap();
    wait_for("STEP break-glass");
    let glass = s.gw.audit(&s.root, "event=access.break_glass").await;
    assert!(glass.iter().any(|r| r["identity"] == "olga"), "{glass:#?}");
    let replayed = wait_for("REPLAY ");
    assert!(
        replayed.contains("Step 4 of") && replayed.contains("division by zero"),
        "the replay stepped to the failing statement: {replayed}"
    );
    wait_for("STEP done");
    let status = browser.wait().unwrap();
    assert!(status.success(), "the browser script failed: {status}");
}
