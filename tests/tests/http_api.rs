//! The HTTP API: health, the OpenAPI document, login, environments filtered by grants, whoami.

use gatehouse_tests::Fixture;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_environments_whoami_and_openapi() {
    let f = Fixture::start_with(|b| {
        b.environment(
            "hidden",
            "staging",
            "postgresql://x@127.0.0.1:1/x?sslmode=disable",
            None,
        )
        .user("root", "pw", &["admins"])
        .grant(&["admins"], &["*"])
    })
    .await;
    let http = reqwest::Client::new();
    let base = f.gw.http();

    let health: Value = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    let doc: Value = http
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/environments",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }

    // No token, a bad token: 401 with a JSON body that says what to do.
    let r = http
        .get(format!("{base}/api/v1/environments"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    let r = http
        .get(format!("{base}/api/v1/environments"))
        .bearer_auth("gha_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The agent sees only what it is granted.
    let envs: Value = http
        .get(format!("{base}/api/v1/environments"))
        .bearer_auth(&f.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = envs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["app"]);
    assert_eq!(envs["items"][0]["tier"], "staging");

    // An admin logged in with a password sees everything.
    let login: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "root", "password": "pw"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap();
    assert!(token.starts_with("ghs_"));
    let envs: Value = http
        .get(format!("{base}/api/v1/environments"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(envs["items"].as_array().unwrap().len(), 2);
    let me: Value = http
        .get(format!("{base}/api/v1/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            me["name"].as_str(),
            me["kind"].as_str(),
            me["admin"].as_bool()
        ),
        (Some("root"), Some("human"), Some(true))
    );
    let me: Value = http
        .get(format!("{base}/api/v1/whoami"))
        .bearer_auth(&f.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["kind"].as_str(), me["admin"].as_bool()),
        (Some("agent"), Some(false))
    );

    // Malformed JSON is a 4xx, not a crash.
    let r = http
        .post(format!("{base}/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let r = http
        .get(format!("{base}/api/v1/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
