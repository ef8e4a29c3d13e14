//! The end-to-end test harness: throwaway PostgreSQL 15 clusters and gateway processes on free
//! ports, so every test runs against real parts, in parallel, and can stop and restart them.
//!
//! Processes are spawned from one long-lived thread with `setpriv --pdeathsig`, so they die with
//! the test binary even when a test panics or the run is interrupted.

pub mod api;
mod client;
mod cluster;
pub mod desktop;
mod fixture;
mod gateway;
pub mod http_sink;
pub mod mcp;
pub mod notifications;
pub mod oidc;
mod process;
pub mod raw;
pub mod sse;
pub mod tls_front;

pub use api::Api;
pub use client::{client_bin, CliHome, Tunnel};
pub use cluster::Cluster;
pub use fixture::{
    app_database, app_url, two_environments, Fixture, ADMIN, ADMIN_PASSWORD, AGENT, ENV, OTHER_ENV,
};
pub use gateway::{on_shared_store, server_bin, Gateway, GatewayBuilder};
pub use process::{free_port, python, run_cmd, spawn_tied, CmdOutput};

/// The PostgreSQL binaries the tests use.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The sha256 hex of a token, as `token_sha256` wants it.
/// Fails naming how many of `wanted` (statement texts) are not among the audit's `recorded`
/// ones, with the first few: the check of every "nothing acknowledged is lost" test.
pub fn assert_all_recorded(
    recorded: &std::collections::HashSet<String>,
    wanted: impl IntoIterator<Item = String>,
    what: &str,
) {
    let wanted: Vec<String> = wanted.into_iter().collect();
    let missing: Vec<&String> = wanted.iter().filter(|w| !recorded.contains(*w)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} {what} have no audit record: {:?}",
        missing.len(),
        wanted.len(),
        &missing[..missing.len().min(10)]
    );
}

pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// A random token-like string.
pub fn random_token(prefix: &str) -> String {
    use rand::Rng;
    let s: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    format!("{prefix}{s}")
}

/// The SQLSTATE of a tokio-postgres error, or "" if it has none.
pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_default()
}

/// The message of a tokio-postgres error (the server's when there is one).
pub fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// How a connection from [`Gateway::connect_watched`] ended: the SQLSTATE and message of the
/// error the gateway closed it with. Panics if it does not end within 10 s or ends cleanly.
pub async fn ended_with(
    h: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) -> (String, String) {
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), h)
        .await
        .expect("the connection should have been closed")
        .expect("the connection task");
    let e = r.expect_err("the connection should end with an error");
    (sqlstate(&e), message(&e))
}
