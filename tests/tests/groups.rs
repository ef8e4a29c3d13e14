//! API-managed groups against a running gateway: a membership added by an admin lets a local
//! user reach an environment granted to that group on her next connection, removing it shuts
//! the door again, a service account's groups grow the same way, every change is audited, and
//! non-admins cannot touch memberships.

use gatehouse_tests::{sqlstate, Api, Fixture, AGENT, ENV};
use serde_json::json;

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
