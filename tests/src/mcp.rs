//! A bare MCP client over the Streamable HTTP transport (JSON-RPC in `POST /mcp`, answers as
//! server-sent events), for tests that must watch the HTTP exchange itself: which status a
//! request gets, whether a streamed answer ends, which session id it carries. Tests about what
//! the tools do use the official Python SDK instead (`tests/python/mcp_check.py`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::sse::{SseNext, SseStream};

/// One MCP session as a client holds it.
pub struct McpClient {
    http: reqwest::Client,
    url: String,
    token: String,
    headers: Vec<(String, String)>,
    session: Option<String>,
    next_id: u64,
}

const PROTOCOL: &str = "2025-06-18";

impl McpClient {
    /// Initializes a session at `{gateway_http}/mcp` with `token` (and extra headers, such as
    /// `X-Gatehouse-On-Behalf-Of`); the HTTP status and body when the gateway refuses.
    pub async fn connect(
        gateway_http: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> Result<McpClient, (u16, String)> {
        let mut c = McpClient {
            http: reqwest::Client::new(),
            url: format!("{gateway_http}/mcp"),
            token: token.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            session: None,
            next_id: 1,
        };
        let resp = c
            .post(json!({
                "jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL,
                    "capabilities": {},
                    "clientInfo": { "name": "gatehouse-tests", "version": "0" }
                }
            }))
            .await;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err((status, resp.text().await.unwrap_or_default()));
        }
        c.session = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut answer = SseStream::new(resp);
        answer
            .next_matching(Duration::from_secs(30), |v| v["id"] == 0)
            .await
            .map_err(|e| (status, format!("no initialize result: {e:?}")))?;
        let r = c
            .post(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
            .await;
        assert!(r.status().is_success(), "initialized: {}", r.status());
        Ok(c)
    }

    /// The session id the gateway gave this client.
    pub fn session_id(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// This client's session, used with another token (as a thief would).
    pub fn with_token(&self, token: &str) -> McpClient {
        McpClient {
            http: self.http.clone(),
            url: self.url.clone(),
            token: token.to_string(),
            headers: self.headers.clone(),
            session: self.session.clone(),
            next_id: self.next_id + 1000,
        }
    }

    fn with_headers(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let mut r = r
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL);
        if !self.token.is_empty() {
            r = r.bearer_auth(&self.token);
        }
        if let Some(s) = &self.session {
            r = r.header("mcp-session-id", s);
        }
        for (k, v) in &self.headers {
            r = r.header(k, v);
        }
        r
    }

    /// One JSON-RPC message as a POST; the raw response.
    pub async fn post(&self, body: Value) -> reqwest::Response {
        self.with_headers(self.http.post(&self.url))
            .json(&body)
            .send()
            .await
            .expect("MCP request")
    }

    /// `GET /mcp`: the session's stream of server-initiated messages; the raw response.
    pub async fn listen(&self) -> reqwest::Response {
        self.with_headers(self.http.get(&self.url))
            .send()
            .await
            .expect("MCP GET")
    }

    /// Starts a tool call and hands back its id and the response stream, unread, so a test can
    /// watch it end (or not). `Err` is a refused request's status and body.
    pub async fn call_stream(
        &mut self,
        tool: &str,
        args: Value,
    ) -> Result<(u64, SseStream), (u16, String)> {
        let id = self.next_id;
        self.next_id += 1;
        let resp = self
            .post(json!({
                "jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": { "name": tool, "arguments": args }
            }))
            .await;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err((status, resp.text().await.unwrap_or_default()));
        }
        Ok((id, SseStream::new(resp)))
    }

    /// Calls a tool and returns its result (`{"content","structuredContent","isError"}`);
    /// panics if no answer comes within a minute. `Err` is a refused request's status and body.
    pub async fn call(&mut self, tool: &str, args: Value) -> Result<Value, (u16, String)> {
        let (id, mut stream) = self.call_stream(tool, args).await?;
        match stream
            .next_matching(Duration::from_secs(60), |v| v["id"] == id)
            .await
        {
            Ok(v) => Ok(v["result"].clone()),
            Err(SseNext::Ended) => Err((200, "the answer ended without a result".into())),
            Err(e) => panic!("no answer to {tool}: {e:?}"),
        }
    }
}
