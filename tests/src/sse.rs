//! Server-sent events as a test reads them: `/events`, and the MCP server's streamed
//! responses. A test asks for the next event within a time and learns whether one came, the
//! stream ended, or nothing happened; so it can tell a stream the gateway closed from one that
//! is merely quiet.

use std::time::Duration;

/// What the stream did next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseNext {
    /// One event: its `event:` name (`message` when it has none) and its `data:` lines joined.
    Event { event: String, data: String },
    /// The server ended the response (or the connection broke).
    Ended,
    /// Nothing within the time asked for; the stream is still open.
    Silent,
}

/// An open `text/event-stream` response.
pub struct SseStream {
    resp: Option<reqwest::Response>,
    buf: String,
}

impl SseStream {
    /// Wraps a response that should be an event stream (its status is the caller's business).
    pub fn new(resp: reqwest::Response) -> SseStream {
        SseStream {
            resp: Some(resp),
            buf: String::new(),
        }
    }

    /// `GET url` with a bearer token; panics unless it answers 200.
    pub async fn open(url: &str, token: &str) -> SseStream {
        let resp = reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("open the event stream");
        assert_eq!(resp.status(), 200, "event stream {url}");
        SseStream::new(resp)
    }

    /// The next event within `limit`; keep-alive comments are skipped.
    pub async fn next(&mut self, limit: Duration) -> SseNext {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut data) = (None, Vec::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                    }
                }
                if event.is_some() || !data.is_empty() {
                    return SseNext::Event {
                        event: event.unwrap_or_else(|| "message".into()),
                        data: data.join("\n"),
                    };
                }
            }
            let Some(resp) = self.resp.as_mut() else {
                return SseNext::Ended;
            };
            match tokio::time::timeout_at(deadline, resp.chunk()).await {
                Err(_) => return SseNext::Silent,
                Ok(Ok(Some(bytes))) => {
                    self.buf
                        .push_str(&String::from_utf8_lossy(&bytes).replace("\r\n", "\n"));
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    self.resp = None;
                    return SseNext::Ended;
                }
            }
        }
    }

    /// The next event whose JSON `data` satisfies `want`, within `limit`; other events are
    /// skipped. `Err` says how the stream stopped instead (ended or silent).
    pub async fn next_matching(
        &mut self,
        limit: Duration,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value, SseNext> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                SseNext::Event { data, .. } => {
                    let v: serde_json::Value =
                        serde_json::from_str(&data).unwrap_or(serde_json::Value::Null);
                    if want(&v) {
                        return Ok(v);
                    }
                }
                other => return Err(other),
            }
        }
    }
}
