//! Running the gateway: bind both listeners, serve until SIGINT/SIGTERM.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::gateway::Gateway;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        addr: std::net::SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot start session workers: {0}")]
    Workers(std::io::Error),
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
}

/// Serves PostgreSQL and HTTP until a shutdown signal.
pub async fn serve(gw: Arc<Gateway>) -> Result<(), ServeError> {
    crate::http::metrics::label_replica(&gw.replica_id);
    crate::http::metrics::install();
    crate::approval::webhooks::spawn(&gw.config.webhooks, gw.approvals.subscribe());
    let data_dir = gw.config.data_dir();
    crate::audit::sinks::spawn(&gw.config.audit, gw.audit.trail(), &data_dir, |p| {
        gw.config.resolve(p)
    });
    crate::audit::archive::spawn(data_dir, gw.config.audit.retention_days);
    let pg_addr = gw.config.postgres_listen();
    let http_addr = gw.config.http_listen();
    let pg = TcpListener::bind(pg_addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: pg_addr,
            what: "postgres_listen",
            source,
        })?;
    let http = TcpListener::bind(http_addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: http_addr,
            what: "http_listen",
            source,
        })?;
    if let Ok(a) = pg.local_addr() {
        let _ = gw.pg_local_addr.set(a);
    }
    tracing::info!(replica = %gw.replica_id, shared_store = gw.store.is_shared(), postgres = %pg_addr, http = %http_addr, environments = gw.environments.len(), "gatehouse is ready");

    let workers = Arc::new(
        crate::pg::workers::Workers::start(
            gw.config.server.worker_threads,
            gw.config.server.worker_scheduling,
        )
        .map_err(ServeError::Workers)?,
    );
    tracing::info!(workers = workers.len(), "session workers started");
    let pg_task = tokio::spawn(crate::pg::listener::run(gw.clone(), pg, workers));
    // Expired grants and ended sessions end their open connections.
    tokio::spawn(crate::pg::access::sweep_periodically(gw.clone()));
    // Changes other replicas make to the shared store take effect here too.
    tokio::spawn(crate::replicas::follow(gw.clone()));
    // Access requests nobody decided in time expire.
    tokio::spawn(crate::approval::access::expire_periodically(gw.clone()));
    if gw.config.masking.enabled {
        tokio::spawn(crate::pg::catalog::refresh_periodically(gw.clone()));
    }
    let result = tokio::select! {
        r = crate::http::run(gw.clone(), http) => r.map_err(ServeError::Http),
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    };
    pg_task.abort();
    result
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
