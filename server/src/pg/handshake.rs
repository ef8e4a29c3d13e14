//! The client's side of connection setup, up to the password: SSLRequest (answered with TLS),
//! GSSENCRequest (refused), CancelRequest, the protocol 3.0 StartupMessage, and the cleartext
//! password exchange that carries the identity token. Every read honours the handshake deadline.

use std::collections::BTreeMap;

use bytes::{Buf, BytesMut};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::{
    Authentication, GssEncRequest, NegotiateProtocolVersion, PasswordMessageFamily, SslRequest,
    Startup,
};
use pgwire::messages::{DecodeContext, Message, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::codec::{self, ReadError};
use super::error::{PgError, SqlState};
use super::stream::PgStream;

/// Startup packets (before authentication) larger than this are refused, as PostgreSQL does.
const MAX_STARTUP_PACKET: usize = 10_000;

/// What a new connection turned out to be.
pub enum Opening {
    Startup {
        stream: PgStream,
        params: BTreeMap<String, String>,
    },
    Cancel {
        pid: i32,
        secret: i32,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The client went away; nothing to report.
    #[error("client closed the connection during the handshake")]
    Closed,
    #[error("i/o error during the handshake: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    /// Something to tell the client before closing.
    #[error("{0}")]
    Client(PgError),
}

impl From<ReadError> for HandshakeError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Closed => HandshakeError::Closed,
            ReadError::Io(e) => HandshakeError::Io(e),
            ReadError::Malformed(e) => violation(format!("invalid startup packet: {e}")),
        }
    }
}

fn violation(message: impl Into<String>) -> HandshakeError {
    HandshakeError::Client(PgError::fatal(SqlState::ProtocolViolation, message))
}

fn timed_out() -> HandshakeError {
    HandshakeError::Client(
        PgError::fatal(SqlState::ProtocolViolation, "connection setup did not finish in time")
            .with_hint("The gateway closes connections that stall before authenticating (server.handshake_timeout_seconds)."),
    )
}

async fn by_deadline<T>(
    deadline: Instant,
    f: impl std::future::Future<Output = Result<T, HandshakeError>>,
) -> Result<T, HandshakeError> {
    tokio::time::timeout_at(deadline, f)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

/// Reads one untagged startup-phase packet (length-prefixed) whole.
async fn read_packet<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
) -> Result<BytesMut, HandshakeError> {
    let len = match s.read_u32().await {
        Ok(n) => n as usize,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(HandshakeError::Closed)
        }
        Err(e) => return Err(e.into()),
    };
    if !(8..=MAX_STARTUP_PACKET).contains(&len) {
        return Err(violation(format!(
            "invalid length of startup packet: {len} bytes"
        )));
    }
    let mut buf = BytesMut::with_capacity(len);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    buf.resize(len, 0);
    s.read_exact(&mut buf[4..])
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => HandshakeError::Closed,
            _ => HandshakeError::Io(e),
        })?;
    Ok(buf)
}

/// Best-effort delivery of a final error; the connection is closing either way.
pub async fn send_error(stream: &mut PgStream, e: &PgError) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        stream.write_all(&e.to_bytes()).await?;
        stream.flush().await
    })
    .await;
}

async fn fail<T>(mut stream: PgStream, e: HandshakeError) -> Result<T, HandshakeError> {
    if let HandshakeError::Client(pe) = &e {
        send_error(&mut stream, pe).await;
    }
    Err(e)
}

/// Runs the pre-authentication part of the protocol on a fresh connection. Errors meant for the
/// client have been sent to it when this returns.
pub async fn open(
    tcp: TcpStream,
    tls: Option<&TlsAcceptor>,
    deadline: Instant,
) -> Result<Opening, HandshakeError> {
    let mut stream = PgStream::Plain(tcp);
    let ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    // At most: GSSENCRequest, SSLRequest, then the real packet.
    for _ in 0..3 {
        let mut packet = match by_deadline(deadline, read_packet(&mut stream)).await {
            Ok(p) => p,
            Err(e) => return fail(stream, e).await,
        };
        if SslRequest::is_ssl_request_packet(&packet) {
            match tls {
                Some(acceptor) if !stream.is_tls() => {
                    stream.write_all(b"S").await?;
                    let PgStream::Plain(tcp) = stream else {
                        return Err(HandshakeError::Closed);
                    };
                    let accepted = tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await;
                    stream = match accepted {
                        Ok(Ok(tls)) => PgStream::ServerTls(Box::new(tls)),
                        Ok(Err(e)) => return Err(HandshakeError::Tls(e)),
                        Err(_) => return Err(timed_out()),
                    };
                }
                _ => stream.write_all(b"N").await?,
            }
        } else if GssEncRequest::is_gss_enc_request_packet(&packet) {
            stream.write_all(b"N").await?;
        } else if CancelRequest::is_cancel_request_packet(&packet) {
            let req = match CancelRequest::decode(&mut packet, &ctx) {
                Ok(Some(r)) => r,
                _ => return fail(stream, violation("malformed cancel request")).await,
            };
            return match req.secret_key.as_i32() {
                Some(secret) => Ok(Opening::Cancel {
                    pid: req.pid,
                    secret,
                }),
                None => fail(stream, violation("cancel key of unsupported length")).await,
            };
        } else {
            return match parse_startup(packet, &ctx) {
                Ok((params, negotiate)) => {
                    if let Some(msg) = negotiate {
                        stream.write_all(&msg).await?;
                    }
                    Ok(Opening::Startup { stream, params })
                }
                Err(e) => fail(stream, e).await,
            };
        }
    }
    fail(
        stream,
        violation("too many negotiation requests before the startup message"),
    )
    .await
}

/// Decodes a StartupMessage; also returns a NegotiateProtocolVersion to send when the client
/// asked for more than 3.0 without extensions.
fn parse_startup(
    mut packet: BytesMut,
    ctx: &DecodeContext,
) -> Result<(BTreeMap<String, String>, Option<BytesMut>), HandshakeError> {
    let version = (&packet[4..8]).get_u32();
    if version >> 16 != 3 {
        return Err(HandshakeError::Client(PgError::fatal(
            SqlState::FeatureNotSupported,
            format!(
                "unsupported frontend protocol {}.{}: the gateway speaks 3.0",
                version >> 16,
                version & 0xffff
            ),
        )));
    }
    let startup = Startup::decode(&mut packet, ctx)
        .map_err(ReadError::from)?
        .ok_or_else(|| violation("truncated startup packet"))?;
    let (unsupported, params): (BTreeMap<_, _>, BTreeMap<_, _>) = startup
        .parameters
        .into_iter()
        .partition(|(k, _)| k.starts_with("_pq_."));
    let negotiate = (startup.protocol_number_minor > 0 || !unsupported.is_empty()).then(|| {
        let mut out = BytesMut::new();
        codec::encode(
            &mut out,
            &NegotiateProtocolVersion::new(0, unsupported.into_keys().collect()),
        );
        out
    });
    Ok((params, negotiate))
}

/// Asks for a cleartext password (the token) and returns it.
pub async fn read_password(
    stream: &mut PgStream,
    deadline: Instant,
) -> Result<String, HandshakeError> {
    let mut out = BytesMut::new();
    codec::encode(&mut out, &Authentication::CleartextPassword);
    stream.write_all(&out).await?;
    stream.flush().await?;
    let mut buf = BytesMut::new();
    let ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    let mut frame = by_deadline(deadline, async {
        Ok(codec::read_frame(stream, &mut buf, MAX_STARTUP_PACKET).await?)
    })
    .await?;
    if frame.first() != Some(&b'p') {
        return Err(violation("expected a password message"));
    }
    let msg = PasswordMessageFamily::decode(&mut frame, &ctx)
        .map_err(ReadError::from)?
        .ok_or_else(|| violation("truncated password message"))?;
    let password = msg
        .into_password()
        .map_err(|e| violation(format!("invalid password message: {e}")))?;
    Ok(password.password)
}
