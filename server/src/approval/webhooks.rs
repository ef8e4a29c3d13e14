//! Outgoing webhooks: each approval event is POSTed as JSON to the configured URLs, signed with
//! HMAC-SHA256 (`X-Gatehouse-Signature: sha256=<hex>` over the body), and retried with backoff
//! so a chat bot that is briefly down still hears about it.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Event;
use crate::config::WebhookConfig;

const ATTEMPTS: u32 = 5;

struct Hook {
    url: String,
    secret: Option<Vec<u8>>,
    events: Vec<String>,
}

/// `sha256=<hex>` of the body under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new_from_slice(b"").expect("empty key"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Starts delivering events to the configured webhooks (nothing when none are configured).
pub fn spawn(configs: &[WebhookConfig], mut events: tokio::sync::broadcast::Receiver<Event>) {
    let hooks: Vec<Arc<Hook>> = configs
        .iter()
        .map(|c| {
            Arc::new(Hook {
                url: c.url.get_ref().clone(),
                secret: c
                    .secret_env
                    .as_ref()
                    .and_then(|v| std::env::var(v).ok())
                    .map(String::into_bytes),
                events: c.events.clone(),
            })
        })
        .collect();
    if hooks.is_empty() {
        return;
    }
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks disabled: cannot build an HTTP client");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
                // Another replica delivers its own events.
                Ok(e) if e.remote => continue,
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "webhook delivery fell behind; events skipped");
                    continue;
                }
                Err(_) => return,
            };
            let body = match serde_json::to_vec(&event) {
                Ok(b) => Arc::new(b),
                Err(_) => continue,
            };
            for hook in hooks
                .iter()
                .filter(|h| h.events.is_empty() || h.events.contains(&event.event))
            {
                tokio::spawn(deliver(
                    client.clone(),
                    hook.clone(),
                    event.event.clone(),
                    body.clone(),
                ));
            }
        }
    });
}

async fn deliver(client: reqwest::Client, hook: Arc<Hook>, event: String, body: Arc<Vec<u8>>) {
    let delivery = crate::identity::tokens::random_id();
    let mut backoff = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        let mut req = client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-gatehouse-event", &event)
            .header("x-gatehouse-delivery", &delivery)
            .body(body.as_ref().clone());
        if let Some(secret) = &hook.secret {
            req = req.header("x-gatehouse-signature", signature(secret, &body));
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                tracing::warn!(url = %hook.url, status = %r.status(), attempt, "webhook refused")
            }
            Err(e) => {
                tracing::warn!(url = %hook.url, error = %e, attempt, "webhook delivery failed")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
    tracing::error!(url = %hook.url, event, "webhook given up after {ATTEMPTS} attempts");
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
