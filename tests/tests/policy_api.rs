//! Guardrail rules and dry runs over the API against a running gateway: rules from the config,
//! the API and the built-in set listed in order; create, update and delete each a new version
//! that survives a restart and lands in the audit chain; non-admins kept out of rule changes
//! and of dry runs as someone else; dry runs answering with the rule and its reason.

use gatehouse_tests::{Api, Fixture, ENV};
use serde_json::{json, Value};

/// The dry-run endpoint, which most of this file calls.
trait DryRun {
    async fn dry_run(&self, token: &str, body: Value) -> (u16, Value);
}

impl DryRun for Api {
    async fn dry_run(&self, token: &str, body: Value) -> (u16, Value) {
        self.post("/api/v1/policy/dry-run", token, body).await
    }
}

fn ids(list: &Value) -> Vec<(String, String)> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const CONFIG_RULE: &str = r#"
[[rules]]
id = "analysts-read-only"
description = "analysts only read; ask the data team for changes"
action = "deny"
groups = ["analysts"]
flags = ["writes"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_api_versions_audit_and_dry_run() {
    let mut f = Fixture::start_with_tier("production", |b| {
        b.user("root", "root-pw", &["admins"])
            .user("dana", "dana-pw", &["analysts"])
            .user("erin", "erin-pw", &["engineers"])
            // A dry run is about an environment one may reach (or any, for an admin).
            .grant(&["engineers"], &[ENV])
            .toml(CONFIG_RULE)
    })
    .await;
    let api = Api::new(f.gw.http());
    let root = f.gw.login("root", "root-pw").await;
    let erin = f.gw.login("erin", "erin-pw").await;

    // Listing and changing rules is for administrators.
    assert_eq!(api.get("/api/v1/rules", &erin).await.0, 403);
    assert_eq!(api.get("/api/v1/rules/versions", &erin).await.0, 403);
    let rule = json!({"id": "no-big-deletes", "action": "deny", "kinds": ["delete"], "tables": ["orders"],
                      "description": "orders are archived, never deleted"});
    assert_eq!(api.post("/api/v1/rules", &erin, rule.clone()).await.0, 403);

    let (s, list) = api.get("/api/v1/rules", &root).await;
    assert_eq!(s, 200);
    assert_eq!(list["version"], 0);
    let order = ids(&list);
    assert_eq!(
        order[0],
        ("analysts-read-only".to_string(), "config".to_string())
    );
    assert!(order
        .iter()
        .any(|(id, src)| id == "prod-no-drop" && src == "builtin"));

    // Create: a new version, placed after the config rules and before the built-in ones.
    let (s, created) = api.post("/api/v1/rules", &root, rule.clone()).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["version"], 1);
    let (_, list) = api.get("/api/v1/rules", &root).await;
    assert_eq!(list["version"], 1);
    assert_eq!(
        ids(&list)[1],
        ("no-big-deletes".to_string(), "api".to_string())
    );
    assert_eq!(list["items"][1]["position"], 1);

    // Refusals: duplicate id, a config or built-in id, an invalid rule, an unknown id.
    assert_eq!(api.post("/api/v1/rules", &root, rule.clone()).await.0, 409);
    let (s, e) = api
        .put(
            "/api/v1/rules/analysts-read-only",
            &root,
            json!({"id": "analysts-read-only", "action": "allow"}),
        )
        .await;
    assert_eq!(s, 403, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("config file"),
        "{e}"
    );
    let (s, _) = api
        .post(
            "/api/v1/rules",
            &root,
            json!({"id": "prod-no-drop", "action": "allow"}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, e) = api
        .post(
            "/api/v1/rules",
            &root,
            json!({"id": "night", "action": "deny", "hours": "late"}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(e["message"].as_str().unwrap().contains("hours"), "{e}");
    assert_eq!(
        api.delete("/api/v1/rules/nope", &root).await.0,
        404,
        "unknown rule"
    );

    // Dry run as oneself: the API rule decides, and says why.
    let (s, d) = api
        .dry_run(
            &erin,
            json!({"sql": "DELETE FROM orders WHERE id = 7", "environment": ENV}),
        )
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["decision"], "deny");
    assert_eq!(d["rule"], "no-big-deletes");
    assert_eq!(
        d["reason"],
        "rule no-big-deletes: DELETE on orders — orders are archived, never deleted"
    );
    assert_eq!(d["classification"]["tables_written"], json!(["orders"]));
    assert_eq!(d["identity"]["name"], "erin");
    assert_eq!(d["tier"], "production");

    // Update: the same rule now asks for review; a new version.
    let mut updated = rule.clone();
    updated["action"] = json!("review");
    let (s, u) = api
        .put("/api/v1/rules/no-big-deletes", &root, updated.clone())
        .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["version"], 2);
    let (_, d) = api
        .dry_run(
            &erin,
            json!({"sql": "DELETE FROM orders WHERE id = 7", "environment": ENV}),
        )
        .await;
    assert_eq!(
        (d["decision"].as_str(), d["rule"].as_str()),
        (Some("review"), Some("no-big-deletes"))
    );

    // The built-in production rules, for a person.
    let (_, d) = api
        .dry_run(
            &erin,
            json!({"sql": "SELECT 1; DROP TABLE users", "environment": ENV}),
        )
        .await;
    assert_eq!(
        (d["decision"].as_str(), d["rule"].as_str()),
        (Some("deny"), Some("prod-no-drop"))
    );
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .starts_with("rule prod-no-drop: DROP TABLE — DROP, TRUNCATE"),
        "{d}"
    );
    // Each statement is decided on its own; the string gets the strictest.
    assert_eq!(d["statements"][0]["action"], "allow", "{d}");
    assert_eq!(d["statements"][1]["rule"], "prod-no-drop", "{d}");
    let (_, d) = api
        .dry_run(
            &erin,
            json!({"sql": "SELECT * FROM drop_log WHERE note = 'drop table x'", "environment": ENV}),
        )
        .await;
    assert_eq!(
        (d["decision"].as_str(), d["rule"].as_str()),
        (Some("allow"), Some("default"))
    );

    // Only administrators dry-run as someone else; the config rule applies to dana's group.
    let (s, _) = api
        .dry_run(
            &erin,
            json!({"sql": "SELECT 1", "environment": ENV, "identity": "dana"}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = api
        .dry_run(
            &erin,
            json!({"sql": "SELECT 1", "environment": ENV, "groups": ["admins"]}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, d) = api
        .dry_run(
            &root,
            json!({"sql": "INSERT INTO t VALUES (1)", "environment": ENV, "identity": "dana"}),
        )
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["identity"]["groups"], json!(["analysts"]));
    assert_eq!(
        (d["decision"].as_str(), d["rule"].as_str()),
        (Some("deny"), Some("analysts-read-only"))
    );
    // The fixture's service account is an agent: any write in production needs approval.
    let (_, d) = api
        .dry_run(
            &root,
            json!({"sql": "INSERT INTO t VALUES (1)", "environment": ENV, "identity": "agent"}),
        )
        .await;
    assert_eq!(d["identity"]["kind"], "agent");
    assert_eq!(
        (d["decision"].as_str(), d["rule"].as_str()),
        (Some("review"), Some("prod-agent-review-writes"))
    );
    let (s, _) = api
        .dry_run(&erin, json!({"sql": "SELECT 1", "environment": "nope"}))
        .await;
    assert_eq!(s, 404);

    // Delete; then the versions, newest first, each with the rules as they were.
    assert_eq!(
        api.delete("/api/v1/rules/no-big-deletes", &root).await.0,
        204
    );
    let (s, versions) = api.get("/api/v1/rules/versions", &root).await;
    assert_eq!(s, 200);
    let changes: Vec<(i64, &str, &str)> = versions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["change"].as_str().unwrap(),
                v["created_by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (3, "delete no-big-deletes", "root"),
            (2, "update no-big-deletes", "root"),
            (1, "create no-big-deletes", "root")
        ]
    );
    assert_eq!(versions["items"][1]["rules"][0]["action"], "review");
    assert_eq!(versions["items"][0]["rules"], json!([]));

    // Every change is in the audit chain, by whom, with the rule.
    let records = f.gw.audit(&root, "event=admin.").await;
    let rule_events: Vec<(&str, i64)> = records
        .iter()
        .filter(|r| r["event"].as_str().unwrap().starts_with("admin.rule."))
        .map(|r| {
            assert_eq!(r["identity"], "root");
            (
                r["event"].as_str().unwrap(),
                r["details"]["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rule_events,
        [
            ("admin.rule.create", 1),
            ("admin.rule.update", 2),
            ("admin.rule.delete", 3)
        ]
    );
    let update = records
        .iter()
        .find(|r| r["event"] == "admin.rule.update")
        .unwrap();
    assert_eq!(update["details"]["previous"]["action"], "deny");
    assert_eq!(update["details"]["rule"]["action"], "review");

    // The OpenAPI document names the new endpoints.
    let doc: Value = api.get("/api/v1/openapi.json", &root).await.1;
    for path in [
        "/api/v1/rules",
        "/api/v1/rules/{id}",
        "/api/v1/rules/versions",
        "/api/v1/policy/dry-run",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }

    // Versions survive a restart; the audit chain stays intact.
    let (s, _) = api.post("/api/v1/rules", &root, rule.clone()).await;
    assert_eq!(s, 201);
    f.gw.restart();
    let root = f.gw.login("root", "root-pw").await;
    let (_, list) = api.get("/api/v1/rules", &root).await;
    assert_eq!(list["version"], 4);
    assert_eq!(
        ids(&list)[1],
        ("no-big-deletes".to_string(), "api".to_string())
    );
    let out = f.gw.verify_audit();
    assert!(out.ok(), "{out:?}");
}
