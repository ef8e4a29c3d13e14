//! OpenID Connect parts for the end-to-end tests: the real provider (npm `oidc-provider`,
//! `tests/oidc/provider.mjs`), a misbehaving one for negative cases (`tests/oidc/rogue-idp.mjs`),
//! and a native app's side of the RFC 8252 loopback login, driven over plain HTTP with a cookie
//! jar through the provider's own login and consent pages.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::Digest;

use crate::process::{free_port, spawn_tied};

/// The client secret the test provider and gateways share.
pub const CLIENT_SECRET: &str = "gatehouse-test-client-secret";
/// The environment variable the gateway reads it from.
pub const SECRET_ENV: &str = "GH_TEST_OIDC_SECRET";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The common SSO setup: a [`crate::Fixture`] whose gateway signs people in through the real
/// provider (started here), with `groups` granted the fixture's environment.
pub async fn sso_fixture(groups: &'static [&'static str]) -> (crate::Fixture, NodeIdp) {
    sso_fixture_with(groups, |b| b).await
}

/// [`sso_fixture`] with more configuration (e.g. a local admin user).
pub async fn sso_fixture_with(
    groups: &'static [&'static str],
    extra: impl FnOnce(crate::GatewayBuilder) -> crate::GatewayBuilder,
) -> (crate::Fixture, NodeIdp) {
    let idp_port = free_port();
    let f = crate::Fixture::start_with(move |b| {
        extra(b)
            .grant(groups, &[crate::ENV])
            .toml(&oidc_toml(&format!("http://127.0.0.1:{idp_port}")))
            .env(SECRET_ENV, CLIENT_SECRET)
    })
    .await;
    let gw_http = f.gw.http();
    let idp = tokio::task::spawn_blocking(move || NodeIdp::provider(idp_port, &gw_http))
        .await
        .expect("start the provider");
    (f, idp)
}

/// The `[oidc]` table for a gateway using the IdP at `issuer`.
pub fn oidc_toml(issuer: &str) -> String {
    format!(
        "[oidc]\nissuer = {issuer:?}\nclient_id = \"gatehouse\"\nclient_secret_env = {SECRET_ENV:?}\n\
         scopes = [\"openid\", \"email\", \"profile\", \"groups\"]\ngroups_claim = \"groups\"\n\
         username_claim = \"email\"\nclock_skew_seconds = 30\n"
    )
}

/// A Node.js server from `tests/oidc/`, tied to the test process.
pub struct NodeIdp {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl NodeIdp {
    fn start(script: &str, port: u16, args: &[&str]) -> NodeIdp {
        let root = repo_root();
        assert!(
            root.join("node_modules/oidc-provider").exists(),
            "node_modules is missing: run `npm ci` in {} (scripts/install-deps.sh does)",
            root.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-idp-")
            .tempdir()
            .expect("tempdir");
        let log = std::fs::File::create(dir.path().join("idp.log")).expect("idp log");
        let script = root.join("tests/oidc").join(script);
        let port_s = port.to_string();
        let mut all = vec![script.to_str().unwrap(), port_s.as_str()];
        all.extend_from_slice(args);
        let child = spawn_tied(
            "node",
            &all,
            &[],
            None,
            "KILL",
            Stdio::from(log.try_clone().expect("log")),
            Stdio::from(log),
        );
        let mut idp = NodeIdp {
            port,
            child: Some(child),
            dir,
        };
        idp.wait_ready();
        idp
    }

    /// The real provider, with the gateway's callback registered for the `gatehouse` client.
    pub fn provider(port: u16, gateway_http: &str) -> NodeIdp {
        Self::start(
            "provider.mjs",
            port,
            &[&format!("{gateway_http}/auth/oidc/callback"), CLIENT_SECRET],
        )
    }

    /// The misbehaving provider; choose its flaw with [`NodeIdp::set_mode`].
    pub fn rogue(port: u16) -> NodeIdp {
        Self::start("rogue-idp.mjs", port, &["gatehouse"])
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        let url = format!("{}/.well-known/openid-configuration", self.issuer());
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("the test IdP exited ({status}):\n{}", self.log());
                }
            }
            if reqwest::blocking::get(&url).is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the test IdP did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("idp.log")).unwrap_or_default()
    }

    /// Rogue IdP only: the flaw of the next ID tokens.
    pub async fn set_mode(&self, mode: &str) {
        let r = reqwest::get(format!("{}/mode?m={mode}", self.issuer()))
            .await
            .expect("set rogue IdP mode");
        assert!(r.status().is_success());
    }
}

impl Drop for NodeIdp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        let verifier = crate::random_token("v").repeat(2);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// A native app about to log in: its loopback redirect URI, state and PKCE pair.
pub struct AppLogin {
    pub redirect_uri: String,
    pub state: String,
    pub pkce: Pkce,
}

impl AppLogin {
    pub fn new() -> AppLogin {
        AppLogin {
            redirect_uri: format!("http://127.0.0.1:{}/callback", free_port()),
            state: crate::random_token("st"),
            pkce: Pkce::new(),
        }
    }

    /// The URL the app opens in the browser.
    pub fn start_url(&self, gateway_http: &str) -> String {
        let mut u = url::Url::parse(&format!("{gateway_http}/auth/oidc/start")).unwrap();
        u.query_pairs_mut()
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("code_challenge", &self.pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &self.state);
        u.to_string()
    }

    /// A browser-like HTTP client (cookie jar, follows redirects) that stops at this app's
    /// redirect URI instead of trying to load it.
    pub fn browser(&self) -> reqwest::Client {
        browser_stopping_at(&self.redirect_uri)
    }
}

impl Default for AppLogin {
    fn default() -> Self {
        Self::new()
    }
}

/// A cookie-keeping client that follows redirects except to URLs starting with `stop`.
pub fn browser_stopping_at(stop: &str) -> reqwest::Client {
    browser_stopping_at_any(&[stop])
}

/// Like [`browser_stopping_at`], with several stops.
pub fn browser_stopping_at_any(stops: &[&str]) -> reqwest::Client {
    let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::custom(move |a| {
            let url = a.url().as_str();
            if stops.iter().any(|s| url.starts_with(s)) || a.previous().len() > 20 {
                a.stop()
            } else {
                a.follow()
            }
        }))
        .build()
        .expect("http client")
}

/// Where a login ended: the app's redirect URL (with `code` or `error`), or an HTTP answer
/// the browser was left looking at.
#[derive(Debug)]
pub enum LoginEnd {
    Redirect(url::Url),
    Page(u16, String),
}

impl LoginEnd {
    pub fn param(&self, name: &str) -> Option<String> {
        match self {
            LoginEnd::Redirect(u) => u
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned()),
            LoginEnd::Page(..) => None,
        }
    }
}

/// Follows a login from `start_url` through the provider's login and consent forms as `login`
/// (any password works at the test provider) until the browser is sent out of the flow.
pub async fn login(client: &reqwest::Client, start_url: &str, login: &str) -> LoginEnd {
    let mut resp = client.get(start_url).send().await.expect("start login");
    for _ in 0..6 {
        if resp.status().is_redirection() {
            let loc = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .expect("redirect has a Location");
            return LoginEnd::Redirect(resp.url().join(loc).expect("location URL"));
        }
        let status = resp.status().as_u16();
        let here = resp.url().clone();
        let body = resp.text().await.unwrap_or_default();
        let action = body
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .map(|a| a.replace("&amp;", "&"));
        let Some(action) = action.filter(|_| status == 200) else {
            return LoginEnd::Page(status, body);
        };
        let target = here.join(&action).expect("form action");
        let form: Vec<(&str, &str)> = if body.contains("name=\"login\"") {
            vec![("prompt", "login"), ("login", login), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        };
        resp = client
            .post(target)
            .form(&form)
            .send()
            .await
            .expect("submit form");
    }
    panic!("the login did not finish within six pages");
}
