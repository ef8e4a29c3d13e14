//! The HTTP API: health, discovery, the OpenAPI document, login, environments filtered by grants, whoami.

use gatehouse_tests::{Api, Fixture};
use reqwest::Method;

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
    let api = Api::new(&base);

    let (_, health) = api.get_anonymous("/healthz").await;
    assert_eq!(health["status"], "ok");

    // Discovery, before any login: where PostgreSQL is (the public URL's host, the listener's
    // port) and that this gateway has no SSO.
    let (status, info) = api.get_anonymous("/api/v1/info").await;
    assert_eq!(status, 200);
    assert_eq!(
        info["postgres_address"],
        format!("127.0.0.1:{}", f.gw.pg_port)
    );
    assert_eq!(info["sso"], false);

    let (_, doc) = api.get_anonymous("/api/v1/openapi.json").await;
    for path in [
        "/api/v1/info",
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
    let (status, body) = api.get_anonymous("/api/v1/environments").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(api.get("/api/v1/environments", "gha_nope").await.0, 401);

    // The agent sees only what it is granted.
    let (_, envs) = api.get("/api/v1/environments", &f.token).await;
    let names: Vec<&str> = envs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["app"]);
    assert_eq!(envs["items"][0]["tier"], "staging");

    // An admin logged in with a password sees everything.
    let credentials = serde_json::json!({"username": "root", "password": "pw"});
    let (_, login) = api
        .send(Method::POST, "/api/v1/auth/login", None, Some(credentials))
        .await;
    let token = login["token"].as_str().unwrap();
    assert!(token.starts_with("ghs_"));
    let (_, envs) = api.get("/api/v1/environments", token).await;
    assert_eq!(envs["items"].as_array().unwrap().len(), 2);
    let (_, me) = api.get("/api/v1/whoami", token).await;
    assert_eq!(
        (
            me["name"].as_str(),
            me["kind"].as_str(),
            me["admin"].as_bool()
        ),
        (Some("root"), Some("human"), Some(true))
    );
    let (_, me) = api.get("/api/v1/whoami", &f.token).await;
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
    assert_eq!(api.get_anonymous("/api/v1/nope").await.0, 404);
}
