//! `/metrics`: Prometheus text exposition of the gateway's counters and histograms, rendered by
//! `metrics-exporter-prometheus`; gauges that are cheaper to read than to maintain (open
//! connections, audit queue depth) are sampled at scrape time.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::gateway::Gateway;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
/// The `replica` label every series carries, set before [`install`] by [`label_replica`].
static REPLICA: OnceLock<String> = OnceLock::new();

/// Labels every series with this replica's id (call before [`install`]).
pub fn label_replica(id: &str) {
    let _ = REPLICA.set(id.to_string());
}

/// Installs the process-wide recorder (once); later calls return the same handle.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            if let Some(id) = REPLICA.get() {
                builder = builder.add_global_label("replica", id);
            }
            match builder.install_recorder() {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

pub async fn render(State(gw): State<Arc<Gateway>>) -> impl IntoResponse {
    metrics::gauge!("gatehouse_connections_open").set(gw.connections.list().len() as f64);
    metrics::gauge!("gatehouse_audit_queue_depth").set(gw.audit.queue_depth() as f64);
    metrics::gauge!("gatehouse_audit_records_written").set(gw.audit.written() as f64);
    metrics::gauge!("gatehouse_audit_last_commit_seconds")
        .set(gw.audit.last_commit_micros() as f64 / 1e6);
    metrics::gauge!("gatehouse_audit_healthy").set(if gw.audit.healthy() { 1.0 } else { 0.0 });
    if let Ok(n) = gw.store.count_approvals("pending").await {
        metrics::gauge!("gatehouse_approvals_pending").set(n as f64);
    }
    let body = install().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
