//! Streaming copies of the trail for log shippers and SIEMs: a JSON Lines file and an HTTP
//! collector. Each sink follows the committed trail in commit order and remembers how far it
//! got (`data_dir/audit-sink-<name>.pos`), so a sink that is down catches up later and nothing
//! is skipped; the trail itself never waits for a sink. In a shared store each replica's sinks
//! ship its own chain, so several replicas never ship a record twice.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Trail;
use crate::config::AuditConfig;
use crate::store::{AuditFilter, StoredRecord};

const BATCH: usize = 1000;

enum Target {
    File(PathBuf),
    Webhook {
        client: reqwest::Client,
        url: String,
        secret: Option<Vec<u8>>,
    },
}

/// One record as the API, exports and sinks show it: the record plus its `id` and `hash`, and
/// in a shared store its chain's `replica` (records a lone gateway wrote before it joined
/// do not carry it in their own content).
pub fn item(r: &StoredRecord) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(&r.json).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), r.id.into());
        o.insert("hash".into(), r.hash.clone().into());
        if let Some(replica) = &r.replica {
            o.entry("replica").or_insert_with(|| replica.clone().into());
        }
    }
    v
}

/// [`item`] as one line of JSON Lines.
pub fn line(r: &StoredRecord) -> Vec<u8> {
    let mut out = serde_json::to_vec(&item(r)).unwrap_or_default();
    out.push(b'\n');
    out
}

fn position_file(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join(format!("audit-sink-{name}.pos"))
}

fn load_position(p: &Path) -> i64 {
    std::fs::read_to_string(p)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn save_position(p: &Path, seq: i64) -> std::io::Result<()> {
    let tmp = p.with_extension("pos.tmp");
    std::fs::write(&tmp, seq.to_string())?;
    std::fs::rename(tmp, p)
}

/// Starts the configured sinks.
pub fn spawn(
    cfg: &AuditConfig,
    trail: &Trail,
    data_dir: &Path,
    resolve: impl Fn(&Path) -> PathBuf,
) {
    let mut targets = Vec::new();
    if let Some(f) = &cfg.file {
        targets.push(("file", Target::File(resolve(f))));
    }
    if let Some(url) = &cfg.webhook_url {
        match reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
        {
            Ok(client) => targets.push((
                "webhook",
                Target::Webhook {
                    client,
                    url: url.get_ref().clone(),
                    secret: cfg
                        .webhook_secret_env
                        .as_ref()
                        .and_then(|v| std::env::var(v).ok())
                        .map(String::into_bytes),
                },
            )),
            Err(e) => tracing::error!(error = %e, "audit webhook sink disabled"),
        }
    }
    for (name, target) in targets {
        let trail = trail.clone();
        let pos_path = position_file(data_dir, name);
        tokio::spawn(async move {
            let mut pos = load_position(&pos_path);
            let mut backoff = Duration::from_millis(500);
            loop {
                let filter = AuditFilter {
                    replica: trail.own_chain().map(str::to_string),
                    after_id: Some(pos),
                    ascending: true,
                    commit_order: true,
                    ..Default::default()
                };
                let rows = trail.search(filter, BATCH).await;
                let rows = match rows {
                    Ok(r) => r,
                    _ => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let Some(last) = rows.last().map(|r| r.id) else {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                };
                let body: Vec<u8> = rows.iter().flat_map(line).collect();
                match deliver(&target, body).await {
                    Ok(()) => {
                        pos = last;
                        backoff = Duration::from_millis(500);
                        if let Err(e) = save_position(&pos_path, pos) {
                            tracing::warn!(error = %e, sink = name, "cannot save the audit sink position");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, sink = name, "audit sink delivery failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                    }
                }
            }
        });
    }
}

async fn deliver(target: &Target, body: Vec<u8>) -> Result<(), String> {
    match target {
        Target::File(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?;
                f.write_all(&body)?;
                f.sync_data()
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
        }
        Target::Webhook {
            client,
            url,
            secret,
        } => {
            let mut req = client
                .post(url)
                .header("content-type", "application/x-ndjson");
            if let Some(s) = secret {
                req = req.header(
                    "x-gatehouse-signature",
                    crate::approval::webhooks::signature(s, &body),
                );
            }
            let r = req.body(body).send().await.map_err(|e| e.to_string())?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(format!("the collector answered {}", r.status()))
            }
        }
    }
}
