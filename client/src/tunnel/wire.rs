//! The few PostgreSQL wire messages the tunnel must understand: the untagged startup-phase
//! packets (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage), the backend's
//! authentication requests and ErrorResponse, and the PasswordMessage and ErrorResponse it
//! writes itself. Everything after authentication is relayed as bytes and never parsed.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Startup packets larger than this are refused, as PostgreSQL does.
pub const MAX_STARTUP_PACKET: usize = 10_000;
/// Backend messages during authentication larger than this are a protocol violation.
pub const MAX_AUTH_MESSAGE: usize = 64 * 1024;

pub const SSL_REQUEST_CODE: u32 = 80_877_103;
pub const GSSENC_REQUEST_CODE: u32 = 80_877_104;
pub const CANCEL_REQUEST_CODE: u32 = 80_877_102;

/// One untagged packet from the local client.
#[derive(Debug, PartialEq, Eq)]
pub enum Opening {
    SslRequest,
    GssEncRequest,
    /// The whole 16-byte packet, forwarded unchanged.
    Cancel(Vec<u8>),
    Startup {
        version: u32,
        params: Vec<(String, String)>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("protocol violation: {0}")]
    Malformed(String),
}

fn malformed(s: impl Into<String>) -> WireError {
    WireError::Malformed(s.into())
}

fn eof(e: std::io::Error) -> WireError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        WireError::Closed
    } else {
        WireError::Io(e)
    }
}

/// Reads one untagged startup-phase packet, exactly (nothing beyond it is consumed).
pub async fn read_opening<R: AsyncRead + Unpin>(r: &mut R) -> Result<Opening, WireError> {
    let len = r.read_u32().await.map_err(eof)? as usize;
    if !(8..=MAX_STARTUP_PACKET).contains(&len) {
        return Err(malformed(format!("invalid startup packet length {len}")));
    }
    let mut body = vec![0u8; len - 4];
    r.read_exact(&mut body).await.map_err(eof)?;
    parse_opening(len, &body)
}

/// Parses a packet whose length field said `len` and whose remaining bytes are `body`.
pub fn parse_opening(len: usize, body: &[u8]) -> Result<Opening, WireError> {
    let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    match code {
        SSL_REQUEST_CODE if len == 8 => Ok(Opening::SslRequest),
        GSSENC_REQUEST_CODE if len == 8 => Ok(Opening::GssEncRequest),
        CANCEL_REQUEST_CODE if len == 16 => {
            let mut pkt = (len as u32).to_be_bytes().to_vec();
            pkt.extend_from_slice(body);
            Ok(Opening::Cancel(pkt))
        }
        v if v >> 16 == 3 => Ok(Opening::Startup {
            version: v,
            params: parse_params(&body[4..])?,
        }),
        v => Err(malformed(format!(
            "unsupported frontend protocol {}.{}",
            v >> 16,
            v & 0xffff
        ))),
    }
}

fn parse_params(mut b: &[u8]) -> Result<Vec<(String, String)>, WireError> {
    let mut out = Vec::new();
    loop {
        let (k, rest) = cstr(b)?;
        if k.is_empty() {
            return Ok(out);
        }
        let (v, rest) = cstr(rest)?;
        out.push((k, v));
        b = rest;
    }
}

fn cstr(b: &[u8]) -> Result<(String, &[u8]), WireError> {
    let nul = b
        .iter()
        .position(|c| *c == 0)
        .ok_or_else(|| malformed("unterminated string in the startup packet"))?;
    let s =
        std::str::from_utf8(&b[..nul]).map_err(|_| malformed("startup parameter is not UTF-8"))?;
    Ok((s.to_string(), &b[nul + 1..]))
}

/// Encodes a StartupMessage.
pub fn startup_message(version: u32, params: &[(String, String)]) -> Vec<u8> {
    let mut b = vec![0, 0, 0, 0];
    b.extend_from_slice(&version.to_be_bytes());
    for (k, v) in params {
        b.extend_from_slice(k.as_bytes());
        b.push(0);
        b.extend_from_slice(v.as_bytes());
        b.push(0);
    }
    b.push(0);
    let len = b.len() as u32;
    b[..4].copy_from_slice(&len.to_be_bytes());
    b
}

/// Encodes a PasswordMessage carrying `password`.
pub fn password_message(password: &str) -> Vec<u8> {
    let mut b = vec![b'p'];
    b.extend_from_slice(&((4 + password.len() + 1) as u32).to_be_bytes());
    b.extend_from_slice(password.as_bytes());
    b.push(0);
    b
}

/// A FATAL ErrorResponse with SQLSTATE `code`, `message` and an optional hint.
pub fn error_response(code: &str, message: &str, hint: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    for (t, v) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(t);
        body.extend_from_slice(v.replace('\0', " ").as_bytes());
        body.push(0);
    }
    if let Some(h) = hint {
        body.push(b'H');
        body.extend_from_slice(h.replace('\0', " ").as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut b = vec![b'E'];
    b.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    b.extend(body);
    b
}

/// A whole tagged backend message: tag, and the full bytes (tag and length included).
pub struct Message {
    pub tag: u8,
    pub bytes: Vec<u8>,
}

impl Message {
    fn body(&self) -> &[u8] {
        &self.bytes[5..]
    }

    /// For an Authentication message ('R'), its request code (0 = ok, 3 = cleartext, ...).
    pub fn auth_code(&self) -> Option<u32> {
        let b = self.body();
        (self.tag == b'R' && b.len() >= 4).then(|| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// For an ErrorResponse/NoticeResponse, the value of field `field` (e.g. b'C', b'M').
    pub fn error_field(&self, field: u8) -> Option<String> {
        let mut b = self.body();
        while let Some((&t, rest)) = b.split_first() {
            if t == 0 {
                return None;
            }
            let nul = rest.iter().position(|c| *c == 0)?;
            if t == field {
                return Some(String::from_utf8_lossy(&rest[..nul]).into_owned());
            }
            b = &rest[nul + 1..];
        }
        None
    }
}

/// Reads one tagged backend message whole (bounded).
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> Result<Message, WireError> {
    let tag = r.read_u8().await.map_err(eof)?;
    let len = r.read_u32().await.map_err(eof)? as usize;
    if !(4..=MAX_AUTH_MESSAGE).contains(&len) {
        return Err(malformed(format!(
            "backend message {:?} of length {len}",
            tag as char
        )));
    }
    let mut bytes = Vec::with_capacity(len + 1);
    bytes.push(tag);
    bytes.extend_from_slice(&(len as u32).to_be_bytes());
    bytes.resize(len + 1, 0);
    r.read_exact(&mut bytes[5..]).await.map_err(eof)?;
    Ok(Message { tag, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn startup_round_trips() {
        let params = vec![
            ("user".to_string(), "ana".to_string()),
            ("database".to_string(), "prod".to_string()),
        ];
        let pkt = startup_message(196_608, &params);
        let mut r = pkt.as_slice();
        let o = read_opening(&mut r).await.unwrap();
        assert_eq!(
            o,
            Opening::Startup {
                version: 196_608,
                params
            }
        );
    }

    #[tokio::test]
    async fn requests_are_recognised() {
        let ssl = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        assert_eq!(
            read_opening(&mut ssl.as_slice()).await.unwrap(),
            Opening::SslRequest
        );
        let mut cancel = vec![0, 0, 0, 16];
        cancel.extend(CANCEL_REQUEST_CODE.to_be_bytes());
        cancel.extend([0, 0, 0, 1, 0, 0, 0, 2]);
        assert_eq!(
            read_opening(&mut cancel.as_slice()).await.unwrap(),
            Opening::Cancel(cancel.clone())
        );
        let bad = [0, 0, 0, 4];
        assert!(read_opening(&mut bad.as_slice()).await.is_err());
        let huge = [0, 1, 0, 0];
        assert!(read_opening(&mut huge.as_slice()).await.is_err());
    }

    #[tokio::test]
    async fn error_fields_are_read() {
        let e = error_response("28P01", "expired", Some("log in"));
        let m = read_message(&mut e.as_slice()).await.unwrap();
        assert_eq!(m.tag, b'E');
        assert_eq!(m.error_field(b'C').as_deref(), Some("28P01"));
        assert_eq!(m.error_field(b'M').as_deref(), Some("expired"));
        assert_eq!(m.error_field(b'H').as_deref(), Some("log in"));
        assert_eq!(m.error_field(b'D'), None);
    }

    #[test]
    fn password_message_is_framed() {
        let p = password_message("tok");
        assert_eq!(p, b"p\0\0\0\x08tok\0");
    }
}
