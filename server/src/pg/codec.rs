//! Wire framing: finding message boundaries in a byte stream without copying, and reading whole
//! pgwire messages during handshakes.
//!
//! After startup every PostgreSQL message is `tag:u8, len:u32 (including itself), body`. The
//! relay only needs boundaries and a few tags, so [`FrameScanner`] walks headers and lets bodies
//! it does not care about stream through, even when they are larger than the read buffer.

use bytes::{BufMut, BytesMut};
use pgwire::messages::{DecodeContext, Message};
use tokio::io::{AsyncRead, AsyncReadExt};

/// A framing problem in bytes received from one side.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("invalid message length {len} for message type '{}'", char::from(*.tag))]
    BadLength { tag: u8, len: u32 },
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { tag: u8, size: usize, limit: usize },
    #[error("invalid frontend message type {}", *.0)]
    UnknownType(u8),
}

/// What the scanner shows the caller about one frame.
pub struct FrameView<'a> {
    pub tag: u8,
    /// Where the frame starts in the scanned buffer.
    pub offset: usize,
    /// Whole frame length, tag included.
    pub total: usize,
    /// The complete frame, when the caller asked for it; `None` for streamed frames.
    pub bytes: Option<&'a [u8]>,
}

/// Walks frame headers across reads; remembers how much of a streamed frame is still to come.
#[derive(Debug, Default)]
pub struct FrameScanner {
    remaining: usize,
}

impl FrameScanner {
    /// True when the bytes handed out so far end exactly at a frame boundary, so a message of our
    /// own may be inserted into the stream.
    pub fn at_boundary(&self) -> bool {
        self.remaining == 0
    }

    /// Scans `buf`, calling `visit` once per frame header seen (with the whole frame when
    /// `wants_whole(tag)`), and returns how many leading bytes may be forwarded now.
    ///
    /// Bytes after the returned count are an incomplete header or an incomplete whole-frame;
    /// the caller keeps them and reads more.
    pub fn scan<E>(
        &mut self,
        buf: &[u8],
        limit: usize,
        wants_whole: impl Fn(u8) -> bool,
        mut visit: impl FnMut(FrameView<'_>) -> Result<(), E>,
    ) -> Result<usize, E>
    where
        E: From<FrameError>,
    {
        let mut pos = self.remaining.min(buf.len());
        self.remaining -= pos;
        while self.remaining == 0 && buf.len() - pos >= 5 {
            let tag = buf[pos];
            let len = u32::from_be_bytes([buf[pos + 1], buf[pos + 2], buf[pos + 3], buf[pos + 4]]);
            if len < 4 {
                return Err(FrameError::BadLength { tag, len }.into());
            }
            let total = len as usize + 1;
            if total > limit {
                return Err(FrameError::TooLarge {
                    tag,
                    size: total,
                    limit,
                }
                .into());
            }
            let avail = buf.len() - pos;
            if wants_whole(tag) {
                if avail < total {
                    break;
                }
                visit(FrameView {
                    tag,
                    offset: pos,
                    total,
                    bytes: Some(&buf[pos..pos + total]),
                })?;
                pos += total;
            } else {
                visit(FrameView {
                    tag,
                    offset: pos,
                    total,
                    bytes: None,
                })?;
                if avail >= total {
                    pos += total;
                } else {
                    self.remaining = total - avail;
                    pos = buf.len();
                }
            }
        }
        Ok(pos)
    }
}

/// Errors while reading one message during a handshake.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("connection closed")]
    Closed,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed message: {0}")]
    Malformed(#[from] pgwire::error::PgWireError),
}

/// Reads until `M` decodes from `buf` (which may already hold bytes) and returns it.
pub async fn read_message<M, S>(
    stream: &mut S,
    buf: &mut BytesMut,
    ctx: &DecodeContext,
) -> Result<M, ReadError>
where
    M: Message,
    S: AsyncRead + Unpin,
{
    loop {
        if let Some(m) = M::decode(buf, ctx)? {
            return Ok(m);
        }
        buf.reserve(1024);
        if stream.read_buf(buf).await? == 0 {
            return Err(ReadError::Closed);
        }
    }
}

/// Reads one complete tagged message's bytes (header included) into a fresh buffer.
pub async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    limit: usize,
) -> Result<BytesMut, ReadError> {
    loop {
        if buf.len() >= 5 {
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if len < 4 || len + 1 > limit {
                return Err(ReadError::Malformed(
                    pgwire::error::PgWireError::MessageTooLarge(len, limit),
                ));
            }
            if buf.len() > len {
                return Ok(buf.split_to(len + 1));
            }
        }
        buf.reserve(4096);
        if stream.read_buf(buf).await? == 0 {
            return Err(ReadError::Closed);
        }
    }
}

/// Appends a frontend message: `tag`, its length, then what `body` writes.
pub fn put_message(out: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_u8(tag);
    out.put_u32(0);
    body(out);
    let len = (out.len() - start - 1) as u32;
    out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
}

/// Appends one statement in the extended protocol: Parse and Bind of the unnamed statement and
/// portal (no parameters, text results), a Describe of the portal when the caller wants the
/// RowDescription, Execute of every row, and Sync. Parse refuses a second statement, so nothing
/// can ride along after a semicolon.
pub fn put_unnamed_query(out: &mut BytesMut, sql: &str, describe: bool) {
    put_message(out, b'P', |o| {
        o.put_u8(0);
        o.put_slice(sql.as_bytes());
        o.put_u8(0);
        o.put_u16(0);
    });
    put_message(out, b'B', |o| {
        o.put_slice(b"\0\0");
        o.put_u16(0);
        o.put_u16(0);
        o.put_u16(0);
    });
    if describe {
        put_message(out, b'D', |o| {
            o.put_u8(b'P');
            o.put_u8(0);
        });
    }
    put_message(out, b'E', |o| {
        o.put_u8(0);
        o.put_u32(0);
    });
    put_message(out, b'S', |_| {});
}

/// Encodes a pgwire message into `out`.
pub fn encode(out: &mut BytesMut, m: &impl Message) {
    // Encoding into a BytesMut only fails for values our own code builds wrongly (e.g. a key
    // longer than the protocol allows); none of the messages we send can.
    if let Err(e) = m.encode(out) {
        tracing::error!(error = %e, "failed to encode a protocol message");
    }
}

/// A frame with `tag` and `body`, for tests: what a peer would send.
#[cfg(test)]
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_message(&mut out, tag, |o| o.put_slice(body));
    out.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_bodies_and_waits_for_whole_frames() {
        let mut data = frame(b'D', &[1; 100]);
        data.extend(frame(b'Z', b"I"));
        let mut s = FrameScanner::default();
        let mut seen = vec![];
        // First read: header and part of the DataRow only.
        let n = s
            .scan::<FrameError>(
                &data[..50],
                1 << 20,
                |t| t == b'Z',
                |f| {
                    seen.push((f.tag, f.total, f.bytes.is_some()));
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(n, 50);
        assert!(!s.at_boundary());
        // Second read: the rest of the DataRow and three bytes of ReadyForQuery.
        let rest = &data[50..data.len() - 3];
        let n = s
            .scan::<FrameError>(
                rest,
                1 << 20,
                |t| t == b'Z',
                |f| {
                    seen.push((f.tag, f.total, f.bytes.is_some()));
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(n, 105 - 50);
        assert!(s.at_boundary());
        let n = s
            .scan::<FrameError>(
                &data[105..],
                1 << 20,
                |t| t == b'Z',
                |f| {
                    seen.push((f.tag, f.total, f.bytes.is_some()));
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(n, 6);
        assert_eq!(seen, vec![(b'D', 105, false), (b'Z', 6, true)]);
    }

    #[test]
    fn rejects_bad_and_oversized_lengths() {
        let mut s = FrameScanner::default();
        let bad = [b'Q', 0, 0, 0, 2];
        assert!(matches!(
            s.scan::<FrameError>(&bad, 100, |_| false, |_| Ok(())),
            Err(FrameError::BadLength { .. })
        ));
        let big = frame(b'Q', &[0; 200]);
        assert!(matches!(
            FrameScanner::default().scan::<FrameError>(&big, 100, |_| false, |_| Ok(())),
            Err(FrameError::TooLarge { size: 205, .. })
        ));
    }
}
