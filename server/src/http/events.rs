//! `/events`: server-sent events for the app's live views (approvals created and decided),
//! filtered to what the caller may see. The stream is a [`Channel`]: it follows the caller's
//! token and groups, and ends (audited) when a new request with that token would be refused
//! or the caller loses a group.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::{self, error::RecvError};

use super::approvals::visible;
use super::auth::Caller;
use super::channel::{Channel, RECHECK};
use crate::approval::Event;
use crate::gateway::Gateway;
use crate::identity::Identity;

struct Open {
    rx: broadcast::Receiver<Event>,
    channel: Channel,
    /// The caller as the last check found them.
    who: Identity,
    tick: tokio::time::Interval,
}

/// A stream of `approval.created` / `approval.decided` events (JSON in `data`).
#[utoipa::path(get, path = "/events", responses((status = 200, description = "text/event-stream")), security(("bearer" = [])))]
pub async fn stream(
    State(gw): State<Arc<Gateway>>,
    caller: Caller,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = gw.approvals.subscribe();
    let who = caller.identity.clone();
    let channel = Channel::open(gw, "events", caller.token, caller.identity);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let open = Open {
        rx,
        channel,
        who,
        tick,
    };
    let events = futures_util::stream::unfold(open, |mut s| async move {
        loop {
            // `None`: time to ask again; otherwise what was published.
            let published = tokio::select! {
                _ = s.tick.tick() => None,
                e = s.rx.recv() => Some(e),
            };
            let event = match published {
                None => None,
                Some(Ok(e)) => Some(e),
                Some(Err(RecvError::Lagged(_))) => continue,
                Some(Err(RecvError::Closed)) => return None,
            };
            // Asked again on every tick and before anything is delivered, so nothing reaches
            // a caller between a logout and the next tick.
            match s.channel.check().await {
                Ok(now) => s.who = now,
                Err(reason) => {
                    s.channel.close(&reason).await;
                    return None;
                }
            }
            let Some(e) = event else { continue };
            if visible(s.channel.gateway(), &s.who, &e.approval) {
                let data = serde_json::to_string(&e).unwrap_or_default();
                let ev = SseEvent::default().event(e.event.clone()).data(data);
                return Some((Ok(ev), s));
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
