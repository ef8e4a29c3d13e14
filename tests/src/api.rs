//! `Api`: the gateway's JSON API for tests — one request with a bearer token and an optional
//! JSON body, answered as `(status, body)`, so a test reads as the calls it makes and the
//! statuses it expects rather than as reqwest plumbing.

use reqwest::Method;
use serde_json::Value;

/// The HTTP API of one gateway (its base URL, e.g. `Gateway::http()`).
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.into(),
        }
    }

    /// One request to `base + path`; `token` as a bearer token when given. The body is the
    /// response's JSON, or `Value::Null` when it has none (a 204, or a non-JSON error page).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(Method::GET, path, Some(token), None).await
    }

    /// A GET without credentials (public documents such as the OpenAPI JSON).
    pub async fn get_anonymous(&self, path: &str) -> (u16, Value) {
        self.send(Method::GET, path, None, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(Method::DELETE, path, Some(token), None).await
    }
}
