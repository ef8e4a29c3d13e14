//! API-managed groups against a running gateway: a membership added by an admin lets a local
//! user reach an environment granted to that group on her next connection, removing it shuts
//! the door again and ends her open connections that no other grant covers (others' stay), a
//! service account's groups grow the same way, every change is audited, and non-admins cannot
//! touch memberships.

use gatehouse_tests::{
    app_database, ended_with, random_token, sqlstate, two_environments, Api, Fixture, AGENT, ENV,
    OTHER_ENV,
};
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memberships_grant_access_until_removed_and_are_audited() {
    let f = Fixture::start_with(|b| {
        b.user("root", "root-pw", &["admins"])
            .user("dana", "dana-pw", &["interns"])
            .grant(&["analysts"], &[ENV])
    })
    .await;
    let api = Api::new(f.gw.http());
    let root = f.gw.login("root", "root-pw").await;
    let dana = f.gw.login("dana", "dana-pw").await;

    // dana's own groups reach nothing.
    let e =
        f.gw.connect(ENV, "dana", &dana)
            .await
            .expect_err("no grant");
    assert_eq!(sqlstate(&e), "28000");

    // Only admins manage memberships.
    let dana_member = json!({"member": "dana"});
    let (status, _) = api
        .post(
            "/api/v1/groups/analysts/members",
            &dana,
            dana_member.clone(),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = api
        .post(
            "/api/v1/groups/has%20space/members",
            &root,
            dana_member.clone(),
        )
        .await;
    assert_eq!(status, 400);

    let (status, _) = api
        .post(
            "/api/v1/groups/analysts/members",
            &root,
            dana_member.clone(),
        )
        .await;
    assert_eq!(status, 201);
    let (status, again) = api
        .post("/api/v1/groups/analysts/members", &root, dana_member)
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["added"], false);

    // The same session token now carries the group: no new login needed.
    let (status, who) = api.get("/api/v1/whoami", &dana).await;
    assert_eq!(status, 200);
    let groups: Vec<&str> = who["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert_eq!(groups, ["analysts", "interns"], "{who}");
    let client = f.gw.connect(ENV, "dana", &dana).await.expect("granted");
    let row = client.query_one("SELECT 1 + 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);

    // A service account's groups grow the same way.
    let (status, _) = api
        .post(
            "/api/v1/groups/reporting/members",
            &root,
            json!({"member": AGENT}),
        )
        .await;
    assert_eq!(status, 201);

    let (status, list) = api.get("/api/v1/groups", &root).await;
    assert_eq!(status, 200);
    let find = |name: &str| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("group {name} in {list}"))
    };
    let analysts = find("analysts");
    assert_eq!(analysts["members"][0]["member"], "dana");
    assert_eq!(analysts["members"][0]["source"], "api");
    assert_eq!(analysts["members"][0]["added_by"], "root");
    assert_eq!(find("admins")["members"][0]["source"], "config");
    assert_eq!(find("reporting")["members"][0]["member"], AGENT);

    // Removing the membership refuses dana's next connection.
    let member = "/api/v1/groups/analysts/members/dana";
    assert_eq!(api.delete(member, &root).await.0, 204);
    assert_eq!(api.delete(member, &root).await.0, 404);
    let e = f.gw.connect(ENV, "dana", &dana).await.expect_err("removed");
    assert_eq!(sqlstate(&e), "28000");
    drop(client);

    // Every change is in the audit chain, by whom, about whom.
    let records = f.gw.audit(&root, "event=admin.group.").await;
    let changes: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| {
            assert_eq!(r["identity"], "root");
            (
                r["event"].as_str().unwrap(),
                r["details"]["group"].as_str().unwrap(),
                r["details"]["member"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("admin.group.add_member", "analysts", "dana"),
            ("admin.group.add_member", "reporting", AGENT),
            ("admin.group.remove_member", "analysts", "dana"),
        ]
    );
    let verify = f.gw.verify_audit();
    assert_eq!(verify.status, 0, "{}", verify.stderr);

    // The OpenAPI document names the endpoints.
    let (_, doc) = api.get_anonymous("/api/v1/openapi.json").await;
    for path in [
        "/api/v1/groups",
        "/api/v1/groups/{name}/members",
        "/api/v1/groups/{name}/members/{member}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} in the OpenAPI document"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_member_ends_their_connections_that_lost_access() {
    let (cluster, upstream_password) = app_database().await;
    let agent_token = random_token("gha_");
    let gw = two_environments(&cluster, &upstream_password, &agent_token)
        .user("dana", "dana-pw", &["interns"])
        .user("omar", "omar-pw", &["interns", "others", "reviewers"])
        .grant(&["analysts"], &[ENV])
        .grant(&["reviewers"], &[ENV])
        .start()
        .await;
    let api = Api::new(gw.http());
    let root = gw.login("root", "root-pw").await;
    let dana = gw.login("dana", "dana-pw").await;
    let omar = gw.login("omar", "omar-pw").await;

    // dana reaches `app` only through an API membership of `analysts`; omar is in `analysts`
    // too, but his config groups also reach `app` (`reviewers`) and `other` (`others`); the
    // agent has its own grant.
    for member in ["dana", "omar"] {
        let (status, _) = api
            .post(
                "/api/v1/groups/analysts/members",
                &root,
                json!({ "member": member }),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (dana_client, dana_end) = gw.connect_watched(ENV, "dana", &dana).await;
    // Her second connection is psql reading statements from a pipe, as a script would.
    let mut psql = tokio::process::Command::new("psql")
        .arg(gw.conn_str(ENV, "dana", &dana))
        .args(["-X", "-A", "-t", "-q", "-v", "VERBOSITY=verbose"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("psql");
    let mut psql_in = psql.stdin.take().expect("psql stdin");
    let mut psql_out = BufReader::new(psql.stdout.take().expect("psql stdout")).lines();
    psql_in.write_all(b"SELECT 'before';\n").await.unwrap();
    let line = tokio::time::timeout(Duration::from_secs(10), psql_out.next_line())
        .await
        .expect("psql answers")
        .unwrap();
    assert_eq!(line.as_deref(), Some("before"));
    let (omar_app, omar_app_end) = gw.connect_watched(ENV, "omar", &omar).await;
    let (omar_other, omar_other_end) = gw.connect_watched(OTHER_ENV, "omar", &omar).await;
    let (agent, agent_end) = gw.connect_watched(ENV, AGENT, &agent_token).await;
    for c in [&dana_client, &omar_app, &omar_other, &agent] {
        c.simple_query("SELECT 1").await.expect("connected");
    }

    // What the re-check keeps about each connection (the token's own groups) stays inside
    // the gateway: neither the live view nor its schema shows it.
    let (status, live) = api.get("/api/v1/connections", &root).await;
    assert_eq!(status, 200);
    assert_eq!(live["items"].as_array().unwrap().len(), 5, "{live}");
    assert!(!live.to_string().contains("token_groups"), "{live}");
    let (_, doc) = api.get_anonymous("/api/v1/openapi.json").await;
    assert!(!doc.to_string().contains("token_groups"));

    // Removing dana from the group ends both her connections at once, with the reason.
    let (status, _) = api
        .delete("/api/v1/groups/analysts/members/dana", &root)
        .await;
    assert_eq!(status, 204);
    let (code, m) = ended_with(dana_end).await;
    assert_eq!(code, "57P01", "{m}");
    assert_eq!(
        m,
        "access to environment \"app\" was revoked by administrator \"root\""
    );
    assert!(
        dana_client.simple_query("SELECT 1").await.is_err(),
        "the next statement fails"
    );
    // psql learns it at its next statement, which does not run.
    psql_in.write_all(b"SELECT 'after';\n").await.unwrap();
    drop(psql_in);
    let out = tokio::time::timeout(Duration::from_secs(10), psql.wait_with_output())
        .await
        .expect("psql exits")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "FATAL:  57P01: access to environment \"app\" was revoked by administrator \"root\""
        ),
        "{stderr}"
    );
    assert_eq!(psql_out.next_line().await.unwrap(), None, "nothing ran");
    let e = gw.connect(ENV, "dana", &dana).await.expect_err("refused");
    assert_eq!(sqlstate(&e), "28000");

    // Taken out of `analysts` too, omar keeps both connections: `reviewers` still grants him
    // `app`, `others` grants `other`. The agent was never concerned.
    let (status, _) = api
        .delete("/api/v1/groups/analysts/members/omar", &root)
        .await;
    assert_eq!(status, 204);
    for c in [&omar_app, &omar_other, &agent] {
        let row = c.query_one("SELECT 2", &[]).await.expect("still open");
        assert_eq!(row.get::<_, i32>(0), 2);
    }
    for end in [&omar_app_end, &omar_other_end, &agent_end] {
        assert!(!end.is_finished());
    }

    // The audit has each ended connection's close with its reason, and the admin actions
    // with how many connections they ended.
    let closes = gw
        .audit(&root, "event=connection.close&identity=dana")
        .await;
    assert_eq!(closes.len(), 2, "{closes:?}");
    for c in &closes {
        assert_eq!(c["environment"], ENV);
        assert_eq!(
            c["details"]["reason"],
            "terminated: access to environment \"app\" was revoked by administrator \"root\""
        );
    }
    let removals = gw.audit(&root, "event=admin.group.remove_member").await;
    let counts: Vec<(&str, u64)> = removals
        .iter()
        .map(|r| {
            (
                r["details"]["member"].as_str().unwrap(),
                r["details"]["connections_closed"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [("dana", 2), ("omar", 0)]);
    let verify = gw.verify_audit();
    assert_eq!(verify.status, 0, "{}", verify.stderr);
}
