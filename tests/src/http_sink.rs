//! A minimal HTTP endpoint for webhook-style deliveries: records each POST's event and signature
//! headers and its body, and answers 204. Used where the gateway is the HTTP client (approval
//! webhooks, the audit trail's collector sink).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Post {
    /// `X-Gatehouse-Event`, or empty.
    pub event: String,
    /// `X-Gatehouse-Signature`, or empty.
    pub signature: String,
    pub body: Vec<u8>,
}

pub type Posts = Arc<Mutex<Vec<Post>>>;

/// Listens on a free loopback port; returns it and the deliveries seen so far.
pub async fn start() -> (u16, Posts) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let got: Posts = Default::default();
    let store = got.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| l.strip_prefix(name))
                            .unwrap_or("")
                            .trim()
                            .to_string()
                    };
                    let len: usize = header("content-length:").parse().unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let post = Post {
                        event: header("x-gatehouse-event:"),
                        signature: header("x-gatehouse-signature:"),
                        body: buf[end + 4..end + 4 + len].to_vec(),
                    };
                    store.lock().unwrap_or_else(|p| p.into_inner()).push(post);
                    let _ = sock
                        .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                        .await;
                    return;
                }
            });
        }
    });
    (port, got)
}

/// `sha256=<hex>` HMAC of `body` under `secret`: what a signed delivery must carry.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
