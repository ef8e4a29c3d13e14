//! Local tunnels: a listener on 127.0.0.1 per environment whose connections are carried to the
//! gateway over TLS with the session token as the password, so local tools need none.
//! [`TunnelManager`] starts, lists and stops them (the CLI runs one; the desktop app many).
//!
//! Architecture invariant: after authentication a tunnel connection relays bytes in both
//! directions without parsing them; only the startup phase is understood (`wire.rs`).

mod conn;
pub mod wire;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use conn::{rewrite_startup_params, APP_PREFIX};

use crate::error::{Error, Result};
use crate::handle::SessionHandle;
use crate::session::{host_of, Trust};

/// What to open.
#[derive(Debug, Clone)]
pub struct TunnelSpec {
    pub environment: String,
    /// A database on the environment's server (`env/db`); default: the environment's own.
    pub database: Option<String>,
    /// Local port; 0 picks a free one.
    pub port: u16,
    /// Local address; loopback unless the caller insists (the tunnel holds a credential, so
    /// anything that can reach this address acts as the session's identity).
    pub bind: IpAddr,
}

impl TunnelSpec {
    pub fn new(environment: &str) -> Self {
        TunnelSpec {
            environment: environment.into(),
            database: None,
            port: 0,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }
}

/// A running tunnel as shown to people and scripts.
#[derive(Debug, Clone, Serialize)]
pub struct TunnelInfo {
    pub id: u64,
    pub environment: String,
    pub database: Option<String>,
    pub host: String,
    pub port: u16,
    /// The identity the tunnel connects as (also the `user` to show in tools).
    pub user: String,
    /// Ready to paste into any libpq-style client.
    pub url: String,
    pub psql: String,
    pub active_connections: usize,
    pub total_connections: u64,
}

/// What every connection of one tunnel shares.
pub(crate) struct Shared {
    pub session: SessionHandle,
    pub spec: TunnelSpec,
    pub identity: String,
    pub postgres: String,
    pub host: String,
    pub trust: Trust,
    active: AtomicUsize,
    total: AtomicU64,
}

struct Running {
    shared: Arc<Shared>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

/// Starts, lists and stops tunnels over one session.
pub struct TunnelManager {
    session: SessionHandle,
    next_id: AtomicU64,
    tunnels: Mutex<BTreeMap<u64, Running>>,
}

impl TunnelManager {
    pub fn new(session: SessionHandle) -> Self {
        TunnelManager {
            session,
            next_id: AtomicU64::new(1),
            tunnels: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn session(&self) -> &SessionHandle {
        &self.session
    }

    /// Opens a listener for `spec` and starts accepting. The environment is not checked here
    /// (the caller may want to, with [`crate::api::ApiClient::environments`]); connections to
    /// one the identity may not use get the gateway's own error.
    pub async fn start(&self, spec: TunnelSpec) -> Result<TunnelInfo> {
        let addr = SocketAddr::new(spec.bind, spec.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Listen {
                addr: addr.to_string(),
                source,
            })?;
        let local = listener.local_addr()?;
        let s = self.session.snapshot().await;
        let shared = Arc::new(Shared {
            session: self.session.clone(),
            identity: s.identity.clone(),
            host: host_of(&s.postgres).to_string(),
            postgres: s.postgres.clone(),
            trust: s.trust.clone(),
            spec,
            active: AtomicUsize::new(0),
            total: AtomicU64::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let running = Running {
            shared,
            local,
            task,
        };
        let info = info(id, &running);
        self.lock().insert(id, running);
        Ok(info)
    }

    /// Stops a tunnel: closes its listener and every connection through it.
    pub fn stop(&self, id: u64) -> Result<()> {
        let running = self.lock().remove(&id).ok_or(Error::NoSuchTunnel(id))?;
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        running.task.abort();
        Ok(())
    }

    /// Stops every tunnel.
    pub fn stop_all(&self) {
        for (_, r) in std::mem::take(&mut *self.lock()) {
            r.task.abort();
        }
    }

    pub fn list(&self) -> Vec<TunnelInfo> {
        self.lock().iter().map(|(id, r)| info(*id, r)).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Running>> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.tunnels.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for TunnelManager {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn info(id: u64, r: &Running) -> TunnelInfo {
    let s = &r.shared;
    let host = r.local.ip().to_string();
    let port = r.local.port();
    let dbname = match &s.spec.database {
        Some(d) => d.clone(),
        None => s.spec.environment.clone(),
    };
    let url_user: String = url::form_urlencoded::byte_serialize(s.identity.as_bytes()).collect();
    let url_db: String = url::form_urlencoded::byte_serialize(dbname.as_bytes()).collect();
    // sslmode=disable: the local hop is loopback and TLS starts at the tunnel.
    let url = format!("postgresql://{url_user}@{host}:{port}/{url_db}?sslmode=disable");
    let psql = format!(
        "psql \"host={host} port={port} dbname={} user={} sslmode=disable\"",
        quote_conninfo(&dbname),
        quote_conninfo(&s.identity)
    );
    TunnelInfo {
        id,
        environment: s.spec.environment.clone(),
        database: s.spec.database.clone(),
        host,
        port,
        user: s.identity.clone(),
        url,
        psql,
        active_connections: s.active.load(Ordering::Relaxed),
        total_connections: s.total.load(Ordering::Relaxed),
    }
}

/// Quotes a libpq conninfo value when it needs it.
fn quote_conninfo(v: &str) -> String {
    if !v.is_empty() && !v.contains([' ', '\'', '\\', '"']) {
        return v.to_string();
    }
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    let shared = shared.clone();
                    shared.total.fetch_add(1, Ordering::Relaxed);
                    conns.spawn(async move {
                        shared.active.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, env = %shared.spec.environment, "local connection");
                        conn::serve(sock, &shared).await;
                        shared.active.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_quoting() {
        assert_eq!(quote_conninfo("prod"), "prod");
        assert_eq!(quote_conninfo("a b"), "'a b'");
        assert_eq!(quote_conninfo("it's"), "'it\\'s'");
    }
}
