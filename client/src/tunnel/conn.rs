//! One local connection's life: answer SSL/GSS requests with 'N' (loopback needs no TLS),
//! forward a CancelRequest unchanged to the gateway, or take the StartupMessage, rewrite it
//! (identity, environment, `gatehouse-tunnel/<app>`), open TLS to the gateway, answer its
//! password request with the session token, and from AuthenticationOk on relay bytes both ways
//! without parsing. The gateway's BackendKeyData passes through unchanged, which is what makes
//! a later CancelRequest from the local client land on the right session.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::wire::{self, Opening, WireError};
use super::Shared;
use crate::error::Error;
use crate::tls;

/// Time a local client gets to send its startup packet.
const LOCAL_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time the gateway gets to authenticate us.
const GATEWAY_AUTH_TIMEOUT: Duration = Duration::from_secs(15);
/// Relay buffer per direction: large enough that bulk results move in few syscalls.
const RELAY_BUFFER: usize = 64 * 1024;

/// The prefix the gateway recognises as "this connection came through a tunnel".
pub const APP_PREFIX: &str = "gatehouse-tunnel";

/// Serves one accepted local connection to its end.
pub async fn serve(mut local: TcpStream, shared: &Shared) {
    let _ = local.set_nodelay(true);
    let opened = tokio::time::timeout(LOCAL_HANDSHAKE_TIMEOUT, local_opening(&mut local)).await;
    let (version, params) = match opened {
        Ok(Ok(Some(Startup { version, params }))) => (version, params),
        Ok(Ok(None)) => return,
        Ok(Err(Local::Cancel(pkt))) => {
            forward_cancel(shared, &pkt).await;
            return;
        }
        Ok(Err(Local::Wire(WireError::Malformed(m)))) => {
            fail(&mut local, "08P01", &m, None).await;
            return;
        }
        Ok(Err(Local::Wire(_))) => return,
        Err(_) => {
            fail(
                &mut local,
                "08P01",
                "the tunnel got no startup message in time",
                None,
            )
            .await;
            return;
        }
    };
    let startup = rewrite_startup(&params, shared);
    let mut gateway = match authenticate(shared, version, &startup, &mut local).await {
        Ok(g) => g,
        Err(Reported) => return,
    };
    let _ = tokio::io::copy_bidirectional_with_sizes(
        &mut local,
        &mut gateway,
        RELAY_BUFFER,
        RELAY_BUFFER,
    )
    .await;
}

struct Startup {
    version: u32,
    params: Vec<(String, String)>,
}

enum Local {
    Cancel(Vec<u8>),
    Wire(WireError),
}

/// Reads the local client's opening packets up to the StartupMessage. `Ok(None)`: it left.
async fn local_opening(local: &mut TcpStream) -> Result<Option<Startup>, Local> {
    // At most a GSSENCRequest and an SSLRequest precede the real packet.
    for _ in 0..3 {
        match wire::read_opening(local).await {
            Ok(Opening::SslRequest) | Ok(Opening::GssEncRequest) => {
                // Plain TCP on loopback; TLS starts at the tunnel.
                if local.write_all(b"N").await.is_err() {
                    return Ok(None);
                }
            }
            Ok(Opening::Cancel(pkt)) => return Err(Local::Cancel(pkt)),
            Ok(Opening::Startup { version, params }) => {
                return Ok(Some(Startup { version, params }))
            }
            Err(WireError::Closed) => return Ok(None),
            Err(e) => return Err(Local::Wire(e)),
        }
    }
    Err(Local::Wire(WireError::Malformed(
        "too many negotiation requests before the startup message".into(),
    )))
}

/// The startup parameters the gateway gets: `user` is our identity, `database` the tunnel's
/// environment (`env/db`), `application_name` marked as the tunnel's; the rest pass unchanged.
pub fn rewrite_startup_params(
    params: &[(String, String)],
    identity: &str,
    environment: &str,
    database: Option<&str>,
) -> Vec<(String, String)> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let client_user = get("user").unwrap_or("");
    // libpq and most drivers default the database to the user name: that, an empty name and
    // the environment's own name all mean "the tunnel's database". Anything else names a
    // database on the environment's server, unless --database fixed one.
    let db = match (database, get("database")) {
        (Some(d), _) => Some(d.to_string()),
        (None, Some(d)) if !d.is_empty() && d != environment && d != client_user => {
            Some(d.to_string())
        }
        _ => None,
    };
    let dbname = match db {
        Some(d) => format!("{environment}/{d}"),
        None => environment.to_string(),
    };
    let app = match get("application_name").filter(|a| !a.is_empty()) {
        Some(a) if a.starts_with(APP_PREFIX) => a.to_string(),
        Some(a) => format!("{APP_PREFIX}/{a}"),
        None => APP_PREFIX.to_string(),
    };
    let mut out = vec![
        ("user".to_string(), identity.to_string()),
        ("database".to_string(), dbname),
        ("application_name".to_string(), app),
    ];
    out.extend(
        params
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "user" | "database" | "application_name"))
            .cloned(),
    );
    out
}

fn rewrite_startup(params: &[(String, String)], shared: &Shared) -> Vec<(String, String)> {
    rewrite_startup_params(
        params,
        &shared.identity,
        &shared.spec.environment,
        shared.spec.database.as_deref(),
    )
}

/// Opens an authenticated gateway connection for this local client, or tells the local client
/// why not (and returns `Err`). On success the gateway's AuthenticationOk has been forwarded and
/// everything after it is left for the relay.
async fn authenticate(
    shared: &Shared,
    version: u32,
    startup: &[(String, String)],
    local: &mut TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Reported> {
    let mut token = match shared.session.token().await {
        Ok(t) => t,
        Err(e) => return Err(report(local, &e).await),
    };
    // One retry: a refusal may mean another process rotated the token pair.
    for attempt in 0..2 {
        let mut gw = match tls::connect(&shared.postgres, &shared.host, &shared.trust).await {
            Ok(g) => g,
            Err(e) => return Err(report(local, &e).await),
        };
        let outcome = tokio::time::timeout(
            GATEWAY_AUTH_TIMEOUT,
            gateway_auth(&mut gw, version, startup, &token, local),
        )
        .await
        .unwrap_or(Err(Auth::Failed(
            "the gateway did not finish authentication in time".into(),
        )));
        match outcome {
            Ok(()) => return Ok(gw),
            Err(Auth::Refused(msg)) if attempt == 0 => {
                tracing::debug!(%msg, "the gateway refused the token; renewing");
                token = match shared.session.rejected(&token).await {
                    Ok(t) => t,
                    Err(e) => return Err(report(local, &e).await),
                };
            }
            Err(Auth::Refused(_)) => {
                let e = shared.session.snapshot().await.expired_error();
                return Err(report(local, &e).await);
            }
            Err(Auth::Forwarded) => return Err(Reported),
            Err(Auth::Failed(m)) => {
                fail(local, "08006", &format!("gatehouse tunnel: {m}"), None).await;
                return Err(Reported);
            }
        }
    }
    Err(Reported)
}

/// The local client has been told why its connection cannot go on.
struct Reported;

enum Auth {
    /// The token was refused (28P01): renew and retry, or report the session as over.
    Refused(String),
    /// The gateway's own error went to the local client as it was.
    Forwarded,
    Failed(String),
}

async fn gateway_auth(
    gw: &mut tokio_rustls::client::TlsStream<TcpStream>,
    version: u32,
    startup: &[(String, String)],
    token: &str,
    local: &mut TcpStream,
) -> Result<(), Auth> {
    let io = |e: std::io::Error| Auth::Failed(format!("lost the gateway: {e}"));
    gw.write_all(&wire::startup_message(version, startup))
        .await
        .map_err(io)?;
    gw.flush().await.map_err(io)?;
    // Reads take exactly one message each; whatever follows AuthenticationOk stays in the
    // TLS stream's buffer for the relay.
    loop {
        let msg = match wire::read_message(gw).await {
            Ok(m) => m,
            Err(WireError::Closed) => {
                return Err(Auth::Failed("the gateway closed the connection".into()))
            }
            Err(e) => return Err(Auth::Failed(e.to_string())),
        };
        match (msg.tag, msg.auth_code()) {
            (b'R', Some(3)) => {
                gw.write_all(&wire::password_message(token))
                    .await
                    .map_err(io)?;
                gw.flush().await.map_err(io)?;
            }
            (b'R', Some(0)) => {
                local.write_all(&msg.bytes).await.map_err(io)?;
                return Ok(());
            }
            (b'R', code) => {
                return Err(Auth::Failed(format!(
                    "the gateway asked for an unsupported authentication method ({code:?})"
                )))
            }
            (b'E', _) if msg.error_field(b'C').as_deref() == Some("28P01") => {
                return Err(Auth::Refused(msg.error_field(b'M').unwrap_or_default()))
            }
            (b'E', _) => {
                // No grant, no such environment, upstream down...: the gateway's words are
                // the right ones for the local client.
                let _ = local.write_all(&msg.bytes).await;
                return Err(Auth::Forwarded);
            }
            (b'v', _) | (b'N', _) => {
                // NegotiateProtocolVersion and notices belong to the local client.
                local.write_all(&msg.bytes).await.map_err(io)?;
            }
            (tag, _) => {
                return Err(Auth::Failed(format!(
                    "unexpected message {:?} from the gateway during authentication",
                    tag as char
                )))
            }
        }
    }
}

/// Tells the local client about a client-side error, as a PostgreSQL error it will show.
async fn report(local: &mut TcpStream, e: &Error) -> Reported {
    let (code, hint) = match e {
        Error::SessionExpired { gateway, .. } => (
            "28P01",
            format!("Run `gatehouse login --gateway {gateway}`, then connect again; the tunnel can stay open."),
        ),
        Error::NotLoggedIn | Error::LoginRefused(_) => (
            "28P01",
            "Run `gatehouse login --gateway URL`, then connect again.".to_string(),
        ),
        Error::UntrustedCertificate { .. } | Error::Tls { .. } => (
            "08001",
            "The gateway's TLS certificate was not accepted; see `gatehouse connect` output.".into(),
        ),
        _ => (
            "08001",
            "Check that the gateway is running and reachable; new connections will work once it is back.".into(),
        ),
    };
    fail(local, code, &format!("gatehouse tunnel: {e}"), Some(&hint)).await;
    Reported
}

async fn fail(local: &mut TcpStream, code: &str, message: &str, hint: Option<&str>) {
    tracing::warn!(code, message, "local connection refused");
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        local
            .write_all(&wire::error_response(code, message, hint))
            .await?;
        local.flush().await
    })
    .await;
}

/// Sends a local CancelRequest to the gateway on a new TLS connection, as libpq does; the key
/// is the gateway's own (passed through in BackendKeyData), so it needs no mapping.
async fn forward_cancel(shared: &Shared, pkt: &[u8]) {
    match tls::connect(&shared.postgres, &shared.host, &shared.trust).await {
        Ok(mut gw) => {
            let _ = gw.write_all(pkt).await;
            let _ = gw.flush().await;
            // The gateway closes the connection once it has acted on the request.
            let mut sink = [0u8; 1];
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::io::AsyncReadExt::read(&mut gw, &mut sink),
            )
            .await;
        }
        Err(e) => tracing::warn!(error = %e, "could not forward a cancel request"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn get<'a>(v: &'a [(String, String)], k: &str) -> Option<&'a str> {
        v.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn startup_is_rewritten_for_the_gateway() {
        let out = rewrite_startup_params(
            &p(&[
                ("user", "root"),
                ("database", "prod"),
                ("application_name", "psql"),
                ("client_encoding", "UTF8"),
            ]),
            "ana@example.com",
            "prod",
            None,
        );
        assert_eq!(get(&out, "user"), Some("ana@example.com"));
        assert_eq!(get(&out, "database"), Some("prod"));
        assert_eq!(get(&out, "application_name"), Some("gatehouse-tunnel/psql"));
        assert_eq!(get(&out, "client_encoding"), Some("UTF8"));
        assert_eq!(out.iter().filter(|(k, _)| k == "user").count(), 1);
    }

    #[test]
    fn database_choice() {
        let db = |params: &[(&str, &str)], fixed: Option<&str>| {
            let out = rewrite_startup_params(&p(params), "ana", "prod", fixed);
            get(&out, "database").map(str::to_string)
        };
        // Default database (libpq: same as the user), empty, or the env's name.
        assert_eq!(
            db(&[("user", "root"), ("database", "root")], None).as_deref(),
            Some("prod")
        );
        assert_eq!(db(&[("user", "root")], None).as_deref(), Some("prod"));
        assert_eq!(db(&[("database", "prod")], None).as_deref(), Some("prod"));
        // Another database on the same server.
        assert_eq!(
            db(&[("database", "postgres")], None).as_deref(),
            Some("prod/postgres")
        );
        // --database wins.
        assert_eq!(
            db(&[("database", "x")], Some("appdb")).as_deref(),
            Some("prod/appdb")
        );
    }

    #[test]
    fn application_name_is_marked_once() {
        let out = rewrite_startup_params(&p(&[]), "ana", "prod", None);
        assert_eq!(get(&out, "application_name"), Some("gatehouse-tunnel"));
        let out = rewrite_startup_params(
            &p(&[("application_name", "gatehouse-tunnel/x")]),
            "ana",
            "prod",
            None,
        );
        assert_eq!(get(&out, "application_name"), Some("gatehouse-tunnel/x"));
    }
}
