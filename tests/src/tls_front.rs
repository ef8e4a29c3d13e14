//! A TLS-terminating front for the gateway's HTTP listener, as a reverse proxy in front of a
//! real deployment would be: `https://127.0.0.1:PORT` with a certificate made for the test,
//! each connection's bytes passed to the gateway unchanged. It lets a test see what a browser
//! sees when the console is served over https (cookies marked `Secure`, and still used).

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

/// A running front; it stops when dropped.
pub struct TlsFront {
    pub port: u16,
    /// The self-signed certificate (PEM) that clients must trust.
    pub cert_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    /// Listens on `port` (e.g. one reserved with [`crate::free_port`] before the gateway was
    /// configured with it) and forwards to `127.0.0.1:backend_port`.
    pub async fn start(port: u16, backend_port: u16) -> TlsFront {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cert =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".into()])
                .expect("a test certificate");
        let cert_pem = cert.cert.pem();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .expect("TLS config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the TLS front");
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut backend) = TcpStream::connect(("127.0.0.1", backend_port)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut backend).await;
                });
            }
        });
        TlsFront {
            port,
            cert_pem,
            task,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// A browser-like client (cookie jar) that trusts this front's certificate.
    pub fn browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.cert_pem.as_bytes()).expect("certificate"),
            )
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("https client")
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
