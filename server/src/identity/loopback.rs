//! The gateway's side of the RFC 8252 loopback flow for native apps, and the bookkeeping of
//! logins in flight.
//!
//! A native app (CLI, desktop app) sends the browser to `/auth/oidc/start` with its loopback
//! `redirect_uri`, a PKCE `S256` challenge and its `state`. The gateway remembers that request
//! under a fresh state of its own ([`Flows::insert`]) while the browser visits the IdP; the
//! callback takes it back exactly once ([`Flows::take`]). After the IdP's answer is verified
//! the app gets a one-time code ([`Flows::issue_code`]) that is worth a session only together
//! with the verifier behind the challenge, once, within [`CODE_TTL`] ([`Flows::redeem`]).
//!
//! Everything here is in memory and bounded: a login takes a person a minute, and a gateway
//! restart merely asks them to click again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::tokens;
use super::Identity;

/// How long a login may spend at the IdP.
pub const FLOW_TTL: Duration = Duration::from_secs(600);
/// How long the app has to exchange its one-time code.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// Most logins (and unredeemed codes) held at once; more are refused until some finish.
const MAX_IN_FLIGHT: usize = 10_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlowError {
    #[error(
        "redirect_uri must be a loopback address like http://127.0.0.1:PORT/PATH (RFC 8252): {0}"
    )]
    RedirectUri(String),
    #[error("code_challenge_method must be S256")]
    ChallengeMethod,
    #[error(
        "code_challenge must be 43-128 characters of base64url (the S256 hash of the verifier)"
    )]
    Challenge,
    #[error("state must be 1-1024 printable characters")]
    State,
    #[error("unknown or expired login; start the login again")]
    UnknownState,
    #[error("invalid or expired code; start the login again")]
    InvalidCode,
    #[error("code_verifier does not match the code_challenge of this login")]
    VerifierMismatch,
    #[error("too many logins in progress; try again in a minute")]
    Busy,
}

/// What a native app asked for at `/auth/oidc/start`.
#[derive(Debug, Clone)]
pub struct AppRequest {
    pub redirect_uri: url::Url,
    pub code_challenge: String,
    pub state: String,
}

impl AppRequest {
    /// Checks a native app's parameters: a loopback `redirect_uri` (IP literal, explicit port,
    /// plain http as RFC 8252 section 7.3 allows), an `S256` challenge and a state.
    pub fn new(
        redirect_uri: &str,
        code_challenge: &str,
        code_challenge_method: &str,
        state: &str,
    ) -> Result<AppRequest, FlowError> {
        let uri = url::Url::parse(redirect_uri)
            .map_err(|e| FlowError::RedirectUri(format!("not a URL ({e})")))?;
        if uri.scheme() != "http" {
            return Err(FlowError::RedirectUri("the scheme must be http".into()));
        }
        let loopback = match uri.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            _ => false,
        };
        if !loopback {
            return Err(FlowError::RedirectUri(
                "the host must be 127.0.0.1 or [::1]".into(),
            ));
        }
        if uri.port().is_none() {
            return Err(FlowError::RedirectUri("the port must be given".into()));
        }
        if !uri.username().is_empty() || uri.password().is_some() || uri.fragment().is_some() {
            return Err(FlowError::RedirectUri(
                "no user information or fragment allowed".into(),
            ));
        }
        if code_challenge_method != "S256" {
            return Err(FlowError::ChallengeMethod);
        }
        if !pkce_shaped(code_challenge) {
            return Err(FlowError::Challenge);
        }
        if state.is_empty() || state.len() > 1024 || state.chars().any(char::is_control) {
            return Err(FlowError::State);
        }
        Ok(AppRequest {
            redirect_uri: uri,
            code_challenge: code_challenge.to_string(),
            state: state.to_string(),
        })
    }

    /// The app's redirect URI with these query parameters added.
    pub fn redirect_with(&self, params: &[(&str, &str)]) -> url::Url {
        let mut u = self.redirect_uri.clone();
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            q.append_pair("state", &self.state);
        }
        u
    }
}

/// RFC 7636: 43-128 characters of `[A-Za-z0-9-._~]`.
fn pkce_shaped(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// A login in flight, between `/auth/oidc/start` and the callback.
#[derive(Debug)]
pub struct Pending {
    /// The native app's request; `None` for a web-console login.
    pub app: Option<AppRequest>,
    /// The nonce sent to the IdP, which must come back in the ID token.
    pub nonce: String,
    /// The gateway's own PKCE verifier towards the IdP.
    pub pkce_verifier: String,
    /// A secret also set as a cookie in the browser that started the login, so a callback
    /// carried to another browser (login CSRF) is refused.
    pub browser_binding: String,
    /// For a web-console login: the console path to land on afterwards.
    pub return_to: Option<String>,
    created: Instant,
}

impl Pending {
    pub fn new(app: Option<AppRequest>, nonce: String, pkce_verifier: String) -> Self {
        Pending {
            app,
            nonce,
            pkce_verifier,
            browser_binding: tokens::random_id(),
            return_to: None,
            created: Instant::now(),
        }
    }
}

struct Code {
    identity: Identity,
    code_challenge: String,
    created: Instant,
}

#[derive(Default)]
pub struct Flows {
    pending: Mutex<HashMap<String, Pending>>,
    /// Keyed by the sha256 of the code, so a memory dump does not hold usable codes.
    codes: Mutex<HashMap<[u8; 32], Code>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Flows {
    /// Remembers a login under `state` (a fresh random value, also sent to the IdP).
    pub fn insert(&self, state: String, pending: Pending) -> Result<(), FlowError> {
        let mut map = lock(&self.pending);
        if map.len() >= MAX_IN_FLIGHT {
            map.retain(|_, p| p.created.elapsed() < FLOW_TTL);
            if map.len() >= MAX_IN_FLIGHT {
                return Err(FlowError::Busy);
            }
        }
        map.insert(state, pending);
        Ok(())
    }

    /// Takes a login back by its state; it can be taken once.
    pub fn take(&self, state: &str) -> Result<Pending, FlowError> {
        match lock(&self.pending).remove(state) {
            Some(p) if p.created.elapsed() < FLOW_TTL => Ok(p),
            _ => Err(FlowError::UnknownState),
        }
    }

    /// A one-time code for a native app, bound to its PKCE challenge.
    pub fn issue_code(
        &self,
        identity: Identity,
        code_challenge: &str,
    ) -> Result<String, FlowError> {
        let mut map = lock(&self.codes);
        if map.len() >= MAX_IN_FLIGHT {
            map.retain(|_, c| c.created.elapsed() < CODE_TTL);
            if map.len() >= MAX_IN_FLIGHT {
                return Err(FlowError::Busy);
            }
        }
        let code = tokens::generate("ghc_");
        map.insert(
            tokens::sha256(&code),
            Code {
                identity,
                code_challenge: code_challenge.to_string(),
                created: Instant::now(),
            },
        );
        Ok(code)
    }

    /// Exchanges a one-time code and its verifier for the identity that logged in. The code is
    /// spent by the attempt whether or not the verifier matches, so it cannot be guessed at.
    pub fn redeem(&self, code: &str, code_verifier: &str) -> Result<Identity, FlowError> {
        let c = lock(&self.codes)
            .remove(&tokens::sha256(code))
            .filter(|c| c.created.elapsed() < CODE_TTL)
            .ok_or(FlowError::InvalidCode)?;
        if !pkce_shaped(code_verifier)
            || !tokens::str_eq(&tokens::pkce_s256(code_verifier), &c.code_challenge)
        {
            return Err(FlowError::VerifierMismatch);
        }
        Ok(c.identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKind;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn alice() -> Identity {
        Identity {
            name: "alice".into(),
            kind: IdentityKind::Human,
            groups: vec![],
            on_behalf_of: None,
            session_id: None,
        }
    }

    #[test]
    fn only_loopback_redirects_with_s256() {
        let ok = |u: &str| AppRequest::new(u, CHALLENGE, "S256", "s").is_ok();
        assert!(ok("http://127.0.0.1:5000/cb"));
        assert!(ok("http://[::1]:5000/"));
        assert!(!ok("http://localhost:5000/cb"));
        assert!(!ok("https://127.0.0.1:5000/cb"));
        assert!(!ok("http://127.0.0.1/cb"));
        assert!(!ok("http://evil.example:5000/cb"));
        assert!(!ok("http://127.0.0.1.evil.example:5000/cb"));
        assert!(!ok("http://u:p@127.0.0.1:5000/cb"));
        assert!(!ok("http://127.0.0.1:5000/cb#x"));
        assert_eq!(
            AppRequest::new("http://127.0.0.1:1/", CHALLENGE, "plain", "s").unwrap_err(),
            FlowError::ChallengeMethod
        );
        assert_eq!(
            AppRequest::new("http://127.0.0.1:1/", "short", "S256", "s").unwrap_err(),
            FlowError::Challenge
        );
        assert_eq!(
            AppRequest::new("http://127.0.0.1:1/", CHALLENGE, "S256", "").unwrap_err(),
            FlowError::State
        );
        let r = AppRequest::new("http://127.0.0.1:1/cb?x=1", CHALLENGE, "S256", "a b").unwrap();
        assert_eq!(
            r.redirect_with(&[("code", "c")]).as_str(),
            "http://127.0.0.1:1/cb?x=1&code=c&state=a+b"
        );
    }

    #[test]
    fn state_and_code_are_single_use_and_bound_to_the_verifier() {
        let f = Flows::default();
        let state = tokens::generate("");
        f.insert(state.clone(), Pending::new(None, "n".into(), "v".into()))
            .unwrap();
        assert!(f.take(&state).is_ok());
        assert_eq!(f.take(&state).unwrap_err(), FlowError::UnknownState);

        let code = f.issue_code(alice(), CHALLENGE).unwrap();
        assert_eq!(f.redeem(&code, VERIFIER).unwrap().name, "alice");
        assert_eq!(
            f.redeem(&code, VERIFIER).unwrap_err(),
            FlowError::InvalidCode
        );

        let code = f.issue_code(alice(), CHALLENGE).unwrap();
        let wrong = "x".repeat(43);
        assert_eq!(
            f.redeem(&code, &wrong).unwrap_err(),
            FlowError::VerifierMismatch
        );
        // The failed attempt spent the code.
        assert_eq!(
            f.redeem(&code, VERIFIER).unwrap_err(),
            FlowError::InvalidCode
        );
    }
}
