//! Connecting to an environment's real PostgreSQL with the credentials only the gateway holds:
//! TCP, optional TLS (libpq's `sslmode`), the startup message, and SCRAM-SHA-256, md5 or
//! cleartext authentication. Also sends cancel requests to an upstream backend.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use pgwire::messages::response::ErrorResponse;
use pgwire::messages::startup::{
    Authentication, BackendKeyData, Password, SASLInitialResponse, SASLResponse, Startup,
};
use pgwire::messages::{DecodeContext, Message, ProtocolVersion};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::codec::{self, ReadError};
use super::error::{PgError, SqlState};
use super::stream::PgStream;
use super::tls::{self, SslMode};

/// Where and how to reach an environment's database; parsed from its `upstream` URL.
#[derive(Clone)]
pub struct UpstreamTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for UpstreamTarget {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "postgresql://{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("not a URL: {0}")]
    Url(#[from] url::ParseError),
    #[error("scheme must be postgresql:// or postgres://")]
    Scheme,
    #[error("a host is required")]
    NoHost,
    #[error("a user is required (postgresql://USER@host/db)")]
    NoUser,
    #[error("unknown sslmode `{0}` (disable, prefer, require, verify-ca, verify-full)")]
    SslMode(String),
    #[error("unsupported URL parameter `{0}` (sslmode and sslrootcert are understood)")]
    Param(String),
    #[error("TLS settings: {0}")]
    Tls(#[from] tls::TlsError),
}

impl UpstreamTarget {
    /// Parses `postgresql://user[:password]@host[:port][/database][?sslmode=..&sslrootcert=..]`.
    /// `password` (from the environment variable named in the config) wins over the URL's.
    pub fn parse(url: &str, password: Option<String>) -> Result<Self, TargetError> {
        let u = url::Url::parse(url)?;
        if u.scheme() != "postgresql" && u.scheme() != "postgres" {
            return Err(TargetError::Scheme);
        }
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(TargetError::NoHost)?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        let user = decode(u.username())
            .filter(|s| !s.is_empty())
            .ok_or(TargetError::NoUser)?;
        let password = password.or_else(|| u.password().and_then(decode));
        let database = u.path().trim_start_matches('/');
        let database = if database.is_empty() {
            user.clone()
        } else {
            decode(database).unwrap_or_default()
        };
        let mut sslmode = SslMode::Prefer;
        let mut sslrootcert = None;
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "sslmode" => {
                    sslmode =
                        SslMode::parse(&v).ok_or_else(|| TargetError::SslMode(v.to_string()))?
                }
                "sslrootcert" => sslrootcert = Some(PathBuf::from(v.as_ref())),
                other => return Err(TargetError::Param(other.to_string())),
            }
        }
        let tls = match sslmode {
            SslMode::Disable => None,
            mode => Some(tls::upstream_client_config(mode, sslrootcert.as_deref())?),
        };
        Ok(Self {
            host,
            port: u.port().unwrap_or(5432),
            user,
            password,
            database,
            sslmode,
            sslrootcert,
            tls,
        })
    }
}

impl UpstreamTarget {
    /// The TLS client settings `sslmode` and `sslrootcert` made (`None` for `disable`); the
    /// shared store (`[store] url`) connects with the same.
    pub fn tls_config(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.tls.clone()
    }

    /// The gateway's own PostgreSQL listener, as a client of it: `user` with a Gatehouse token
    /// as the password, the environment as the database. TLS (unverified: it is our own
    /// listener on this machine) only when `server.require_tls` demands it.
    pub fn gateway_itself(
        addr: std::net::SocketAddr,
        user: &str,
        token: &str,
        environment: &str,
        tls: bool,
    ) -> Result<Self, TargetError> {
        let (sslmode, tls) = if tls {
            (
                SslMode::Require,
                Some(tls::upstream_client_config(SslMode::Require, None)?),
            )
        } else {
            (SslMode::Disable, None)
        };
        Ok(Self {
            host: addr.ip().to_string(),
            port: addr.port(),
            user: user.to_string(),
            password: Some(token.to_string()),
            database: environment.to_string(),
            sslmode,
            sslrootcert: None,
            tls,
        })
    }
}

/// Why an upstream connection failed; each maps to the SQLSTATE the client sees.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach {addr}: {source}")]
    Unreachable {
        addr: String,
        source: std::io::Error,
    },
    #[error("timed out connecting to {0}")]
    Timeout(String),
    #[error("the upstream refused TLS but sslmode requires it")]
    TlsRefused,
    #[error("TLS handshake with the upstream failed: {0}")]
    Tls(std::io::Error),
    #[error("the upstream rejected the connection: {code}: {message}")]
    Rejected { code: String, message: String },
    #[error("the upstream asked for {0}, which the gateway does not support")]
    UnsupportedAuth(String),
    #[error("the upstream asked for a password but none is configured")]
    NoPassword,
    #[error("upstream authentication failed: {0}")]
    Auth(std::io::Error),
    #[error("protocol error from the upstream: {0}")]
    Protocol(#[from] ReadError),
}

impl UpstreamError {
    /// What the client is told. Credentials problems are the gateway operator's to fix, so they
    /// are reported as a refused connection without upstream detail.
    pub fn to_client(&self, env: &str) -> PgError {
        match self {
            UpstreamError::Rejected { code, message } if !code.starts_with("28") => {
                // e.g. 3D000 (database does not exist), 53300 (too many connections), 57P03.
                let mut e = PgError::fatal(SqlState::UnableToConnect, format!("environment \"{env}\": {message}"));
                e.detail = Some(format!("upstream SQLSTATE {code}"));
                e
            }
            UpstreamError::Rejected { .. } | UpstreamError::NoPassword | UpstreamError::Auth(_) | UpstreamError::UnsupportedAuth(_) => {
                PgError::fatal(
                    SqlState::RejectedConnection,
                    format!("the database of environment \"{env}\" rejected the gateway's credentials"),
                )
                .with_hint("This is a gateway configuration problem; ask a Gatehouse administrator to check the environment's upstream credentials.")
            }
            UpstreamError::Unreachable { .. } | UpstreamError::Timeout(_) => PgError::fatal(
                SqlState::UnableToConnect,
                format!("the database of environment \"{env}\" is unreachable"),
            )
            .with_hint("The upstream may be down or restarting; try again shortly."),
            UpstreamError::TlsRefused | UpstreamError::Tls(_) | UpstreamError::Protocol(_) => PgError::fatal(
                SqlState::UnableToConnect,
                format!("could not establish a connection to the database of environment \"{env}\": {self}"),
            ),
        }
    }
}

/// An authenticated upstream connection, ready for queries.
pub struct Upstream {
    pub stream: PgStream,
    /// ParameterStatus and NoticeResponse frames the upstream sent during startup, to relay.
    pub startup_frames: BytesMut,
    /// The `client_encoding` the upstream reported at startup.
    pub client_encoding: Option<String>,
    /// The `standard_conforming_strings` the upstream reported at startup.
    pub standard_conforming_strings: Option<Vec<u8>>,
    pub pid: i32,
    pub secret: i32,
    /// Transaction status from the upstream's first ReadyForQuery.
    pub ready_status: u8,
}

const STARTUP_FRAME_LIMIT: usize = 1 << 20;

/// Opens TCP and, as `sslmode` asks, TLS.
async fn open(target: &UpstreamTarget, timeout: Duration) -> Result<PgStream, UpstreamError> {
    let addr = format!("{}:{}", target.host, target.port);
    let tcp = match tokio::time::timeout(
        timeout,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    {
        Err(_) => return Err(UpstreamError::Timeout(addr)),
        Ok(Err(source)) => return Err(UpstreamError::Unreachable { addr, source }),
        Ok(Ok(s)) => s,
    };
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &target.tls else {
        return Ok(PgStream::Plain(tcp));
    };
    let mut tcp = tcp;
    let ssl_request = [0u8, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    tcp.write_all(&ssl_request)
        .await
        .map_err(|source| UpstreamError::Unreachable {
            addr: addr.clone(),
            source,
        })?;
    let answer = tcp
        .read_u8()
        .await
        .map_err(|source| UpstreamError::Unreachable {
            addr: addr.clone(),
            source,
        })?;
    match answer {
        b'S' => {
            let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(|e| UpstreamError::Tls(std::io::Error::other(e)))?;
            let tls = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await
                .map_err(UpstreamError::Tls)?;
            Ok(PgStream::ClientTls(Box::new(tls)))
        }
        b'N' if target.sslmode == SslMode::Prefer => Ok(PgStream::Plain(tcp)),
        b'N' => Err(UpstreamError::TlsRefused),
        _ => Err(UpstreamError::Protocol(ReadError::Malformed(
            pgwire::error::PgWireError::InvalidSSLRequestMessage,
        ))),
    }
}

/// Connects and authenticates; `params` become the upstream StartupMessage's parameters
/// (user and database come from the target).
pub async fn connect(
    target: &UpstreamTarget,
    params: &[(String, String)],
    timeout: Duration,
) -> Result<Upstream, UpstreamError> {
    match tokio::time::timeout(timeout * 2, connect_inner(target, params, timeout)).await {
        Ok(r) => r,
        Err(_) => Err(UpstreamError::Timeout(format!(
            "{}:{}",
            target.host, target.port
        ))),
    }
}

async fn connect_inner(
    target: &UpstreamTarget,
    params: &[(String, String)],
    timeout: Duration,
) -> Result<Upstream, UpstreamError> {
    let mut stream = open(target, timeout).await?;
    let mut out = BytesMut::new();
    let mut startup = Startup::new();
    startup
        .parameters
        .insert("user".into(), target.user.clone());
    startup
        .parameters
        .insert("database".into(), target.database.clone());
    for (k, v) in params {
        startup.parameters.insert(k.clone(), v.clone());
    }
    codec::encode(&mut out, &startup);
    send(&mut stream, &mut out).await?;

    let ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    let mut buf = BytesMut::with_capacity(8192);
    let mut startup_frames = BytesMut::new();
    let mut client_encoding = None;
    let mut standard_conforming_strings = None;
    let mut scram: Option<ScramSha256> = None;
    let mut key = (0, 0);
    loop {
        let mut frame = codec::read_frame(&mut stream, &mut buf, STARTUP_FRAME_LIMIT).await?;
        match frame[0] {
            b'R' => {
                let auth = Authentication::decode(&mut frame, &ctx).map_err(ReadError::from)?;
                match auth {
                    Some(Authentication::Ok) => {}
                    Some(Authentication::CleartextPassword) => {
                        let pw = target.password.clone().ok_or(UpstreamError::NoPassword)?;
                        codec::encode(&mut out, &Password::new(pw));
                    }
                    Some(Authentication::MD5Password(salt)) => {
                        let pw = target
                            .password
                            .as_deref()
                            .ok_or(UpstreamError::NoPassword)?;
                        let salt: [u8; 4] = salt.as_slice().try_into().map_err(|_| {
                            UpstreamError::UnsupportedAuth("md5 with a bad salt".into())
                        })?;
                        let hash = postgres_protocol::authentication::md5_hash(
                            target.user.as_bytes(),
                            pw.as_bytes(),
                            salt,
                        );
                        codec::encode(&mut out, &Password::new(hash));
                    }
                    Some(Authentication::SASL(methods)) => {
                        if !methods.iter().any(|m| m == SCRAM_SHA_256) {
                            return Err(UpstreamError::UnsupportedAuth(methods.join(", ")));
                        }
                        let pw = target
                            .password
                            .as_deref()
                            .ok_or(UpstreamError::NoPassword)?;
                        // "n": no channel binding; always accepted, even when -PLUS is offered.
                        let s = ScramSha256::new(pw.as_bytes(), ChannelBinding::unsupported());
                        let first = Bytes::copy_from_slice(s.message());
                        codec::encode(
                            &mut out,
                            &SASLInitialResponse::new(SCRAM_SHA_256.to_string(), Some(first)),
                        );
                        scram = Some(s);
                    }
                    Some(Authentication::SASLContinue(data)) => {
                        let s = scram.as_mut().ok_or_else(|| {
                            UpstreamError::UnsupportedAuth("SASL out of order".into())
                        })?;
                        s.update(&data).map_err(UpstreamError::Auth)?;
                        codec::encode(
                            &mut out,
                            &SASLResponse::new(Bytes::copy_from_slice(s.message())),
                        );
                    }
                    Some(Authentication::SASLFinal(data)) => {
                        let s = scram.as_mut().ok_or_else(|| {
                            UpstreamError::UnsupportedAuth("SASL out of order".into())
                        })?;
                        s.finish(&data).map_err(UpstreamError::Auth)?;
                    }
                    Some(Authentication::KerberosV5) => {
                        return Err(UpstreamError::UnsupportedAuth("Kerberos".into()))
                    }
                    Some(other) => {
                        return Err(UpstreamError::UnsupportedAuth(format!("{other:?}")))
                    }
                    None => return Err(UpstreamError::UnsupportedAuth("an unknown method".into())),
                }
                if !out.is_empty() {
                    send(&mut stream, &mut out).await?;
                }
            }
            b'E' => {
                let e = ErrorResponse::decode(&mut frame, &ctx)
                    .map_err(ReadError::from)?
                    .unwrap_or_default();
                let field = |c: u8| {
                    e.fields
                        .iter()
                        .find(|(k, _)| *k == c)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                return Err(UpstreamError::Rejected {
                    code: field(b'C'),
                    message: field(b'M'),
                });
            }
            b'K' => {
                let k = BackendKeyData::decode(&mut frame, &ctx).map_err(ReadError::from)?;
                if let Some(k) = k {
                    key = (k.pid, k.secret_key.as_i32().unwrap_or(0));
                }
            }
            b'S' | b'N' => {
                match super::wire::parameter_status(&frame) {
                    Some((b"client_encoding", value)) => {
                        client_encoding = Some(String::from_utf8_lossy(value).into_owned());
                    }
                    Some((b"standard_conforming_strings", value)) => {
                        standard_conforming_strings = Some(value.to_vec());
                    }
                    _ => {}
                }
                startup_frames.put_slice(&frame)
            }
            b'Z' => {
                let ready_status = frame.get(5).copied().unwrap_or(b'I');
                return Ok(Upstream {
                    stream,
                    startup_frames,
                    client_encoding,
                    standard_conforming_strings,
                    pid: key.0,
                    secret: key.1,
                    ready_status,
                });
            }
            // NegotiateProtocolVersion: we ask for 3.0 with no extensions, nothing to adapt.
            b'v' => {}
            _ => {
                return Err(UpstreamError::Protocol(ReadError::Malformed(
                    pgwire::error::PgWireError::InvalidStartupMessage,
                )));
            }
        }
    }
}

async fn send(stream: &mut PgStream, out: &mut BytesMut) -> Result<(), UpstreamError> {
    let r = async {
        stream.write_all(out).await?;
        stream.flush().await
    }
    .await;
    out.clear();
    r.map_err(|e| UpstreamError::Protocol(ReadError::Io(e)))
}

/// Asks the upstream to cancel whatever backend `pid` is running.
pub async fn cancel(
    target: &UpstreamTarget,
    pid: i32,
    secret: i32,
    timeout: Duration,
) -> Result<(), UpstreamError> {
    let mut stream = open(target, timeout).await?;
    let mut msg = BytesMut::with_capacity(16);
    msg.put_i32(16);
    msg.put_i32(80877102);
    msg.put_i32(pid);
    msg.put_i32(secret);
    send(&mut stream, &mut msg).await?;
    // The server closes the connection once it has acted; waiting for that makes the cancel
    // ordered before whatever the caller does next.
    let mut sink = [0u8; 16];
    let _ = tokio::time::timeout(timeout, stream.read(&mut sink)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_hides_password() {
        let t = UpstreamTarget::parse(
            "postgresql://app%40x:s3cr%2Ft@db.internal:6543/app%20db?sslmode=disable",
            None,
        )
        .unwrap();
        assert_eq!(
            (
                t.user.as_str(),
                t.host.as_str(),
                t.port,
                t.database.as_str()
            ),
            ("app@x", "db.internal", 6543, "app db")
        );
        assert_eq!(t.password.as_deref(), Some("s3cr/t"));
        assert!(!format!("{t:?}").contains("s3cr"));
        let t = UpstreamTarget::parse("postgres://u@h", Some("envpw".into())).unwrap();
        assert_eq!(
            (t.database.as_str(), t.port, t.password.as_deref()),
            ("u", 5432, Some("envpw"))
        );
        assert_eq!(t.sslmode, SslMode::Prefer);
    }

    #[test]
    fn rejects_bad_urls() {
        assert!(matches!(
            UpstreamTarget::parse("mysql://u@h/d", None),
            Err(TargetError::Scheme)
        ));
        assert!(matches!(
            UpstreamTarget::parse("postgresql://h/d", None),
            Err(TargetError::NoUser)
        ));
        assert!(matches!(
            UpstreamTarget::parse("postgresql://u@h/d?sslmode=bogus", None),
            Err(TargetError::SslMode(_))
        ));
        assert!(matches!(
            UpstreamTarget::parse("postgresql://u@h/d?foo=1", None),
            Err(TargetError::Param(_))
        ));
    }
}
