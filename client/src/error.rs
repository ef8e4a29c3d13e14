//! The client's one error type. Every variant reads as a sentence a person can act on, and maps
//! to a process exit code in one place (`Error::exit_code`), so scripts can tell "log in again"
//! from "the gateway is down" without parsing messages.

use std::path::PathBuf;

/// Result with the client's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not logged in; run `gatehouse login --gateway URL` first")]
    NotLoggedIn,

    #[error("the Gatehouse session for {identity} at {gateway} has expired or was revoked; run `gatehouse login --gateway {gateway}` again")]
    SessionExpired { identity: String, gateway: String },

    #[error("login refused: {0}")]
    LoginRefused(String),

    #[error("the gateway refused the request ({status}): {message}")]
    Forbidden { status: u16, message: String },

    #[error("not found: {0}")]
    NotFound(String),

    #[error("the gateway answered {status}: {message}")]
    Api { status: u16, message: String },

    #[error("cannot reach the gateway at {url}: {reason}; check the URL and that the gateway is running")]
    Unreachable { url: String, reason: String },

    #[error("cannot reach the gateway's PostgreSQL port at {addr}: {reason}")]
    PostgresUnreachable { addr: String, reason: String },

    #[error("the gateway at {addr} presented a certificate this machine does not trust (sha256 fingerprint {fingerprint}); compare it with the gateway's (`openssl x509 -noout -fingerprint -sha256 -in DATA_DIR/tls-cert.pem`) and log in again with `--tls-fingerprint {fingerprint}`, or `--ca-cert FILE`")]
    UntrustedCertificate { addr: String, fingerprint: String },

    #[error("TLS with the gateway at {addr} failed: {reason}")]
    Tls { addr: String, reason: String },

    #[error("single sign-on failed: {0}")]
    Sso(String),

    #[error("{gateway} has no single sign-on configured; log in as a local user (`--user NAME`) or with a service account's token (`--token TOKEN`)")]
    NoSso { gateway: String },

    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },

    #[error("cannot {action} {}: {source}", path.display())]
    File {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("the OS keychain failed: {0}")]
    Keychain(String),

    #[error("cannot listen on {addr}: {source}; choose another --port")]
    Listen {
        addr: String,
        source: std::io::Error,
    },

    #[error("{}", port_taken(environment, *port, *remembered))]
    PortTaken {
        environment: String,
        port: u16,
        /// The port was the one remembered from last time, not one the person just chose.
        remembered: bool,
    },

    #[error("no tunnel with id {0}")]
    NoSuchTunnel(u64),

    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn port_taken(environment: &str, port: u16, remembered: bool) -> String {
    if remembered {
        format!(
            "local port {port}, which {environment} had last time, is taken (another program, or another tunnel to {environment}); free it, or choose another port (`--port N`, or the port field in the desktop app), which is remembered from then on"
        )
    } else {
        format!(
            "local port {port} is taken (another program, or another tunnel); choose another (`--port N`, or the port field in the desktop app)"
        )
    }
}

impl Error {
    /// The process exit code for this error (documented in the README's CLI section).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NotLoggedIn | Error::SessionExpired { .. } | Error::LoginRefused(_) => 3,
            Error::Forbidden { .. } => 4,
            Error::NotFound(_) | Error::NoSuchTunnel(_) => 5,
            Error::Unreachable { .. } | Error::PostgresUnreachable { .. } => 6,
            Error::UntrustedCertificate { .. } | Error::Tls { .. } => 7,
            Error::Invalid { .. } | Error::NoSso { .. } => 2,
            _ => 1,
        }
    }

    /// An `Invalid` error: `what` was given wrongly, `reason` says how.
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Error {
        Error::Invalid {
            what,
            reason: reason.into(),
        }
    }
}
