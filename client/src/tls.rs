//! TLS to the gateway's PostgreSQL port: building the rustls config for a [`Trust`], opening a
//! connection (`SSLRequest`, then the handshake), and probing the certificate at login to decide
//! how to trust it.
//!
//! The decision, made once at login and stored in the session:
//! - a certificate valid under the public web roots (or `--ca-cert`) is verified normally;
//! - `--tls-fingerprint` pins one certificate;
//! - a gateway on this machine (loopback) with its generated self-signed certificate is trusted
//!   on first use: its fingerprint is pinned, and a different certificate later is refused;
//! - any other certificate is refused with its fingerprint and what to do, unless the person
//!   confirms it at a terminal prompt (the CLI does that) or passes `--insecure`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{Error, Result};
use crate::session::Trust;

/// Time allowed for TCP connect plus TLS handshake to the gateway.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Hex sha256 of a DER certificate, as `openssl x509 -fingerprint -sha256` shows it (without
/// colons, lower case; colons and case are ignored when comparing).
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(der))
}

/// Normalizes a fingerprint typed by a person (`AB:CD:...` or `abcd...`).
pub fn normalize_fingerprint(s: &str) -> Result<String> {
    let hexs: String = s
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hexs.len() != 64 || !hexs.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::invalid(
            "TLS fingerprint",
            "expected 64 hex digits (sha256), colons allowed",
        ));
    }
    Ok(hexs)
}

fn roots(trust: &Trust) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match trust {
        Trust::Ca { pem } => {
            for c in rustls_pemfile::certs(&mut pem.as_bytes()) {
                let c = c.map_err(|e| Error::invalid("CA certificate", e.to_string()))?;
                roots
                    .add(c)
                    .map_err(|e| Error::invalid("CA certificate", e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(Error::invalid(
                    "CA certificate",
                    "no PEM certificate in the file",
                ));
            }
        }
        _ => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

/// The rustls client config for `trust`.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid("TLS settings", e.to_string()))?;
    let config = match trust {
        Trust::WebPki | Trust::Ca { .. } => builder
            .with_root_certificates(roots(trust)?)
            .with_no_client_auth(),
        Trust::Pinned { sha256 } => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier::pinned(sha256.clone())))
            .with_no_client_auth(),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier::recorder(None)))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// What [`Verifier`] checks of the certificate itself. Everything else (the handshake signature
/// made with the certificate's key) is the same for both, so it lives once in [`Verifier`].
#[derive(Debug)]
enum Check {
    /// Accepts exactly one certificate (by fingerprint, hex sha256); the handshake signature is
    /// still verified with its key, so a copied certificate without the key is useless.
    Pinned { sha256: String },
    /// Records the certificate it is shown and what normal verification (`webpki`, when given)
    /// thinks of it, and lets the handshake finish (signatures still checked). Used for the login
    /// probe and for `--insecure`.
    Record {
        webpki: Option<Arc<dyn ServerCertVerifier>>,
        seen: Mutex<Option<(String, bool)>>,
    },
}

/// The client's one custom certificate verifier: `check` decides about the certificate, and the
/// handshake signatures are always verified with the provider's algorithms, whatever `check`
/// says, so accepting a certificate never means accepting a peer without its private key.
#[derive(Debug)]
struct Verifier {
    check: Check,
    provider: Arc<CryptoProvider>,
}

impl Verifier {
    fn pinned(sha256: String) -> Self {
        Verifier {
            check: Check::Pinned { sha256 },
            provider: provider(),
        }
    }

    fn recorder(webpki: Option<Arc<dyn ServerCertVerifier>>) -> Self {
        Verifier {
            check: Check::Record {
                webpki,
                seen: Mutex::new(None),
            },
            provider: provider(),
        }
    }

    /// What a recording verifier saw: the fingerprint and whether normal verification accepted
    /// it. `None` before a handshake, and always for a pinned one (it records nothing).
    fn seen(&self) -> Option<(String, bool)> {
        match &self.check {
            Check::Record { seen, .. } => seen.lock().ok().and_then(|s| s.clone()),
            Check::Pinned { .. } => None,
        }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match &self.check {
            Check::Pinned { sha256 } => {
                let shown = fingerprint(end_entity);
                if shown == *sha256 {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::General(format!(
                        "the gateway's certificate changed (sha256 {shown}, pinned {sha256}); if the gateway's certificate was replaced on purpose, run `gatehouse login` again"
                    )))
                }
            }
            Check::Record { webpki, seen } => {
                let valid = webpki.as_ref().is_some_and(|v| {
                    v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                        .is_ok()
                });
                if let Ok(mut s) = seen.lock() {
                    *s = Some((fingerprint(end_entity), valid));
                }
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What the login probe saw at the gateway's PostgreSQL port.
#[derive(Debug, Clone)]
pub struct Probe {
    pub fingerprint: String,
    /// Valid under the public web roots (or the given CA) for the host name.
    pub verified: bool,
}

/// Connects to the gateway's PostgreSQL port, asks for TLS, and reports its certificate. No
/// token is sent.
pub async fn probe(addr: &str, host: &str, ca: Option<&Trust>) -> Result<Probe> {
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots(ca.unwrap_or(&Trust::WebPki))?),
        provider(),
    )
    .build()
    .map_err(|e| Error::invalid("TLS settings", e.to_string()))?;
    let recorder = Arc::new(Verifier::recorder(Some(webpki)));
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid("TLS settings", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let mut tls = connect_config(addr, host, Arc::new(config)).await?;
    let _ = tls.shutdown().await;
    let seen = recorder.seen();
    let (fingerprint, verified) = seen.ok_or_else(|| Error::Tls {
        addr: addr.into(),
        reason: "the gateway showed no certificate".into(),
    })?;
    Ok(Probe {
        fingerprint,
        verified,
    })
}

/// Opens a TLS connection to the gateway's PostgreSQL port with `trust`: TCP (no Nagle: the
/// tunnel relays small request/response messages), `SSLRequest`, handshake.
pub async fn connect(addr: &str, host: &str, trust: &Trust) -> Result<TlsStream<TcpStream>> {
    connect_config(addr, host, client_config(trust)?).await
}

async fn connect_config(
    addr: &str,
    host: &str,
    config: Arc<ClientConfig>,
) -> Result<TlsStream<TcpStream>> {
    let unreachable = |reason: String| Error::PostgresUnreachable {
        addr: addr.into(),
        reason,
    };
    let fut = async {
        let mut tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        tcp.write_all(&SSL_REQUEST)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let answer = tcp
            .read_u8()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if answer != b'S' {
            // The token travels as the password: never without TLS.
            return Err(Error::Tls {
                addr: addr.into(),
                reason: "the gateway does not offer TLS on this port; the tunnel will not send a token in plain text".into(),
            });
        }
        let name = ServerName::try_from(host.to_string()).map_err(|e| Error::Tls {
            addr: addr.into(),
            reason: format!("invalid host name {host:?}: {e}"),
        })?;
        TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| Error::Tls {
                addr: addr.into(),
                reason: e.to_string(),
            })
    };
    tokio::time::timeout(CONNECT_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| Err(unreachable("timed out".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_normalize() {
        let f = "AB:".repeat(31) + "AB";
        assert_eq!(normalize_fingerprint(&f).unwrap(), "ab".repeat(32));
        assert!(normalize_fingerprint("abc").is_err());
    }
}
