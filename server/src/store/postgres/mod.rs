//! The shared store: one PostgreSQL database that several gateway replicas use at once
//! (`[store] url`). Same typed operations as the SQLite store, each in the file named like its
//! SQLite twin; the schema is migrated forward on open, under an advisory lock so replicas that
//! start together migrate once.
//!
//! Every call runs on the store's own small runtime (one per process, never dropped): the
//! gateway runs sessions on several single-threaded runtimes and calls the store from async
//! code, from blocking threads and at startup, and a connection pool tied to one of those would
//! stall with it. Async callers await a task there; blocking callers wait on a channel.

mod approvals;
pub mod audit;
mod changes;
mod grants;
mod groups;
mod lockouts;
mod masking;
mod migrations;
mod rules;
mod service_accounts;
mod sessions;
pub mod tls;

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};

use super::StoreError;

/// Where the shared store is and how to reach it (from `[store]`).
#[derive(Clone)]
pub struct PgSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    /// `None`: plaintext only (`sslmode=disable`).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// TLS is required (`sslmode=require` or stricter), not only preferred.
    pub tls_required: bool,
    pub pool_size: usize,
    /// This replica's id: the origin of the changes it announces.
    pub replica_id: String,
}

impl std::fmt::Debug for PgSettings {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "postgresql://{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

/// A handle to the shared store; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    settings: std::sync::Arc<PgSettings>,
}

/// How long a call waits for a connection (or to make one) before it fails with
/// [`StoreError::Unavailable`]: short, so an outage is an error and not a hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("gatehouse-store")
            .enable_all()
            .build()
            .expect("cannot start the store's runtime")
    })
}

impl PgSettings {
    pub fn pg_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.database)
            .application_name("gatehouse-store")
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .ssl_mode(match (&self.tls, self.tls_required) {
                (None, _) => tokio_postgres::config::SslMode::Disable,
                (Some(_), false) => tokio_postgres::config::SslMode::Prefer,
                (Some(_), true) => tokio_postgres::config::SslMode::Require,
            });
        if let Some(p) = &self.password {
            c.password(p);
        }
        c
    }
}

impl PgStore {
    /// Connects, migrates the schema and returns a pool. Blocks the calling thread.
    pub fn open(settings: PgSettings) -> Result<PgStore, StoreError> {
        let manager = Manager::from_config(
            settings.pg_config(),
            tls::StoreTls(settings.tls.clone()),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(2))
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let store = PgStore {
            pool,
            settings: std::sync::Arc::new(settings),
        };
        store.blocking(|mut c| async move { migrations::migrate(&mut c).await })?;
        Ok(store)
    }

    pub fn settings(&self) -> &PgSettings {
        &self.settings
    }

    /// Runs `f` with a pooled connection on the store's runtime and awaits it. A connection
    /// the store ended (a restart, a failover, an administrator) fails its statement without
    /// running it; `f` is then run once more on a fresh connection, so the first call after
    /// the store comes back does not fail for it.
    pub async fn exec<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let pool = self.pool.clone();
        runtime()
            .spawn(async move {
                let again = f.clone();
                match f(get(&pool).await?).await {
                    Err(e) if connection_ended(&e) => {
                        // Every idle connection may be as dead as this one, even if it has
                        // not noticed yet: the retry gets a new one.
                        pool.retain(|_, _| false);
                        again(get(&pool).await?).await
                    }
                    r => r,
                }
            })
            .await
            .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Like [`PgStore::exec`], from a thread that may block (startup, CLI commands, the login's
    /// blocking thread). Never call it from an async task.
    pub fn blocking<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let pool = self.pool.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime().spawn(async move {
            let r = match get(&pool).await {
                Ok(c) => f(c).await,
                Err(e) => Err(e),
            };
            let _ = tx.send(r);
        });
        rx.recv()
            .map_err(|_| StoreError::Join("the store's runtime dropped a call".into()))?
    }
}

impl PgStore {
    /// Runs `fut` on the store's runtime and waits for it, from a thread that may block (the
    /// audit writer). Never call it from an async task.
    pub fn run_blocking<T, Fut>(&self, fut: Fut) -> Result<T, StoreError>
    where
        T: Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime().spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| StoreError::Join("the store's runtime dropped a call".into()))
    }

    /// A connection of its own, outside the pool, for a caller that must never wait behind
    /// others for one (the audit writer). Call it on the store's runtime.
    pub async fn dedicated_connection(
        &self,
        application_name: &str,
    ) -> Result<tokio_postgres::Client, StoreError> {
        let mut config = self.settings.pg_config();
        config.application_name(application_name);
        let (client, connection) = config
            .connect(tls::StoreTls(self.settings.tls.clone()))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "a dedicated store connection ended");
            }
        });
        Ok(client)
    }
}

/// The statement failed because its connection was gone or the server ended the session
/// (`57P01`-`57P03`): it did not run, and a fresh connection may succeed.
fn connection_ended(e: &StoreError) -> bool {
    match e {
        StoreError::Pg(e) => {
            e.is_closed()
                || e.as_db_error()
                    .is_some_and(|d| matches!(d.code().code(), "57P01" | "57P02" | "57P03"))
        }
        _ => false,
    }
}

async fn get(pool: &Pool) -> Result<Object, StoreError> {
    pool.get()
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// `groups_json`-style columns: the same JSON text the SQLite store keeps.
pub(super) fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}
