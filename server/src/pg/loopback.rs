//! A client session into the gateway's own PostgreSQL listener, for in-process callers that
//! must meet exactly the controls a psql session meets (the MCP server).
//!
//! The caller's token is the password and the environment the database, so authentication,
//! grants, classification, rules, approvals, masking, limits and audit all happen in the
//! ordinary session on the other end of the socket: this side adds no policy of its own, it
//! only speaks the protocol and collects a bounded result (a row cap, a cell cap) for callers
//! that want rows as values rather than a stream.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncWriteExt;

use super::codec::{self, ReadError};
use super::refusal_board::{RefusalBoard, RefusalSlot, Refused, REFUSALS_PARAM};
use super::session::{APPROVAL_WAIT_PARAM, MCP_APPLICATION, ON_BEHALF_OF_PARAM};
use super::stream::PgStream;
use super::upstream::{self, TargetError, UpstreamError, UpstreamTarget};
use super::wire::error_fields;

/// Largest message accepted from the gateway (a DataRow of wide values).
const MAX_FRAME: usize = 64 << 20;
/// Most notices kept per request (a loop of RAISE NOTICE must not fill memory).
const MAX_NOTICES: usize = 100;
/// Longest value kept per cell; longer ones are cut and the result flagged truncated.
pub const MAX_CELL_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    #[error("the gateway's PostgreSQL listener is not running yet")]
    NotListening,
    #[error("invalid loopback target: {0}")]
    Target(#[from] TargetError),
    /// The gateway refused the session (bad token, no grant, unknown environment…).
    #[error("{0}")]
    Refused(ServerError),
    #[error("cannot open a session on the gateway: {0}")]
    Connect(UpstreamError),
    #[error("the statement did not finish within {0} s")]
    Timeout(u64),
    #[error("the gateway closed the session")]
    Closed,
    #[error("i/o error talking to the gateway: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error from the gateway: {0}")]
    Protocol(String),
}

impl From<ReadError> for LoopbackError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Closed => LoopbackError::Closed,
            ReadError::Io(e) => LoopbackError::Io(e),
            ReadError::Malformed(e) => LoopbackError::Protocol(e.to_string()),
        }
    }
}

/// An `ErrorResponse` from the gateway (its own refusal or the database's error).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ServerError {
    pub sqlstate: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Set when the gateway refused the statement (rather than the database failing it): its
    /// decision, rule and approval, as data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refused>,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.sqlstate, self.message)
    }
}

impl ServerError {
    fn from_frame(frame: &[u8]) -> ServerError {
        let mut e = ServerError::default();
        for (k, v) in error_fields(frame) {
            match k {
                b'C' => e.sqlstate = v,
                b'M' => e.message = v,
                b'D' => e.detail = Some(v),
                b'H' => e.hint = Some(v),
                _ => {}
            }
        }
        e
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Column {
    pub name: String,
    /// PostgreSQL type OID (text-format values are converted by it).
    #[serde(skip)]
    pub type_oid: u32,
}

/// One statement's result: its columns, the rows kept, and how many there were in all.
#[derive(Debug, Default)]
pub struct ResultSet {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Option<String>>>,
    pub total_rows: u64,
    /// The command tag (`SELECT 3`, `DELETE 1`).
    pub tag: Option<String>,
}

/// Everything one request produced.
#[derive(Debug, Default)]
pub struct Reply {
    pub results: Vec<ResultSet>,
    pub notices: Vec<String>,
    pub error: Option<ServerError>,
    /// Rows or cell values were left out (row cap or cell cap).
    pub truncated: bool,
}

impl Reply {
    pub fn rows_kept(&self) -> usize {
        self.results.iter().map(|r| r.rows.len()).sum()
    }
}

/// Who opens the session, and how.
pub struct Opening<'a> {
    /// The gateway's PostgreSQL listener.
    pub addr: Option<SocketAddr>,
    /// TLS even on loopback (`server.require_tls`).
    pub tls: bool,
    pub user: &'a str,
    pub token: &'a str,
    pub environment: &'a str,
    pub on_behalf_of: Option<&'a str>,
    pub statement_timeout: Duration,
    /// Transactions default to read-only (for EXPLAIN and catalog reads).
    pub read_only: bool,
    pub connect_timeout: Duration,
    /// Where the session posts the gateway's refusals as data.
    pub refusals: &'a RefusalBoard,
}

pub struct LoopbackSession {
    stream: PgStream,
    buf: BytesMut,
    statement_timeout: Duration,
    refusals: std::sync::Arc<RefusalSlot>,
}

/// Opens a session as `o.user`; the gateway authenticates it like any other client.
pub async fn open(o: &Opening<'_>) -> Result<LoopbackSession, LoopbackError> {
    let mut addr = o.addr.ok_or(LoopbackError::NotListening)?;
    // A listener on every address is reached on loopback.
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    // The gateway takes tokens in the clear only from loopback peers (and never under
    // `require_tls`); a listener on another address is reached with TLS.
    let tls = o.tls || !addr.ip().is_loopback();
    let target = UpstreamTarget::gateway_itself(addr, o.user, o.token, o.environment, tls)?;
    let mut params = vec![
        ("application_name".to_string(), MCP_APPLICATION.to_string()),
        // The MCP server follows approvals itself, so the gateway must not hold the request.
        (APPROVAL_WAIT_PARAM.to_string(), "0".to_string()),
        (
            "statement_timeout".to_string(),
            o.statement_timeout.as_millis().to_string(),
        ),
        ("client_encoding".to_string(), "UTF8".to_string()),
    ];
    if o.read_only {
        params.push((
            "default_transaction_read_only".to_string(),
            "on".to_string(),
        ));
    }
    if let Some(p) = o.on_behalf_of {
        params.push((ON_BEHALF_OF_PARAM.to_string(), p.to_string()));
    }
    let (ticket, refusals) = o.refusals.open();
    params.push((REFUSALS_PARAM.to_string(), ticket));
    let up = upstream::connect(&target, &params, o.connect_timeout)
        .await
        .map_err(|e| match e {
            UpstreamError::Rejected { code, message } => LoopbackError::Refused(ServerError {
                sqlstate: code,
                message,
                ..Default::default()
            }),
            other => LoopbackError::Connect(other),
        })?;
    Ok(LoopbackSession {
        stream: up.stream,
        buf: BytesMut::new(),
        statement_timeout: o.statement_timeout,
        refusals,
    })
}

fn cstr(b: &[u8], pos: &mut usize) -> Option<String> {
    super::wire::cstr_at(b, pos).map(|s| String::from_utf8_lossy(s).into_owned())
}

fn row_description(frame: &[u8]) -> Option<Vec<Column>> {
    let fields = super::wire::row_description(frame)?;
    Some(
        fields
            .into_iter()
            .map(|f| Column {
                name: f.name,
                type_oid: f.type_oid,
            })
            .collect(),
    )
}

/// A DataRow's text values, each cut at [`MAX_CELL_BYTES`]; the flag says whether one was.
fn data_row(frame: &[u8]) -> Option<(Vec<Option<String>>, bool)> {
    let mut cut = false;
    let values = super::wire::data_row(frame)?
        .into_iter()
        .map(|v| {
            v.map(|bytes| {
                // A character split by the cut shows as U+FFFD; the value is flagged as cut.
                let keep = if bytes.len() > MAX_CELL_BYTES {
                    cut = true;
                    &bytes[..MAX_CELL_BYTES]
                } else {
                    bytes
                };
                String::from_utf8_lossy(keep).into_owned()
            })
        })
        .collect();
    Some((values, cut))
}

impl LoopbackSession {
    /// Runs `sql` with the simple protocol (several statements allowed, as in psql); keeps at
    /// most `max_rows` rows over all result sets.
    pub async fn query(&mut self, sql: &str, max_rows: usize) -> Result<Reply, LoopbackError> {
        let mut out = BytesMut::new();
        codec::put_message(&mut out, b'Q', |o| {
            o.put_slice(sql.as_bytes());
            o.put_u8(0);
        });
        self.exchange(out, max_rows).await
    }

    /// Runs exactly one statement with the extended protocol (Parse refuses a second one, so
    /// nothing can ride along after a semicolon).
    pub async fn query_one(&mut self, sql: &str, max_rows: usize) -> Result<Reply, LoopbackError> {
        let mut out = BytesMut::new();
        codec::put_unnamed_query(&mut out, sql, true);
        self.exchange(out, max_rows).await
    }

    /// Says goodbye so the gateway records a clean close.
    pub async fn close(mut self) {
        let mut out = BytesMut::new();
        codec::put_message(&mut out, b'X', |_| {});
        let _ = self.stream.write_all(&out).await;
        let _ = self.stream.shutdown().await;
    }

    async fn exchange(&mut self, out: BytesMut, max_rows: usize) -> Result<Reply, LoopbackError> {
        while self.refusals.take().is_some() {}
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        // The gateway's statement_timeout ends a long statement; this bounds the rest (a slow
        // upstream, a stuck connection) a little later.
        let limit = self.statement_timeout + Duration::from_secs(10);
        match tokio::time::timeout(limit, self.read_reply(max_rows)).await {
            Ok(r) => r,
            Err(_) => Err(LoopbackError::Timeout(limit.as_secs())),
        }
    }

    async fn read_reply(&mut self, max_rows: usize) -> Result<Reply, LoopbackError> {
        let mut reply = Reply::default();
        let mut current: Option<ResultSet> = None;
        let mut kept = 0usize;
        loop {
            let frame = codec::read_frame(&mut self.stream, &mut self.buf, MAX_FRAME).await?;
            let bad =
                || LoopbackError::Protocol(format!("malformed '{}' message", frame[0] as char));
            match frame[0] {
                b'T' => {
                    current = Some(ResultSet {
                        columns: row_description(&frame).ok_or_else(bad)?,
                        ..Default::default()
                    })
                }
                b'D' => {
                    let set = current.get_or_insert_with(ResultSet::default);
                    set.total_rows += 1;
                    if kept < max_rows {
                        let (values, cut) = data_row(&frame).ok_or_else(bad)?;
                        reply.truncated |= cut;
                        set.rows.push(values);
                        kept += 1;
                    } else {
                        reply.truncated = true;
                    }
                }
                b'C' => {
                    let mut pos = 5;
                    let mut set = current.take().unwrap_or_default();
                    set.tag = cstr(&frame, &mut pos);
                    reply.results.push(set);
                }
                b'I' => {
                    current = None;
                }
                b'E' => {
                    // Only the first error counts; a transaction aborted by it says nothing new.
                    if reply.error.is_none() {
                        let mut e = ServerError::from_frame(&frame);
                        // Each exchange is one decision, so at most one refusal stands for
                        // its first error; none means the database raised it.
                        e.refused = self.refusals.take();
                        reply.error = Some(e);
                    }
                    current = None;
                }
                // Notices past the bound fall to the catch-all below.
                b'N' if reply.notices.len() < MAX_NOTICES => {
                    reply.notices.push(ServerError::from_frame(&frame).message);
                }
                b'G' => {
                    // COPY … FROM STDIN: there is no client data to send.
                    let mut fail = BytesMut::new();
                    codec::put_message(&mut fail, b'f', |o| {
                        o.put_slice(b"COPY FROM STDIN is not available here; use INSERT");
                        o.put_u8(0);
                    });
                    self.stream.write_all(&fail).await?;
                    self.stream.flush().await?;
                }
                b'H' => {
                    current = Some(ResultSet {
                        columns: vec![Column {
                            name: "copy".into(),
                            type_oid: 25,
                        }],
                        ..Default::default()
                    });
                }
                b'd' => {
                    let set = current.get_or_insert_with(ResultSet::default);
                    set.total_rows += 1;
                    if kept < max_rows {
                        let line = String::from_utf8_lossy(&frame[5..])
                            .trim_end_matches('\n')
                            .to_string();
                        set.rows.push(vec![Some(line)]);
                        kept += 1;
                    } else {
                        reply.truncated = true;
                    }
                }
                b'Z' => return Ok(reply),
                // ParseComplete, BindComplete, NoData, CopyDone, ParameterStatus…
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_read_with_nulls_and_long_values_cut() {
        let mut f = BytesMut::new();
        codec::put_message(&mut f, b'D', |o| {
            o.put_u16(3);
            o.put_i32(2);
            o.put_slice(b"hi");
            o.put_i32(-1);
            let long = vec![b'x'; MAX_CELL_BYTES + 10];
            o.put_i32(long.len() as i32);
            o.put_slice(&long);
        });
        let (values, cut) = data_row(&f).unwrap();
        assert_eq!(values[0].as_deref(), Some("hi"));
        assert_eq!(values[1], None);
        assert_eq!(values[2].as_ref().unwrap().len(), MAX_CELL_BYTES);
        assert!(cut);
    }

    #[test]
    fn row_descriptions_give_names_and_types() {
        let mut f = BytesMut::new();
        codec::put_message(&mut f, b'T', |o| {
            o.put_u16(2);
            for (name, oid) in [("id", 23u32), ("email", 25)] {
                o.put_slice(name.as_bytes());
                o.put_u8(0);
                o.put_u32(0);
                o.put_u16(0);
                o.put_u32(oid);
                o.put_i16(-1);
                o.put_i32(-1);
                o.put_u16(0);
            }
        });
        let cols = row_description(&f).unwrap();
        assert_eq!(cols.len(), 2);
        assert_eq!((cols[1].name.as_str(), cols[1].type_oid), ("email", 25));
    }
}
