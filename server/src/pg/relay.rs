//! The steady state of a session: bytes flow both ways between client and upstream, read
//! concurrently, forwarded as the same bytes they arrived in. Only frame headers are looked at
//! (plus the one-byte body of ReadyForQuery), so large rows and COPY data stream through without
//! being buffered whole.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::codec::{FrameError, FrameScanner};
use super::connections::Termination;
use super::error::{sqlstate, PgError};
use super::stream::{PgStream, WriteSide};

const READ_CHUNK: usize = 32 * 1024;
/// PostgreSQL's own ceiling for a single backend message.
const UPSTREAM_MESSAGE_LIMIT: usize = 1 << 30;

/// Relay settings from the config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_client_message: usize,
    pub idle_timeout: Option<Duration>,
}

/// Why the relay stopped.
#[derive(Debug)]
pub enum RelayEnd {
    /// The client sent Terminate or closed its socket.
    ClientClosed,
    /// The upstream closed; `reported` when it sent an ErrorResponse just before (e.g. FATAL on
    /// admin shutdown), so the client already knows why.
    UpstreamClosed {
        reported: bool,
    },
    ClientProtocol(FrameError),
    Idle(Duration),
    ClientIo(std::io::Error),
    UpstreamIo(std::io::Error),
    /// Ended from outside: an administrator, or the session behind the token was revoked.
    Terminated(Termination),
}

impl RelayEnd {
    /// The error to send the client, if it is still there to read one.
    pub fn client_error(&self, env: &str) -> Option<PgError> {
        match self {
            RelayEnd::ClientClosed
            | RelayEnd::ClientIo(_)
            | RelayEnd::UpstreamClosed { reported: true } => None,
            RelayEnd::UpstreamClosed { reported: false } | RelayEnd::UpstreamIo(_) => Some(
                PgError::fatal(
                    sqlstate::CONNECTION_FAILURE,
                    format!("lost the connection to the database of environment \"{env}\""),
                )
                .with_hint("The upstream closed or failed; reconnect to open a new session."),
            ),
            RelayEnd::ClientProtocol(FrameError::TooLarge { size, limit, .. }) => Some(
                PgError::fatal(
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    format!("message of {size} bytes exceeds the gateway's limit of {limit} bytes"),
                )
                .with_hint(
                    "Send smaller statements or parameters, or raise server.max_message_bytes.",
                ),
            ),
            RelayEnd::ClientProtocol(e) => Some(PgError::fatal(
                sqlstate::PROTOCOL_VIOLATION,
                format!("invalid frontend message: {e}"),
            )),
            RelayEnd::Terminated(t) => Some(PgError::fatal(t.code, t.message.clone())),
            RelayEnd::Idle(d) => Some(PgError::fatal(
                sqlstate::IDLE_SESSION_TIMEOUT,
                format!("terminating connection after {} seconds idle", d.as_secs()),
            )),
        }
    }
}

/// What both directions share: enough to tell idleness and the transaction state.
struct Activity {
    started: Instant,
    /// Milliseconds since `started` of the last client message.
    last_client_ms: AtomicU64,
    /// Requests (Query, Sync, FunctionCall) sent upstream whose ReadyForQuery has not come back.
    in_flight: AtomicI64,
    tx_status: AtomicU8,
}

impl Activity {
    fn touch(&self) {
        self.last_client_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Duration {
        self.started.elapsed().saturating_sub(Duration::from_millis(
            self.last_client_ms.load(Ordering::Relaxed),
        ))
    }
}

/// Traffic counters, for logs now and audit later.
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    pub client_bytes: u64,
    pub upstream_bytes: u64,
}

/// Relays until one side ends. Returns why, the client's write half (to report a final error)
/// and whether the client stream is at a message boundary (so such an error may be sent).
pub async fn run(
    client: PgStream,
    upstream: PgStream,
    limits: Limits,
    initial_status: u8,
    mut stop: tokio::sync::watch::Receiver<Option<Termination>>,
) -> (RelayEnd, WriteSide, bool, Traffic) {
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let activity = Activity {
        started: Instant::now(),
        last_client_ms: AtomicU64::new(0),
        in_flight: AtomicI64::new(0),
        tx_status: AtomicU8::new(initial_status),
    };
    let mut down_scanner = FrameScanner::default();
    let mut traffic = Traffic::default();
    let end = {
        let up = client_to_upstream(
            &mut cr,
            &mut uw,
            &activity,
            limits.max_client_message,
            &mut traffic.client_bytes,
        );
        let down = upstream_to_client(
            &mut ur,
            &mut cw,
            &activity,
            &mut down_scanner,
            &mut traffic.upstream_bytes,
        );
        tokio::select! {
            e = up => e,
            e = down => e,
            e = idle_watch(&activity, limits.idle_timeout) => e,
            e = terminated(&mut stop) => e,
        }
    };
    // Leave the upstream cleanly when we can; it frees the backend at once.
    let _ = uw.shutdown().await;
    (end, cw, down_scanner.at_boundary(), traffic)
}

async fn client_to_upstream<R, W>(
    client: &mut R,
    upstream: &mut W,
    activity: &Activity,
    limit: usize,
    bytes: &mut u64,
) -> RelayEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut scanner = FrameScanner::default();
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        match client.read_buf(&mut buf).await {
            Ok(0) => return RelayEnd::ClientClosed,
            Ok(n) => *bytes += n as u64,
            Err(e) => return RelayEnd::ClientIo(e),
        }
        activity.touch();
        let mut terminate = false;
        let ready = scanner.scan(
            &buf,
            limit,
            |_| false,
            |f| {
                match f.tag {
                    b'Q' | b'S' | b'F' => {
                        activity.in_flight.fetch_add(1, Ordering::Relaxed);
                    }
                    b'X' => terminate = true,
                    _ => {}
                }
                Ok::<(), FrameError>(())
            },
        );
        let ready = match ready {
            Ok(n) => n,
            Err(e) => return RelayEnd::ClientProtocol(e),
        };
        if ready > 0 {
            if let Err(e) = write_flush(upstream, &buf[..ready]).await {
                return RelayEnd::UpstreamIo(e);
            }
            buf.advance(ready);
        }
        if terminate {
            return RelayEnd::ClientClosed;
        }
    }
}

async fn upstream_to_client<R, W>(
    upstream: &mut R,
    client: &mut W,
    activity: &Activity,
    scanner: &mut FrameScanner,
    bytes: &mut u64,
) -> RelayEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut last_tag = 0u8;
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        match upstream.read_buf(&mut buf).await {
            Ok(0) => {
                return RelayEnd::UpstreamClosed {
                    reported: last_tag == b'E',
                }
            }
            Ok(n) => *bytes += n as u64,
            Err(e) => return RelayEnd::UpstreamIo(e),
        }
        let ready = scanner.scan(
            &buf,
            UPSTREAM_MESSAGE_LIMIT,
            |t| t == b'Z',
            |f| {
                last_tag = f.tag;
                if let (b'Z', Some(frame)) = (f.tag, f.bytes) {
                    activity.in_flight.fetch_sub(1, Ordering::Relaxed);
                    activity
                        .tx_status
                        .store(frame.get(5).copied().unwrap_or(b'I'), Ordering::Relaxed);
                }
                Ok::<(), FrameError>(())
            },
        );
        let ready = match ready {
            Ok(n) => n,
            Err(e) => return RelayEnd::UpstreamIo(std::io::Error::other(e)),
        };
        if ready > 0 {
            if let Err(e) = write_flush(client, &buf[..ready]).await {
                return RelayEnd::ClientIo(e);
            }
            buf.advance(ready);
        }
    }
}

async fn write_flush<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> std::io::Result<()> {
    w.write_all(data).await?;
    w.flush().await
}

async fn terminated(stop: &mut tokio::sync::watch::Receiver<Option<Termination>>) -> RelayEnd {
    loop {
        if let Some(t) = stop.borrow_and_update().clone() {
            return RelayEnd::Terminated(t);
        }
        if stop.changed().await.is_err() {
            // The registry is gone, so nobody can ask us to stop.
            return std::future::pending().await;
        }
    }
}

async fn idle_watch(activity: &Activity, timeout: Option<Duration>) -> RelayEnd {
    let Some(timeout) = timeout else {
        return std::future::pending().await;
    };
    let tick = (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        tokio::time::sleep(tick).await;
        if activity.in_flight.load(Ordering::Relaxed) <= 0 && activity.idle_for() >= timeout {
            return RelayEnd::Idle(timeout);
        }
    }
}
