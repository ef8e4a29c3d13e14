//! Accepts PostgreSQL connections and hands each to a session task on one of the workers, under
//! a connection limit: past it a client gets `53300 too many connections` instead of waiting.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::error::{PgError, SqlState};
use super::session;
use super::workers::Workers;
use crate::gateway::Gateway;

/// Runs the accept loop until the task is dropped.
pub async fn run(gw: Arc<Gateway>, listener: TcpListener, workers: Arc<Workers>) {
    let permits = Arc::new(Semaphore::new(gw.config.server.max_connections.max(1)));
    loop {
        let (mut tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off briefly rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::spawn(async move {
                let e = PgError::fatal(
                    SqlState::TooManyConnections,
                    "sorry, too many clients are connected to the gateway",
                )
                .with_hint(
                    "Try again later, or ask an administrator to raise server.max_connections.",
                );
                let _ = tcp.write_all(&e.to_bytes()).await;
            });
            continue;
        };
        // The socket moves to the worker's own reactor.
        let std_tcp = match tcp.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand a connection to a worker");
                continue;
            }
        };
        let gw = gw.clone();
        workers.pick().spawn(async move {
            match tokio::net::TcpStream::from_std(std_tcp) {
                Ok(tcp) => session::serve(gw, tcp, peer).await,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot register a connection with its worker")
                }
            }
            drop(permit);
        });
    }
}
