//! `/events`: server-sent events for the app's live views (approvals created and decided),
//! filtered to what the caller may see.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::approvals::visible;
use super::auth::Caller;
use crate::gateway::Gateway;

/// A stream of `approval.created` / `approval.decided` events (JSON in `data`).
#[utoipa::path(get, path = "/events", responses((status = 200, description = "text/event-stream")), security(("bearer" = [])))]
pub async fn stream(
    State(gw): State<Arc<Gateway>>,
    caller: Caller,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = gw.approvals.subscribe();
    let who = caller.identity;
    let events = futures_util::stream::unfold((rx, gw, who), |(mut rx, gw, who)| async move {
        loop {
            match rx.recv().await {
                Ok(e) if visible(&gw, &who, &e.approval) => {
                    let data = serde_json::to_string(&e).unwrap_or_default();
                    let ev = SseEvent::default().event(e.event.clone()).data(data);
                    return Some((Ok(ev), (rx, gw, who)));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
