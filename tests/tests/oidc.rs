//! Single sign-on end to end against a real OpenID provider (npm `oidc-provider`): the RFC 8252
//! loopback login driven over plain HTTP through the provider's login and consent pages, psql
//! with the session token, admin revocation closing open connections, the web console's cookie
//! session with CSRF, and every refusal the flow must make (PKCE, state, replay, redirect URI).

use gatehouse_tests::oidc::{
    browser_stopping_at, browser_stopping_at_any, login, sso_fixture_with, AppLogin, LoginEnd,
    NodeIdp,
};
use gatehouse_tests::{ended_with, message, sqlstate, Api, Fixture, AGENT, ENV};
use reqwest::Method;
use serde_json::{json, Value};

struct Sso {
    f: Fixture,
    idp: NodeIdp,
    api: Api,
    admin: String,
}

impl Sso {
    async fn start() -> Sso {
        let (f, idp) =
            sso_fixture_with(&["engineers"], |b| b.user("root", "root-pw", &["admins"])).await;
        let admin = f.gw.login("root", "root-pw").await;
        let api = Api::new(f.gw.http());
        Sso { f, idp, api, admin }
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.api.get(path, token).await
    }

    /// Sessions of `identity` the admin can see (usable ones only).
    async fn sessions_of(&self, identity: &str) -> Vec<Value> {
        let (status, body) = self
            .get(
                &format!("/api/v1/sessions?identity={identity}"),
                &self.admin,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().unwrap().clone()
    }

    /// A full loopback login as `who`; returns the app's view of the redirect.
    async fn loopback(&self, who: &str) -> (AppLogin, LoginEnd) {
        let app = AppLogin::new();
        let end = login(&app.browser(), &app.start_url(&self.f.gw.http()), who).await;
        (app, end)
    }

    async fn exchange(&self, code: &str, verifier: &str) -> (u16, Value) {
        let body = json!({"code": code, "code_verifier": verifier});
        self.api
            .send(Method::POST, "/api/v1/auth/token", None, Some(body))
            .await
    }

    /// Logs `who` in through the provider and returns a session token.
    async fn token_for(&self, who: &str) -> String {
        let (app, end) = self.loopback(who).await;
        assert_eq!(
            end.param("state").as_deref(),
            Some(app.state.as_str()),
            "{end:?}\n{}",
            self.f.gw.log()
        );
        let code = end
            .param("code")
            .unwrap_or_else(|| panic!("no code: {end:?}\n{}", self.f.gw.log()));
        let (status, body) = self.exchange(&code, &app.pkce.verifier).await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn person_and_agent_connect_then_admin_revokes_both() {
    let s = Sso::start().await;
    let alice = "alice@example.com";

    // The person: SSO through the real provider, then psql with the session token.
    let token = s.token_for("alice").await;
    let (status, me) = s.get("/api/v1/whoami", &token).await;
    assert_eq!(status, 200);
    assert_eq!(
        (me["name"].as_str(), me["kind"].as_str()),
        (Some(alice), Some("human"))
    );
    assert_eq!(me["groups"], json!(["engineers"]));
    let (_, envs) = s.get("/api/v1/environments", &token).await;
    assert_eq!(envs["items"][0]["name"], ENV);
    let out = s.f.gw.psql(
        ENV,
        alice,
        &token,
        &["-tAc", "SELECT current_setting('application_name')"],
    );
    assert!(out.ok(), "{out:?}\n{}", s.f.gw.log());
    assert_eq!(out.stdout.trim(), format!("gatehouse:{alice}/psql"));

    // The agent: a service account an admin creates; its token is shown once.
    let (status, created) = s
        .api
        .post(
            "/api/v1/service-accounts",
            &s.admin,
            json!({"name": "reporter", "groups": ["agents"], "on_behalf_of": alice}),
        )
        .await;
    assert_eq!(status, 201);
    let agent_token = created["token"].as_str().unwrap().to_string();
    let agent_id = created["service_account"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, me) = s.get("/api/v1/whoami", &agent_token).await;
    assert_eq!(
        (me["kind"].as_str(), me["on_behalf_of"].as_str()),
        (Some("agent"), Some(alice))
    );
    let (_, list) = s.get("/api/v1/service-accounts", &s.admin).await;
    assert!(list.to_string().contains("reporter") && !list.to_string().contains(&agent_token));

    // Both connected at once.
    let (person, person_end) = s.f.gw.connect_watched(ENV, alice, &token).await;
    let (agent, agent_end) = s.f.gw.connect_watched(ENV, "reporter", &agent_token).await;
    person.simple_query("SELECT 1").await.unwrap();
    agent.simple_query("SELECT 1").await.unwrap();

    // The admin sees alice's session with its open connection, and revokes it.
    let sessions = s.sessions_of(alice).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        (
            sessions[0]["method"].as_str(),
            sessions[0]["connections"].as_u64()
        ),
        (Some("oidc"), Some(1))
    );
    let id = sessions[0]["id"].as_str().unwrap();
    let (status, _) = s
        .api
        .delete(&format!("/api/v1/sessions/{id}"), &s.admin)
        .await;
    assert_eq!(status, 204);
    let (code, m) = ended_with(person_end).await;
    assert_eq!(code, "57P01");
    assert!(m.contains("revoked by administrator \"root\""), "{m}");

    let (status, _) = s
        .api
        .delete(&format!("/api/v1/service-accounts/{agent_id}"), &s.admin)
        .await;
    assert_eq!(status, 204);
    let (code, m) = ended_with(agent_end).await;
    assert_eq!(code, "57P01");
    assert!(
        m.contains("service account \"reporter\" was revoked"),
        "{m}"
    );

    // Neither token works any more, for the API or the database.
    assert_eq!(s.get("/api/v1/whoami", &token).await.0, 401);
    assert_eq!(s.get("/api/v1/whoami", &agent_token).await.0, 401);
    for (user, t) in [(alice, &token), ("reporter", &agent_token)] {
        let e = s.f.gw.connect(ENV, user, t).await.expect_err("refused");
        assert_eq!(sqlstate(&e), "28P01", "{}", message(&e));
    }
    // The config's agent is untouched.
    s.f.connect().await;
    let _ = AGENT;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_without_a_grant_logs_in_but_sees_and_reaches_nothing() {
    let s = Sso::start().await;
    let token = s.token_for("nogrant").await;
    let (status, envs) = s.get("/api/v1/environments", &token).await;
    assert_eq!(status, 200);
    assert_eq!(envs["items"], json!([]));
    let e =
        s.f.gw
            .connect(ENV, "nogrant@example.com", &token)
            .await
            .expect_err("refused");
    assert_eq!(sqlstate(&e), "28000");
    assert!(
        message(&e).contains("no environment named \"app\" is available to"),
        "{}",
        message(&e)
    );
    // Not an admin either.
    assert_eq!(s.get("/api/v1/sessions", &token).await.0, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_state_pkce_and_redirect_uris_are_checked() {
    let s = Sso::start().await;
    let gw = s.f.gw.http();

    // A code works once: the replay is refused and makes no session.
    let (app, end) = s.loopback("alice").await;
    let code = end.param("code").expect("code");
    let (status, _) = s.exchange(&code, &app.pkce.verifier).await;
    assert_eq!(status, 200);
    let (status, body) = s.exchange(&code, &app.pkce.verifier).await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("invalid or expired code"),
        "{body}"
    );
    assert_eq!(s.sessions_of("alice@example.com").await.len(), 1);

    // With the wrong verifier a code is refused, and spent.
    let (app, end) = s.loopback("alice").await;
    let code = end.param("code").expect("code");
    let (status, body) = s.exchange(&code, &"x".repeat(50)).await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("code_verifier does not match"),
        "{body}"
    );
    assert_eq!(s.exchange(&code, &app.pkce.verifier).await.0, 400);
    assert_eq!(s.sessions_of("alice@example.com").await.len(), 1);

    // Replaying the IdP's callback (same code, same state) is refused: the state is spent.
    let app = AppLogin::new();
    let capture =
        browser_stopping_at_any(&[&format!("{gw}/auth/oidc/callback"), &app.redirect_uri]);
    let LoginEnd::Redirect(callback_url) = login(&capture, &app.start_url(&gw), "alice").await
    else {
        panic!("expected to stop at the callback")
    };
    assert!(
        callback_url.path().ends_with("/auth/oidc/callback"),
        "{callback_url}"
    );
    let first = capture.get(callback_url.clone()).send().await.unwrap();
    assert_eq!(first.status(), 303);
    let replay = capture.get(callback_url.clone()).send().await.unwrap();
    assert_eq!(replay.status(), 400);
    assert!(replay
        .text()
        .await
        .unwrap()
        .contains("unknown or expired login"));

    // A state the gateway never issued.
    let r = reqwest::get(format!("{gw}/auth/oidc/callback?code=x&state=forged"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // The callback in a browser that did not start the login (no binding cookie): refused,
    // and the app is told so.
    let app = AppLogin::new();
    let starter = browser_stopping_at(&format!("{gw}/auth/oidc/callback"));
    let LoginEnd::Redirect(cb) = login(&starter, &app.start_url(&gw), "alice").await else {
        panic!("expected to stop at the callback")
    };
    let other = browser_stopping_at(&app.redirect_uri);
    let r = other.get(cb).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.starts_with(&app.redirect_uri) && loc.contains("error=access_denied"),
        "{loc}"
    );
    assert!(
        loc.contains("state+mismatch") || loc.contains("state%20mismatch"),
        "{loc}"
    );

    // Only loopback redirect URIs, only S256.
    for (uri, method) in [
        ("http://evil.example:5000/cb", "S256"),
        ("https://127.0.0.1:5000/cb", "S256"),
        ("http://localhost:5000/cb", "S256"),
        ("http://127.0.0.1:5000/cb", "plain"),
    ] {
        let mut u = url::Url::parse(&format!("{gw}/auth/oidc/start")).unwrap();
        u.query_pairs_mut()
            .append_pair("redirect_uri", uri)
            .append_pair("code_challenge", &app.pkce.challenge)
            .append_pair("code_challenge_method", method)
            .append_pair("state", "s");
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(u)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{uri} {method}");
    }
    assert_eq!(s.sessions_of("alice@example.com").await.len(), 1);
    let _ = &s.idp;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_console_cookie_session_needs_csrf_to_change_state() {
    let s = Sso::start().await;
    let gw = s.f.gw.http();
    let browser = browser_stopping_at_any(&[
        &format!("{gw}/auth/oidc/callback"),
        &format!("{gw}/console"),
    ]);
    let end = login(
        &browser,
        &format!("{gw}/auth/oidc/start?return_to=/console"),
        "alice",
    )
    .await;
    let LoginEnd::Redirect(cb) = end else {
        panic!("expected to stop at the callback: {end:?}")
    };
    let r = browser.get(cb).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console");
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("gatehouse_session="))
        .expect("session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    // Served over plain http on loopback here, so not Secure (it is when public_url is https).
    assert!(!session.contains("Secure"), "{session}");
    let csrf_cookie = cookies
        .iter()
        .find(|c| c.starts_with("gatehouse_csrf="))
        .expect("csrf cookie");
    assert!(
        !csrf_cookie.contains("HttpOnly"),
        "the console must be able to read it: {csrf_cookie}"
    );
    let csrf = csrf_cookie["gatehouse_csrf=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();

    let me: Value = browser
        .get(format!("{gw}/api/v1/whoami"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "alice@example.com");
    assert_eq!(
        s.sessions_of("alice@example.com").await[0]["method"],
        "oidc"
    );

    // Logout by cookie without the CSRF header (what a hostile page could send) is refused...
    let r = browser
        .post(format!("{gw}/api/v1/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = browser
        .post(format!("{gw}/api/v1/auth/logout"))
        .header("x-csrf-token", "0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(s.sessions_of("alice@example.com").await.len(), 1);
    // ...and with it, the session ends and the cookies are cleared.
    let r = browser
        .post(format!("{gw}/api/v1/auth/logout"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(s.sessions_of("alice@example.com").await.is_empty());
    let r = browser
        .get(format!("{gw}/api/v1/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
