//! ID tokens that must be refused, minted on purpose by a misbehaving OpenID provider
//! (`tests/oidc/rogue-idp.mjs`, a real HTTP peer with discovery and JWKS): wrong audience or
//! issuer, expired, issued in the future, not yet valid, bad signature, unknown key id, wrong
//! nonce. Each ends at the app's redirect URI with a clear error, and no session exists after.

use gatehouse_tests::oidc::{login, oidc_toml, AppLogin, NodeIdp, CLIENT_SECRET, SECRET_ENV};
use gatehouse_tests::{free_port, Api, Fixture, ENV};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_stale_id_tokens_are_refused() {
    let idp_port = free_port();
    let f = Fixture::start_with(move |b| {
        b.user("root", "root-pw", &["admins"])
            .grant(&["engineers"], &[ENV])
            .toml(&oidc_toml(&format!("http://127.0.0.1:{idp_port}")))
            .env(SECRET_ENV, CLIENT_SECRET)
    })
    .await;
    let idp = tokio::task::spawn_blocking(move || NodeIdp::rogue(idp_port))
        .await
        .unwrap();
    let gw = f.gw.http();
    let api = Api::new(&gw);
    let admin = f.gw.login("root", "root-pw").await;
    let sessions = || async {
        let (_, v) = api
            .get("/api/v1/sessions?identity=mallory@example.com", &admin)
            .await;
        v["items"].as_array().unwrap().len()
    };

    for (mode, expected) in [
        ("wrong-aud", "wrong audience"),
        ("wrong-iss", "wrong issuer"),
        ("expired", "expired"),
        ("future-iat", "issued in the future"),
        ("nbf-future", "not valid yet"),
        ("bad-sig", "bad signature"),
        ("unknown-kid", "unknown key id"),
        ("wrong-nonce", "nonce mismatch"),
    ] {
        idp.set_mode(mode).await;
        let app = AppLogin::new();
        let end = login(&app.browser(), &app.start_url(&gw), "mallory").await;
        assert_eq!(
            end.param("state").as_deref(),
            Some(app.state.as_str()),
            "{mode}: {end:?}"
        );
        assert_eq!(end.param("code"), None, "{mode}: a code was issued");
        assert_eq!(
            end.param("error").as_deref(),
            Some("access_denied"),
            "{mode}: {end:?}"
        );
        let description = end.param("error_description").unwrap_or_default();
        assert!(
            description.contains("the ID token was rejected") && description.contains(expected),
            "{mode}: {description}"
        );
        assert_eq!(sessions().await, 0, "{mode}: a session was created");
    }

    // The same provider with a well-formed token: the checks above were the only obstacle.
    idp.set_mode("ok").await;
    let app = AppLogin::new();
    let end = login(&app.browser(), &app.start_url(&gw), "mallory").await;
    let code = end
        .param("code")
        .unwrap_or_else(|| panic!("{end:?}\n{}", f.gw.log()));
    let exchange = json!({"code": code, "code_verifier": app.pkce.verifier});
    let (status, _) = api
        .send(Method::POST, "/api/v1/auth/token", None, Some(exchange))
        .await;
    assert_eq!(status, 200);
    assert_eq!(sessions().await, 1);
}
