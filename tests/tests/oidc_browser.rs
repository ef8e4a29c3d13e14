//! The loopback SSO login in a real browser: headless Chromium (Debian's package, driven by
//! npm `playwright-core` through `tests/oidc/browser-login.mjs`) goes from the gateway's start
//! URL through the real provider's login and consent pages to a native app's loopback listener,
//! and the app exchanges the code it received for a working session.

use std::io::{BufRead, BufReader, Write};
use std::process::Command;
use std::time::Duration;

use gatehouse_tests::oidc::{oidc_toml, repo_root, AppLogin, NodeIdp, CLIENT_SECRET, SECRET_ENV};
use gatehouse_tests::{free_port, run_cmd, Fixture, ENV};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_completes_the_loopback_login() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: apt-get install chromium (scripts/install-deps.sh does)"
    );
    let idp_port = free_port();
    let f = Fixture::start_with(move |b| {
        b.grant(&["engineers"], &[ENV])
            .toml(&oidc_toml(&format!("http://127.0.0.1:{idp_port}")))
            .env(SECRET_ENV, CLIENT_SECRET)
    })
    .await;
    let gw_http = f.gw.http();
    let _idp = tokio::task::spawn_blocking(move || NodeIdp::provider(idp_port, &gw_http))
        .await
        .unwrap();

    // The native app: a one-shot loopback listener, as `gatehouse login` would run.
    let app = AppLogin::new();
    let port: u16 = app
        .redirect_uri
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the app's port");
    let received = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("the browser reaches the app");
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        let body = "Logged in; you can close this window.";
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        line.split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    });

    let start = app.start_url(&f.gw.http());
    let script = repo_root().join("tests/oidc/browser-login.mjs");
    let redirect_uri = app.redirect_uri.clone();
    let out = tokio::task::spawn_blocking(move || {
        run_cmd(
            Command::new("node")
                .arg(script)
                .args([&start, "alice", &redirect_uri])
                .current_dir(repo_root()),
            Duration::from_secs(120),
        )
    })
    .await
    .unwrap();
    assert!(out.ok(), "browser login failed: {out:?}\n{}", f.gw.log());
    let path = received.join().unwrap();
    let url = url::Url::parse(&format!("http://127.0.0.1{path}")).unwrap();
    let param = |n: &str| {
        url.query_pairs()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("state").as_deref(), Some(app.state.as_str()));
    let code = param("code").expect("code in the app's redirect");

    let http = reqwest::Client::new();
    let body: Value = http
        .post(format!("{}/api/v1/auth/token", f.gw.http()))
        .json(&json!({"code": code, "code_verifier": app.pkce.verifier}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["token"].as_str().expect("token").to_string();
    assert!(body["refresh_token"].as_str().is_some());
    let c =
        f.gw.connect(ENV, "alice@example.com", &token)
            .await
            .expect("the session token connects");
    let who: String = c
        .query_one("SELECT current_setting('application_name')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "gatehouse:alice@example.com");
}
