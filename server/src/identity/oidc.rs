//! Single sign-on through an OpenID Connect provider: the authorization code flow with PKCE,
//! as a confidential client (the `openidconnect` crate does the protocol).
//!
//! The provider's discovery document and keys (JWKS) are fetched on first use and kept for an
//! hour; an ID token signed with a key we have not seen triggers one early re-fetch, which is
//! how key rotation at the IdP reaches us. Every ID token is checked for signature, `iss`,
//! `aud`, `exp`, `iat` (not in the future), `nbf` if present and our `nonce`, with the clock
//! skew bounded by `[oidc] clock_skew_seconds`.
//!
//! The gateway starts even when the IdP is down: only logins need it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError, TokenResponse,
};
use serde_json::Value;

use super::{Identity, IdentityKind};

/// How long discovery and keys are trusted before being fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Least time between two key re-fetches caused by an unknown key id.
const MIN_REFETCH: Duration = Duration::from_secs(10);
/// Time limit for each request to the IdP.
const IDP_TIMEOUT: Duration = Duration::from_secs(10);

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("cannot use the identity provider's discovery document at {issuer}: {message}")]
    Discovery { issuer: String, message: String },
    #[error("the identity provider refused the login: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Provider {
        error: String,
        description: Option<String>,
    },
    #[error("exchanging the authorization code at the identity provider failed: {0}")]
    TokenExchange(String),
    #[error("the identity provider returned no ID token")]
    NoIdToken,
    #[error("the ID token was rejected: {0}")]
    InvalidIdToken(String),
    #[error("the ID token has no usable `{0}` claim")]
    MissingClaim(String),
    #[error("invalid OpenID Connect settings: {0}")]
    Settings(String),
}

/// What the gateway needs to know to talk to the IdP (from `[oidc]` and `server.public_url`).
#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// `{public_url}/auth/oidc/callback`
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub groups_claim: String,
    pub username_claim: String,
    pub default_groups: Vec<String>,
    pub user_groups: BTreeMap<String, Vec<String>>,
    pub clock_skew: Duration,
}

/// A login to start at the IdP: where to send the browser, and what to remember.
pub struct Authorization {
    pub url: url::Url,
    pub pkce_verifier: String,
}

pub struct OidcClient {
    settings: OidcSettings,
    issuer: IssuerUrl,
    redirect: RedirectUrl,
    http: openidconnect::reqwest::Client,
    metadata: Mutex<Option<(Arc<CoreProviderMetadata>, Instant)>>,
}

impl OidcClient {
    pub fn new(settings: OidcSettings) -> Result<OidcClient, OidcError> {
        let issuer = IssuerUrl::new(settings.issuer.clone())
            .map_err(|e| OidcError::Settings(format!("issuer: {e}")))?;
        let redirect = RedirectUrl::new(settings.redirect_uri.clone())
            .map_err(|e| OidcError::Settings(format!("redirect URI: {e}")))?;
        let http = openidconnect::reqwest::Client::builder()
            // Following redirects from the IdP's endpoints would open the door to SSRF.
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(IDP_TIMEOUT)
            .build()
            .map_err(|e| OidcError::Settings(format!("HTTP client: {e}")))?;
        Ok(OidcClient {
            settings,
            issuer,
            redirect,
            http,
            metadata: Mutex::new(None),
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The provider's metadata, fetched if missing, stale, or (with `force`) on request.
    async fn metadata(&self, force: bool) -> Result<Arc<CoreProviderMetadata>, OidcError> {
        {
            let cached = self.metadata.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((m, at)) = cached.as_ref() {
                let age = at.elapsed();
                if age < METADATA_TTL && (!force || age < MIN_REFETCH) {
                    return Ok(m.clone());
                }
            }
        }
        let m = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| OidcError::Discovery {
                issuer: self.settings.issuer.clone(),
                message: error_chain(&e),
            })?;
        let m = Arc::new(m);
        *self.metadata.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((m.clone(), Instant::now()));
        tracing::info!(issuer = %self.settings.issuer, keys = m.jwks().keys().len(), "fetched OpenID provider metadata");
        Ok(m)
    }

    fn client(&self, m: &CoreProviderMetadata) -> Client {
        CoreClient::from_provider_metadata(
            m.clone(),
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// The IdP URL to send the browser to, with our state, nonce and a fresh PKCE challenge.
    pub async fn authorize(&self, state: &str, nonce: &str) -> Result<Authorization, OidcError> {
        let m = self.metadata(false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (state, nonce) = (state.to_string(), nonce.to_string());
        let client = self.client(&m);
        let mut req = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state),
            move || Nonce::new(nonce),
        );
        for s in self.settings.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        let (url, _, _) = req.set_pkce_challenge(challenge).url();
        Ok(Authorization {
            url,
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges the IdP's authorization code and verifies the ID token; returns who logged in.
    pub async fn finish(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Identity, OidcError> {
        let m = self.metadata(false).await?;
        let client = self.client(&m);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::TokenExchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::TokenExchange(error_chain(&e)))?;
        let id_token = response.id_token().ok_or(OidcError::NoIdToken)?;
        let nonce = Nonce::new(nonce.to_string());
        let subject = match self.verify(&client, id_token, &nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // The IdP may have rotated its keys since we fetched them.
                let m = self.metadata(true).await?;
                self.verify(&self.client(&m), id_token, &nonce)
            }
            other => other,
        }
        .map_err(|e| OidcError::InvalidIdToken(describe(&e)))?;
        // The signature over this exact token has been verified, so its other claims are as
        // trustworthy as the ones the library parsed.
        let payload = payload(&id_token.to_string())?;
        self.check_not_before(&payload)?;
        self.identity(&subject, &payload)
    }

    fn verify(
        &self,
        client: &Client,
        id_token: &openidconnect::core::CoreIdToken,
        nonce: &Nonce,
    ) -> Result<String, ClaimsVerificationError> {
        let skew = chrono::Duration::from_std(self.settings.clock_skew)
            .unwrap_or_else(|_| chrono::Duration::seconds(60));
        let verifier = client
            .id_token_verifier()
            .set_allowed_algs([
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
                CoreJwsSigningAlgorithm::RsaSsaPssSha256,
                CoreJwsSigningAlgorithm::EcdsaP256Sha256,
                CoreJwsSigningAlgorithm::EcdsaP384Sha384,
                CoreJwsSigningAlgorithm::EdDsa,
            ])
            // `exp` is compared with a clock set back by the allowed skew...
            .set_time_fn(move || chrono::Utc::now() - skew)
            // ...and a token may not claim to be issued further ahead than the skew.
            .set_issue_time_verifier_fn(move |iat| {
                if iat > chrono::Utc::now() + skew {
                    Err(format!("issued in the future ({iat})"))
                } else {
                    Ok(())
                }
            });
        let claims = id_token.claims(&verifier, nonce)?;
        Ok(claims.subject().to_string())
    }

    fn check_not_before(&self, payload: &Value) -> Result<(), OidcError> {
        if let Some(nbf) = payload.get("nbf").and_then(Value::as_i64) {
            let now = chrono::Utc::now().timestamp();
            if nbf > now + self.settings.clock_skew.as_secs() as i64 {
                return Err(OidcError::InvalidIdToken(format!(
                    "the token is not valid yet (nbf {nbf}, now {now})"
                )));
            }
        }
        Ok(())
    }

    /// The identity behind verified claims: named by `username_claim`, with the IdP's groups
    /// plus the configured ones.
    fn identity(&self, subject: &str, payload: &Value) -> Result<Identity, OidcError> {
        let s = &self.settings;
        let name = match payload.get(&s.username_claim) {
            Some(Value::String(v)) if !v.is_empty() => v.clone(),
            None if s.username_claim == "sub" => subject.to_string(),
            _ => return Err(OidcError::MissingClaim(s.username_claim.clone())),
        };
        // An unverified address is one anybody could have typed in at the IdP.
        if s.username_claim == "email" && payload.get("email_verified") == Some(&Value::Bool(false))
        {
            return Err(OidcError::InvalidIdToken(format!(
                "the email address {name} is not verified at the identity provider"
            )));
        }
        let mut groups: Vec<String> = match payload.get(&s.groups_claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => vec![],
        };
        groups.extend(s.default_groups.iter().cloned());
        if let Some(extra) = s.user_groups.get(&name) {
            groups.extend(extra.iter().cloned());
        }
        groups.sort();
        groups.dedup();
        Ok(Identity {
            name,
            kind: IdentityKind::Human,
            groups,
            on_behalf_of: None,
            session_id: None,
        })
    }
}

fn payload(jwt: &str) -> Result<Value, OidcError> {
    let part = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| OidcError::InvalidIdToken("not a compact JWT".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| OidcError::InvalidIdToken(format!("payload is not base64url: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| OidcError::InvalidIdToken(format!("payload is not JSON: {e}")))
}

/// A verification failure in words an operator can act on.
fn describe(e: &ClaimsVerificationError) -> String {
    match e {
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        ) => {
            "it is signed with a key the identity provider does not publish (unknown key id)".into()
        }
        ClaimsVerificationError::SignatureVerification(s) => {
            format!("bad signature: {s}")
        }
        ClaimsVerificationError::Expired(m) => format!("expired: {m}"),
        ClaimsVerificationError::InvalidAudience(m) => format!("wrong audience: {m}"),
        ClaimsVerificationError::InvalidIssuer(m) => format!("wrong issuer: {m}"),
        ClaimsVerificationError::InvalidNonce(m) => format!("nonce mismatch: {m}"),
        other => other.to_string(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(claim: &str) -> OidcClient {
        OidcClient::new(OidcSettings {
            issuer: "http://127.0.0.1:9".into(),
            client_id: "gatehouse".into(),
            client_secret: None,
            redirect_uri: "http://127.0.0.1:7480/auth/oidc/callback".into(),
            scopes: vec!["openid".into()],
            groups_claim: "groups".into(),
            username_claim: claim.into(),
            default_groups: vec!["staff".into()],
            user_groups: [("ana@example.com".to_string(), vec!["dba".to_string()])].into(),
            clock_skew: Duration::from_secs(60),
        })
        .unwrap()
    }

    #[test]
    fn identity_from_claims() {
        let c = client("email");
        let p = serde_json::json!({"email": "ana@example.com", "email_verified": true, "groups": ["eng", "staff"]});
        let i = c.identity("sub1", &p).unwrap();
        assert_eq!(
            (i.name.as_str(), i.kind),
            ("ana@example.com", IdentityKind::Human)
        );
        assert_eq!(i.groups, ["dba", "eng", "staff"]);
        let p = serde_json::json!({"email": "ana@example.com", "email_verified": false});
        assert!(c.identity("sub1", &p).is_err());
        assert!(matches!(
            c.identity("sub1", &serde_json::json!({})),
            Err(OidcError::MissingClaim(_))
        ));
        let i = client("sub")
            .identity("sub1", &serde_json::json!({"groups": "one"}))
            .unwrap();
        assert_eq!((i.name.as_str(), i.groups.len()), ("sub1", 2));
    }

    #[test]
    fn not_before_is_checked_with_skew() {
        let c = client("email");
        let now = chrono::Utc::now().timestamp();
        assert!(c
            .check_not_before(&serde_json::json!({"nbf": now + 30}))
            .is_ok());
        assert!(c
            .check_not_before(&serde_json::json!({"nbf": now + 600}))
            .is_err());
        assert!(payload("a.eyJ4IjoxfQ.c").unwrap()["x"] == 1);
    }
}
