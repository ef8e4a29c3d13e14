//! A typed client for the gateway's HTTP API (`/api/v1`): logins and token exchanges,
//! environments, whoami, approvals and the audit search. One method per endpoint; HTTP
//! statuses become [`Error`] variants here and nowhere else.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::session::Trust;

/// What a login, code exchange or refresh returns.
#[derive(Clone, Deserialize)]
pub struct TokenPair {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub refresh_token: Option<String>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/whoami`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhoAmI {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub groups: Vec<String>,
    pub on_behalf_of: Option<String>,
    #[serde(default)]
    pub admin: bool,
}

/// `GET /api/v1/info`: what the gateway tells a client before it logs in.
#[derive(Debug, Clone, Deserialize)]
pub struct GatewayInfo {
    /// `HOST:PORT` of its PostgreSQL listener as clients reach it.
    pub postgres_address: String,
    /// Whether single sign-on is configured.
    #[serde(default)]
    pub sso: bool,
}

/// One item of `GET /api/v1/environments`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    pub name: String,
    pub tier: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub dbname: Option<String>,
    /// Whether the caller may connect. The gateway lists only environments the caller has a
    /// grant for, so this is true unless a newer gateway says otherwise.
    #[serde(default = "yes")]
    pub can_connect: bool,
}

fn yes() -> bool {
    true
}

/// One pending or decided approval (`GET /api/v1/approvals`). Fields the gateway adds later
/// are kept in `extra` and shown by `--json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub statement: String,
    #[serde(default)]
    pub identity: String,
    #[serde(default)]
    pub environment: String,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Ids are strings or numbers depending on the endpoint; the CLI treats them as text.
fn id_string<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("unexpected id {other}"))),
    }
}

/// One item of `GET /api/v1/access-requests/environments`: an environment that takes access
/// requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestableEnvironment {
    pub name: String,
    #[serde(default)]
    pub tier: String,
    pub description: Option<String>,
    pub max_duration_seconds: u64,
    #[serde(default)]
    pub roles: Vec<String>,
    /// The caller may approve their own request here (break-glass).
    #[serde(default)]
    pub break_glass: bool,
    #[serde(default)]
    pub break_glass_max_seconds: u64,
    /// The caller can connect already.
    #[serde(default)]
    pub reachable: bool,
}

/// What an access request asks for (`POST /api/v1/access-requests`).
#[derive(Debug, Clone, Serialize)]
pub struct AccessRequest {
    pub environment: String,
    pub duration_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub reason: String,
}

/// Filters for `GET /api/v1/audit` (all optional).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// One page of the audit trail, newest first. Records are kept as JSON: their shape grows
/// with the gateway.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditPage {
    pub items: Vec<serde_json::Value>,
    pub next_cursor: Option<i64>,
}

/// What [`ApiClient::request`] returns: the status and the JSON body as the gateway sent them.
#[derive(Debug, Clone, Serialize)]
pub struct RawResponse {
    pub status: u16,
    /// The body as JSON; a body that is not JSON becomes a string, an empty one `null`.
    pub body: serde_json::Value,
}

#[derive(Deserialize)]
struct List<T> {
    items: Vec<T>,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
    error: Option<String>,
}

/// The HTTP API of one gateway.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client for the gateway at `base` (e.g. `https://gatehouse.example.com`). `trust`
    /// applies to an `https` API the same way it applies to the PostgreSQL port, except that a
    /// pin is not used for HTTP (the API's certificate may differ).
    pub fn new(base: &str, trust: &Trust) -> Result<Self> {
        let base = normalize_base(base)?;
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("gatehouse-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(30))
            .connect_timeout(std::time::Duration::from_secs(5))
            // A login answer must come from the gateway itself, not a redirect target.
            .redirect(reqwest::redirect::Policy::none());
        match trust {
            Trust::Insecure => b = b.danger_accept_invalid_certs(true),
            Trust::Ca { pem } => {
                for cert in reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                    .map_err(|e| Error::invalid("CA certificate", e.to_string()))?
                {
                    b = b.add_root_certificate(cert);
                }
            }
            Trust::WebPki | Trust::Pinned { .. } => {}
        }
        let http = b
            .build()
            .map_err(|e| Error::invalid("HTTP client", e.to_string()))?;
        Ok(ApiClient { base, http })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req.send().await.map_err(|e| Error::Unreachable {
            url: self.base.clone(),
            reason: root_cause(&e),
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let code = status.as_u16();
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .ok()
            .and_then(|b| b.message.or(b.error))
            .unwrap_or_else(|| {
                let t = text.trim();
                if t.is_empty() || t.starts_with('<') {
                    status.canonical_reason().unwrap_or("error").to_string()
                } else {
                    t.chars().take(300).collect()
                }
            });
        Err(match code {
            401 => Error::LoginRefused(message),
            403 => Error::Forbidden {
                status: code,
                message,
            },
            404 => Error::NotFound(message),
            _ => Error::Api {
                status: code,
                message,
            },
        })
    }

    async fn json<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let resp = self.send(req).await?;
        resp.json().await.map_err(|e| Error::Api {
            status: 200,
            message: format!("unexpected answer from the gateway: {e}"),
        })
    }

    /// `GET /api/v1/info`; `None` from a gateway that does not offer it.
    pub async fn info(&self) -> Result<Option<GatewayInfo>> {
        match self.json(self.http.get(self.url("/api/v1/info"))).await {
            Ok(info) => Ok(Some(info)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /api/v1/auth/login` for a local user.
    pub async fn login_password(&self, username: &str, password: &str) -> Result<TokenPair> {
        let body = serde_json::json!({"username": username, "password": password});
        self.json(self.http.post(self.url("/api/v1/auth/login")).json(&body))
            .await
    }

    /// `POST /api/v1/auth/token`: the SSO one-time code and its PKCE verifier.
    pub async fn exchange_code(&self, code: &str, verifier: &str) -> Result<TokenPair> {
        let body = serde_json::json!({"code": code, "code_verifier": verifier});
        self.json(self.http.post(self.url("/api/v1/auth/token")).json(&body))
            .await
    }

    /// `POST /api/v1/auth/refresh`.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair> {
        let body = serde_json::json!({"refresh_token": refresh_token});
        self.json(self.http.post(self.url("/api/v1/auth/refresh")).json(&body))
            .await
    }

    /// `POST /api/v1/auth/logout`: revokes the session behind `token`.
    pub async fn logout(&self, token: &str) -> Result<()> {
        self.send(
            self.http
                .post(self.url("/api/v1/auth/logout"))
                .bearer_auth(token),
        )
        .await
        .map(|_| ())
    }

    pub async fn whoami(&self, token: &str) -> Result<WhoAmI> {
        self.json(self.http.get(self.url("/api/v1/whoami")).bearer_auth(token))
            .await
    }

    pub async fn environments(&self, token: &str) -> Result<Vec<Environment>> {
        let l: List<Environment> = self
            .json(
                self.http
                    .get(self.url("/api/v1/environments"))
                    .bearer_auth(token),
            )
            .await?;
        Ok(l.items)
    }

    /// `GET /api/v1/approvals[?state=STATE]`.
    pub async fn approvals(&self, token: &str, state: Option<&str>) -> Result<Vec<Approval>> {
        self.approvals_of_kind(token, state, None).await
    }

    /// `GET /api/v1/approvals[?state=STATE][&kind=KIND]` (`statement`, `access`,
    /// `masking_exemption`).
    pub async fn approvals_of_kind(
        &self,
        token: &str,
        state: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<Approval>> {
        let mut req = self
            .http
            .get(self.url("/api/v1/approvals"))
            .bearer_auth(token);
        if let Some(s) = state {
            req = req.query(&[("state", s)]);
        }
        if let Some(k) = kind {
            req = req.query(&[("kind", k)]);
        }
        let l: List<Approval> = self.json(req).await?;
        Ok(l.items)
    }

    /// `POST /api/v1/approvals/{id}/approve|deny` with an optional reason. Returns the
    /// gateway's answer as JSON (its shape belongs to the approvals API).
    pub async fn decide(
        &self,
        token: &str,
        id: &str,
        approve: bool,
        reason: Option<&str>,
    ) -> Result<serde_json::Value> {
        let verb = if approve { "approve" } else { "deny" };
        let path = format!("/api/v1/approvals/{}/{verb}", urlencode(id));
        let body = match reason {
            Some(r) => serde_json::json!({ "reason": r }),
            None => serde_json::json!({}),
        };
        let resp = self
            .send(
                self.http
                    .post(self.url(&path))
                    .bearer_auth(token)
                    .json(&body),
            )
            .await?;
        let text = resp.text().await.unwrap_or_default();
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    /// `POST /api/v1/access-requests`: the request, pending, as an approval.
    pub async fn request_access(&self, token: &str, req: &AccessRequest) -> Result<Approval> {
        self.json(
            self.http
                .post(self.url("/api/v1/access-requests"))
                .bearer_auth(token)
                .json(req),
        )
        .await
    }

    /// `GET /api/v1/access-requests`: the caller's own access requests, newest first.
    pub async fn my_access_requests(&self, token: &str) -> Result<Vec<Approval>> {
        let l: List<Approval> = self
            .json(
                self.http
                    .get(self.url("/api/v1/access-requests"))
                    .bearer_auth(token),
            )
            .await?;
        Ok(l.items)
    }

    /// `GET /api/v1/access-requests/environments`.
    pub async fn requestable_environments(
        &self,
        token: &str,
    ) -> Result<Vec<RequestableEnvironment>> {
        let l: List<RequestableEnvironment> = self
            .json(
                self.http
                    .get(self.url("/api/v1/access-requests/environments"))
                    .bearer_auth(token),
            )
            .await?;
        Ok(l.items)
    }

    /// `POST /api/v1/access-requests/{id}/withdraw`.
    pub async fn withdraw_access_request(
        &self,
        token: &str,
        id: &str,
        reason: Option<&str>,
    ) -> Result<Approval> {
        let path = format!("/api/v1/access-requests/{}/withdraw", urlencode(id));
        let body = match reason {
            Some(r) => serde_json::json!({ "reason": r }),
            None => serde_json::json!({}),
        };
        self.json(
            self.http
                .post(self.url(&path))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    /// `GET /api/v1/audit` with filters: one page.
    pub async fn audit(&self, token: &str, q: &AuditQuery) -> Result<AuditPage> {
        self.json(
            self.http
                .get(self.url("/api/v1/audit"))
                .bearer_auth(token)
                .query(q),
        )
        .await
    }

    /// Any `/api/v1/` call for a front end that speaks the API itself (the desktop app's UI):
    /// `method` and `path` (with its query string) as given, `token` as the bearer. Unlike the
    /// typed methods, an error status is an answer here, not an `Error`; only a gateway that
    /// cannot be reached, or a request that is not an API call, is one.
    pub async fn request(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<RawResponse> {
        // Dot segments (plain or percent-encoded) would be resolved away by URL parsing and
        // could leave /api/v1/; the query string may hold anything.
        let route = path.split(['?', '#']).next().unwrap_or_default();
        let dots = route.split('/').any(|seg| {
            let seg = seg.to_ascii_lowercase().replace("%2e", ".");
            seg == "." || seg == ".."
        });
        if !path.starts_with("/api/v1/") || dots {
            return Err(Error::invalid(
                "API path",
                format!("{path:?}: must start with /api/v1/"),
            ));
        }
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .ok()
            .filter(|m| {
                [
                    reqwest::Method::GET,
                    reqwest::Method::POST,
                    reqwest::Method::PUT,
                    reqwest::Method::PATCH,
                    reqwest::Method::DELETE,
                ]
                .contains(m)
            })
            .ok_or_else(|| Error::invalid("HTTP method", format!("{method:?}")))?;
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| Error::Unreachable {
            url: self.base.clone(),
            reason: root_cause(&e),
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| Error::Unreachable {
            url: self.base.clone(),
            reason: root_cause(&e),
        })?;
        let body = if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        Ok(RawResponse { status, body })
    }

    /// The SSO start URL for a native app (RFC 8252 loopback + PKCE S256).
    pub fn sso_start_url(&self, redirect_uri: &str, challenge: &str, state: &str) -> String {
        let mut u = match url::Url::parse(&self.url("/auth/oidc/start")) {
            Ok(u) => u,
            // `base` was validated as a URL in `new`.
            Err(_) => return self.url("/auth/oidc/start"),
        };
        u.query_pairs_mut()
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", state);
        u.to_string()
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Checks the gateway URL and drops a trailing slash.
pub fn normalize_base(base: &str) -> Result<String> {
    let u = url::Url::parse(base).map_err(|e| {
        Error::invalid(
            "gateway URL",
            format!("{base:?}: {e} (expected e.g. https://gatehouse.example.com)"),
        )
    })?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(Error::invalid(
            "gateway URL",
            format!("{base:?}: must be http:// or https:// with a host"),
        ));
    }
    Ok(base.trim_end_matches('/').to_string())
}

/// The innermost cause of a reqwest error ("connection refused" rather than "error sending
/// request for url ...").
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvals_accept_numeric_and_string_ids() {
        let a: Approval =
            serde_json::from_str(r#"{"id":7,"state":"pending","statement":"DELETE","identity":"ana","environment":"prod","created_at":"x"}"#)
                .unwrap();
        assert_eq!(a.id, "7");
        assert_eq!(a.extra["created_at"], "x");
        let b: Approval = serde_json::from_str(r#"{"id":"apr_1"}"#).unwrap();
        assert_eq!(b.id, "apr_1");
    }

    #[tokio::test]
    async fn raw_requests_stay_under_the_api() {
        let api = ApiClient::new("http://127.0.0.1:9", &Trust::WebPki).unwrap();
        for (method, path, refused) in [
            ("GET", "/healthz", "API path"),
            ("GET", "/api/v1/../../x", "API path"),
            ("GET", "/api/v1/%2E%2e/admin", "API path"),
            ("GET", "api/v1/whoami", "API path"),
            ("TRACE", "/api/v1/whoami", "HTTP method"),
        ] {
            match api.request("t", method, path, None).await {
                Err(Error::Invalid { what, .. }) => assert_eq!(what, refused, "{method} {path}"),
                other => panic!("{method} {path}: {other:?}"),
            }
        }
        // A valid call gets as far as the network (nothing listens on port 9).
        let e = api
            .request("t", "get", "/api/v1/audit?q=a/../b", None)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Unreachable { .. }), "{e}");
    }

    #[test]
    fn gateway_urls_are_checked() {
        assert_eq!(
            normalize_base("http://127.0.0.1:7480/").unwrap(),
            "http://127.0.0.1:7480"
        );
        assert!(normalize_base("127.0.0.1:7480").is_err());
        assert!(normalize_base("ftp://x").is_err());
    }
}
