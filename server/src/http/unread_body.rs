//! Requests answered before their body was read (refused for a missing token, a body over the
//! limit, a bad path) keep their connection sound.
//!
//! hyper writes such an answer as kept alive, then finds the body unread and, unless the body's
//! bytes had already arrived, closes the connection after the answer without saying so. A
//! client that sent its next request on that connection meanwhile gets "server disconnected
//! without sending a response". So the rest of an unread body is read (a bounded amount, for a
//! bounded time) before the answer goes out; when that is not possible the answer says
//! `connection: close`, which hyper honours and clients obey.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use http_body::{Frame, SizeHint};
use tokio::sync::oneshot;

/// Most of an unread body read to keep its connection; past it the connection is closed.
const DRAIN_LIMIT: usize = 1 << 20;
/// Longest wait for the rest of an unread body; a body slower than that closes the connection.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The middleware: hands the handler a body that gives itself back when dropped unfinished.
pub async fn settle(req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let expects_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, body) = req.into_parts();
    let (back, mut leftover) = oneshot::channel();
    let watched = Watched {
        inner: Some(body),
        back: Some(back),
    };
    let mut resp = next
        .run(Request::from_parts(parts, Body::new(watched)))
        .await;
    // Nothing has come back when the handler still holds the body (it streams) or read it to
    // its end.
    let Ok(rest) = leftover.try_recv() else {
        return resp;
    };
    // A client waiting for `100 Continue` sends no body unless asked; asking only to discard
    // it would be waste, so the connection closes instead.
    if expects_continue || !drained(rest).await {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Whether the rest of `body` was read to its end within the limits.
async fn drained(body: Body) -> bool {
    let read = async {
        let mut stream = body.into_data_stream();
        let mut total = 0usize;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => {
                    total += c.len();
                    if total > DRAIN_LIMIT {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, read)
        .await
        .unwrap_or(false)
}

/// A request body that, dropped before its end, sends itself back to [`settle`].
struct Watched {
    inner: Option<Body>,
    back: Option<oneshot::Sender<Body>>,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            // Read to its end (or failed): nothing to give back.
            self.inner = None;
            self.back = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let (Some(body), Some(back)) = (self.inner.take(), self.back.take()) {
            if !body.is_end_stream() {
                let _ = back.send(body);
            }
        }
    }
}
