//! API-managed groups against a running gateway: a membership added by an admin lets a local
//! user reach an environment granted to that group on her next connection, removing it shuts
//! the door again, a service account's groups grow the same way, every change is audited, and
//! non-admins cannot touch memberships.

use gatehouse_tests::{sqlstate, Fixture, AGENT, ENV};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memberships_grant_access_until_removed_and_are_audited() {
    let f = Fixture::start_with(|b| {
        b.user("root", "root-pw", &["admins"])
            .user("dana", "dana-pw", &["interns"])
            .grant(&["analysts"], &[ENV])
    })
    .await;
    let http = reqwest::Client::new();
    let base = f.gw.http();
    let root = f.gw.login("root", "root-pw").await;
    let dana = f.gw.login("dana", "dana-pw").await;

    // dana's own groups reach nothing.
    let e =
        f.gw.connect(ENV, "dana", &dana)
            .await
            .expect_err("no grant");
    assert_eq!(sqlstate(&e), "28000");

    // Only admins manage memberships.
    let r = http
        .post(format!("{base}/api/v1/groups/analysts/members"))
        .bearer_auth(&dana)
        .json(&json!({"member": "dana"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(format!("{base}/api/v1/groups/has%20space/members"))
        .bearer_auth(&root)
        .json(&json!({"member": "dana"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = http
        .post(format!("{base}/api/v1/groups/analysts/members"))
        .bearer_auth(&root)
        .json(&json!({"member": "dana"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let again = http
        .post(format!("{base}/api/v1/groups/analysts/members"))
        .bearer_auth(&root)
        .json(&json!({"member": "dana"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["added"], false);

    // The same session token now carries the group: no new login needed.
    let who: Value = http
        .get(format!("{base}/api/v1/whoami"))
        .bearer_auth(&dana)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let r = http
        .post(format!("{base}/api/v1/groups/reporting/members"))
        .bearer_auth(&root)
        .json(&json!({"member": AGENT}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let list: Value = http
        .get(format!("{base}/api/v1/groups"))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let r = http
        .delete(format!("{base}/api/v1/groups/analysts/members/dana"))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .delete(format!("{base}/api/v1/groups/analysts/members/dana"))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
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
    let doc: Value = http
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
