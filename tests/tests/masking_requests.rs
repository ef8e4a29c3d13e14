//! Masking exemptions through an approval: a person asks for one of their groups, in one
//! environment, for a time, with a reason; an approver (never the requester) approves it through
//! the approvals API, and from then the group's new connections see that category unmasked.
//! Every step is in the audit trail.

use gatehouse_tests::{Api, Fixture, ENV};
use serde_json::json;

async fn reach(f: &Fixture, user: &str, token: &str) -> String {
    let c = f.gw.connect(ENV, user, token).await.expect("connect");
    let row = c
        .query_one("SELECT reach FROM contacts WHERE id = 1", &[])
        .await
        .expect("select");
    row.get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_request_unmasks_a_category_for_the_group() {
    let f = Fixture::start_with(|b| {
        b.user("root", "root-pw", &["admins"])
            .user("dana", "dana-pw", &["support"])
            .grant(&["support"], &[ENV])
    })
    .await;
    f.cluster
        .exec(
            "appdb",
            "CREATE TABLE contacts (id int PRIMARY KEY, reach text);
             INSERT INTO contacts VALUES (1, 'ana@example.com'), (2, 'bo@example.org');
             GRANT SELECT ON contacts TO app_owner;",
        )
        .await;
    let api = Api::new(f.gw.http());
    let root = f.gw.login("root", "root-pw").await;
    let dana = f.gw.login("dana", "dana-pw").await;

    let masked = reach(&f, "dana", &dana).await;
    assert_ne!(masked, "ana@example.com", "masked before any exemption");
    assert!(masked.ends_with("@example.com"), "{masked}");

    // Requests are for one's own groups, time-boxed, with a reason.
    let ask = |group: &str, secs: Option<i64>, reason: Option<&str>| {
        json!({"group": group, "environment": ENV, "category": "email",
               "expires_in_seconds": secs, "reason": reason})
    };
    for bad in [
        ask("admins", Some(600), Some("ticket 42")),
        ask("support", None, Some("ticket 42")),
        ask("support", Some(600), None),
    ] {
        let (status, body) = api.post("/api/v1/exemptions/requests", &dana, bad).await;
        assert_eq!(status, 400, "{body}");
    }
    let (status, approval) = api
        .post(
            "/api/v1/exemptions/requests",
            &dana,
            ask(
                "support",
                Some(600),
                Some("ticket 42: customer cannot log in"),
            ),
        )
        .await;
    assert_eq!(status, 202, "{approval}");
    let id = approval["id"].as_str().unwrap().to_string();
    assert_eq!(approval["state"], "pending");

    // Nothing changes until it is approved, and not by the requester.
    assert_ne!(reach(&f, "dana", &dana).await, "ana@example.com");
    let (status, body) = api
        .post(&format!("/api/v1/approvals/{id}/approve"), &dana, json!({}))
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, pending) = api.get("/api/v1/approvals?state=pending", &root).await;
    assert_eq!(status, 200);
    assert!(
        pending["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == id.as_str()),
        "the approver sees the request: {pending}"
    );
    let (status, decided) = api
        .post(
            &format!("/api/v1/approvals/{id}/approve"),
            &root,
            json!({"reason": "ok for today"}),
        )
        .await;
    assert_eq!(status, 200, "{decided}");

    let (status, list) = api.get("/api/v1/exemptions", &root).await;
    assert_eq!(status, 200);
    let e = &list["items"][0];
    assert_eq!(e["group"], "support", "{list}");
    assert_eq!(e["category"], "email", "{list}");
    assert_eq!(e["created_by"], "root", "{list}");
    assert!(e["expires_at"].is_string(), "time-boxed: {list}");

    assert_eq!(reach(&f, "dana", &dana).await, "ana@example.com");

    let requested = f.gw.audit(&root, "event=masking.exemption.requested").await;
    assert_eq!(requested.len(), 1, "{requested:?}");
    assert_eq!(requested[0]["identity"], "dana");
    let created =
        f.gw.audit(&root, "event=admin.masking.exemption.create")
            .await;
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["identity"], "root");
    assert_eq!(created[0]["details"]["approval_id"], id.as_str());
}
