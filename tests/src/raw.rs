//! A deliberately minimal PostgreSQL client over a raw socket, for tests that must send what no
//! real driver would (malformed packets, oversized messages) or read unsolicited errors.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawConn {
    pub stream: TcpStream,
}

/// A backend message: type byte and body.
#[derive(Debug)]
pub struct Msg {
    pub tag: u8,
    pub body: Vec<u8>,
}

impl Msg {
    /// A field (e.g. b'C' for SQLSTATE, b'M' for the message) of an ErrorResponse/NoticeResponse.
    pub fn field(&self, code: u8) -> Option<String> {
        let mut parts = self.body.split(|b| *b == 0);
        for p in parts.by_ref() {
            if p.first() == Some(&code) {
                return Some(String::from_utf8_lossy(&p[1..]).to_string());
            }
        }
        None
    }
}

pub fn startup_packet(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196608u32.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut p = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    p.extend(body);
    p
}

pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

impl RawConn {
    pub async fn connect(host: &str, port: u16) -> RawConn {
        RawConn {
            stream: TcpStream::connect((host, port)).await.expect("tcp connect"),
        }
    }

    /// Connects and authenticates with a token; returns once ReadyForQuery arrives.
    pub async fn login(host: &str, port: u16, user: &str, db: &str, token: &str) -> RawConn {
        Self::login_with(host, port, &[("user", user), ("database", db)], token)
            .await
            .unwrap_or_else(|e| panic!("login failed: {:?}", e.field(b'M')))
    }

    /// Like [`RawConn::login`] with any startup parameters; the ErrorResponse if refused.
    pub async fn login_with(
        host: &str,
        port: u16,
        params: &[(&str, &str)],
        token: &str,
    ) -> Result<RawConn, Msg> {
        let mut c = Self::connect(host, port).await;
        c.send(&startup_packet(params)).await;
        let m = c.read().await.expect("auth request");
        if m.tag == b'E' {
            return Err(m);
        }
        assert_eq!(m.tag, b'R', "{m:?}");
        let mut pw = token.as_bytes().to_vec();
        pw.push(0);
        c.send(&message(b'p', &pw)).await;
        loop {
            let m = c.read().await.expect("startup reply");
            match m.tag {
                b'Z' => return Ok(c),
                b'E' => return Err(m),
                _ => {}
            }
        }
    }

    /// Reads up to and including the next ReadyForQuery (or until EOF / 10 s of silence).
    pub async fn read_until_ready(&mut self) -> Vec<Msg> {
        let mut out = Vec::new();
        while let Some(m) = self.read().await {
            let done = m.tag == b'Z';
            out.push(m);
            if done {
                break;
            }
        }
        out
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Reads one message; `None` on EOF or after 10 s of silence.
    pub async fn read(&mut self) -> Option<Msg> {
        self.read_within(Duration::from_secs(10)).await
    }

    pub async fn read_within(&mut self, limit: Duration) -> Option<Msg> {
        tokio::time::timeout(limit, async {
            let tag = self.stream.read_u8().await.ok()?;
            let len = self.stream.read_u32().await.ok()? as usize;
            let mut body = vec![0; len.saturating_sub(4)];
            self.stream.read_exact(&mut body).await.ok()?;
            Some(Msg { tag, body })
        })
        .await
        .ok()
        .flatten()
    }

    /// Reads until an ErrorResponse (returned) or EOF (`None`).
    pub async fn read_error(&mut self) -> Option<Msg> {
        while let Some(m) = self.read().await {
            if m.tag == b'E' {
                return Some(m);
            }
        }
        None
    }

    /// Runs a simple query and returns the data rows' first column as text.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<String>, Msg> {
        let mut q = sql.as_bytes().to_vec();
        q.push(0);
        self.send(&message(b'Q', &q)).await;
        let mut rows = vec![];
        let mut err = None;
        while let Some(m) = self.read().await {
            match m.tag {
                b'D' => {
                    let len = i32::from_be_bytes([m.body[2], m.body[3], m.body[4], m.body[5]]);
                    rows.push(if len < 0 {
                        String::new()
                    } else {
                        String::from_utf8_lossy(&m.body[6..6 + len as usize]).to_string()
                    });
                }
                b'E' => err = Some(m),
                b'Z' => return err.map_or(Ok(rows), Err),
                _ => {}
            }
        }
        Err(Msg {
            tag: 0,
            body: b"Mconnection closed\0".to_vec(),
        })
    }
}

/// Extended-protocol messages, as bytes to send.
pub mod ext {
    use super::message;

    fn cstr(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(s);
        out.push(0);
    }

    pub fn parse(name: &str, sql: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        cstr(&mut b, name.as_bytes());
        cstr(&mut b, sql);
        b.extend_from_slice(&0i16.to_be_bytes());
        message(b'P', &b)
    }

    /// Bind of `stmt` to `portal` with no parameters and text results.
    pub fn bind(portal: &str, stmt: &str) -> Vec<u8> {
        let mut b = Vec::new();
        cstr(&mut b, portal.as_bytes());
        cstr(&mut b, stmt.as_bytes());
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        message(b'B', &b)
    }

    pub fn execute(portal: &str) -> Vec<u8> {
        let mut b = Vec::new();
        cstr(&mut b, portal.as_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        message(b'E', &b)
    }

    /// Close of a statement (`b'S'`) or portal (`b'P'`).
    pub fn close(kind: u8, name: &str) -> Vec<u8> {
        let mut b = vec![kind];
        cstr(&mut b, name.as_bytes());
        message(b'C', &b)
    }

    pub fn sync() -> Vec<u8> {
        message(b'S', &[])
    }

    pub fn query(sql: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        cstr(&mut b, sql);
        message(b'Q', &b)
    }

    /// A FunctionCall of `oid` with binary arguments and a binary result.
    pub fn function_call(oid: u32, args: &[&[u8]]) -> Vec<u8> {
        let mut b = oid.to_be_bytes().to_vec();
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&(args.len() as i16).to_be_bytes());
        for a in args {
            b.extend_from_slice(&(a.len() as i32).to_be_bytes());
            b.extend_from_slice(a);
        }
        b.extend_from_slice(&1i16.to_be_bytes());
        message(b'F', &b)
    }
}
