//! Logging in: single sign-on through the system browser (RFC 8252 loopback redirect with PKCE
//! S256, as the gateway's `/auth/oidc/start` offers), a local user's password, or a service
//! account's token. Each ends in a [`Session`] with the identity's name (from `whoami`) and the
//! TLS trust decision for the gateway's PostgreSQL port (see `tls.rs`).

use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use rand::RngCore;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::api::{normalize_base, ApiClient, TokenPair};
use crate::error::{Error, Result};
use crate::session::{host_of, is_loopback_host, LoginMethod, Session, Trust};
use crate::tls;

/// How long the browser part of an SSO login may take.
pub const SSO_TIMEOUT: Duration = Duration::from_secs(300);

/// How to trust the gateway's PostgreSQL-port certificate (see `tls.rs` for the policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustChoice {
    /// Public roots; else trust on first use for a loopback gateway; else ask.
    Auto,
    /// PEM of a CA or of the gateway's own certificate.
    Ca(String),
    /// A sha256 fingerprint to pin.
    Fingerprint(String),
    Insecure,
}

/// The credentials to log in with.
pub enum Credentials {
    /// SSO in the browser; `open` is called with the URL to show the person.
    Sso {
        open: Box<dyn FnOnce(&str) + Send>,
    },
    Password {
        username: String,
        password: String,
    },
    /// A service account's token (it does not expire on its own and cannot be refreshed).
    Token(String),
}

/// Where to log in.
#[derive(Debug, Clone)]
pub struct LoginTarget {
    /// The gateway's HTTP URL.
    pub gateway: String,
    /// `HOST:PORT` of its PostgreSQL listener; default: what the gateway announces
    /// (`GET /api/v1/info`), else the URL's host, port 7432.
    pub postgres: Option<String>,
    pub trust: TrustChoice,
}

/// What `login` needs from the person when a certificate is neither verifiable nor local:
/// `true` to trust it (the CLI asks at a terminal; the desktop app shows a dialog).
pub type ConfirmCertificate<'a> = &'a (dyn Fn(&tls::Probe) -> bool + Sync);

/// The outcome of a login.
pub struct LoggedIn {
    pub session: Session,
    /// Something the person should know (e.g. a certificate trusted on first use).
    pub notes: Vec<String>,
}

/// Logs in and returns the new session (not yet stored).
pub async fn login(
    target: &LoginTarget,
    creds: Credentials,
    confirm: ConfirmCertificate<'_>,
) -> Result<LoggedIn> {
    let gateway = normalize_base(&target.gateway)?;
    // Asked before the PostgreSQL port's certificate is looked at: the gateway says where that
    // port is. Its API is trusted as the person asked, a pin aside (it is the port's).
    let provisional = match &target.trust {
        TrustChoice::Ca(pem) => Trust::Ca { pem: pem.clone() },
        TrustChoice::Insecure => Trust::Insecure,
        TrustChoice::Auto | TrustChoice::Fingerprint(_) => Trust::WebPki,
    };
    let info = ApiClient::new(&gateway, &provisional)?.info().await?;
    if matches!(creds, Credentials::Sso { .. }) && info.as_ref().is_some_and(|i| !i.sso) {
        return Err(Error::NoSso { gateway });
    }
    let postgres = match (&target.postgres, info) {
        (Some(p), _) => p.clone(),
        (None, Some(info)) => info.postgres_address,
        (None, None) => default_postgres(&gateway)?,
    };
    let mut notes = Vec::new();
    let trust = resolve_trust(&postgres, &target.trust, confirm, &mut notes).await?;
    let api = ApiClient::new(&gateway, &trust)?;
    let (method, pair) = match creds {
        Credentials::Password { username, password } => (
            LoginMethod::Password,
            api.login_password(&username, &password).await?,
        ),
        Credentials::Sso { open } => (LoginMethod::Sso, sso(&api, open).await?),
        Credentials::Token(token) => (
            LoginMethod::ServiceToken,
            TokenPair {
                token,
                // Service tokens carry no expiry the client can see; a refusal says when.
                expires_at: chrono::DateTime::<Utc>::MAX_UTC,
                refresh_token: None,
                refresh_expires_at: None,
            },
        ),
    };
    let who = api.whoami(&pair.token).await?;
    let session = Session {
        gateway,
        postgres,
        trust,
        identity: who.name,
        method,
        expires_at: (method != LoginMethod::ServiceToken).then_some(pair.expires_at),
        token: pair.token,
        refresh_token: pair.refresh_token,
        refresh_expires_at: pair.refresh_expires_at,
        issued_at: Utc::now(),
    };
    Ok(LoggedIn { session, notes })
}

/// The gateway URL's host with the default PostgreSQL port.
pub fn default_postgres(gateway: &str) -> Result<String> {
    let u = url::Url::parse(gateway).map_err(|e| Error::invalid("gateway URL", e.to_string()))?;
    match u.host() {
        Some(url::Host::Ipv6(ip)) => Ok(format!("[{ip}]:7432")),
        Some(h) => Ok(format!("{h}:7432")),
        None => Err(Error::invalid("gateway URL", "no host")),
    }
}

/// Decides how to trust the gateway's certificate, probing it unless told exactly.
async fn resolve_trust(
    postgres: &str,
    choice: &TrustChoice,
    confirm: ConfirmCertificate<'_>,
    notes: &mut Vec<String>,
) -> Result<Trust> {
    let host = host_of(postgres).to_string();
    match choice {
        TrustChoice::Insecure => {
            notes.push("TLS certificate verification is OFF for this gateway (--insecure)".into());
            Ok(Trust::Insecure)
        }
        TrustChoice::Fingerprint(f) => Ok(Trust::Pinned {
            sha256: tls::normalize_fingerprint(f)?,
        }),
        TrustChoice::Ca(pem) => {
            let trust = Trust::Ca { pem: pem.clone() };
            let p = tls::probe(postgres, &host, Some(&trust)).await?;
            if p.verified {
                Ok(trust)
            } else if pem_contains(pem, &p.fingerprint) {
                // The file is the gateway's own (self-signed) certificate: pin it, since its
                // names may not include the host used to reach it.
                Ok(Trust::Pinned {
                    sha256: p.fingerprint,
                })
            } else {
                Err(Error::UntrustedCertificate {
                    addr: postgres.into(),
                    fingerprint: p.fingerprint,
                })
            }
        }
        TrustChoice::Auto => {
            let p = tls::probe(postgres, &host, None).await?;
            if p.verified {
                return Ok(Trust::WebPki);
            }
            if is_loopback_host(&host) || confirm(&p) {
                notes.push(format!(
                    "trusting the gateway's certificate at {postgres} (sha256 {}); a different certificate will be refused",
                    p.fingerprint
                ));
                return Ok(Trust::Pinned {
                    sha256: p.fingerprint,
                });
            }
            Err(Error::UntrustedCertificate {
                addr: postgres.into(),
                fingerprint: p.fingerprint,
            })
        }
    }
}

fn pem_contains(pem: &str, fingerprint: &str) -> bool {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .filter_map(std::result::Result::ok)
        .any(|c| tls::fingerprint(&c) == fingerprint)
}

fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A PKCE verifier and its S256 challenge (RFC 7636).
pub fn pkce() -> (String, String) {
    let verifier = random_b64(32);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Opens `url` in the person's browser for an SSO login: `GATEHOUSE_BROWSER` (a command that
/// is given the URL, or `none` to open nothing), else the platform's opener. Returns `Ok(false)`
/// when told to open nothing; an error says which program could not be started.
pub fn open_in_browser(url: &str) -> std::io::Result<bool> {
    let hook = std::env::var("GATEHOUSE_BROWSER").ok();
    if hook.as_deref() == Some("none") {
        return Ok(false);
    }
    let (program, args): (String, Vec<&str>) = match hook.as_deref() {
        Some(cmd) if !cmd.is_empty() => (cmd.to_string(), vec![]),
        _ if cfg!(target_os = "macos") => ("open".into(), vec![]),
        _ if cfg!(windows) => ("cmd".into(), vec!["/C", "start", ""]),
        _ => ("xdg-open".into(), vec![]),
    };
    std::process::Command::new(&program)
        .args(args)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|_| true)
        .map_err(|e| std::io::Error::new(e.kind(), format!("could not start {program}: {e}")))
}

/// The loopback SSO flow: listen on 127.0.0.1, send the browser to the gateway, wait for it to
/// come back with a code for our state, exchange the code with our verifier.
async fn sso(api: &ApiClient, open: Box<dyn FnOnce(&str) + Send>) -> Result<TokenPair> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Sso(format!("cannot listen on 127.0.0.1 for the redirect: {e}")))?;
    let port = listener.local_addr()?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let (verifier, challenge) = pkce();
    let state = random_b64(16);
    open(&api.sso_start_url(&redirect_uri, &challenge, &state));
    let code = tokio::time::timeout(SSO_TIMEOUT, wait_for_code(&listener, &state))
        .await
        .map_err(|_| {
            Error::Sso(format!(
                "no answer from the browser within {} minutes; run `gatehouse login` again",
                SSO_TIMEOUT.as_secs() / 60
            ))
        })??;
    api.exchange_code(&code, &verifier)
        .await
        .map_err(|e| match e {
            Error::Api { message, .. } => Error::Sso(message),
            other => other,
        })
}

/// Serves the redirect URI until a request with our state arrives.
async fn wait_for_code(listener: &TcpListener, state: &str) -> Result<String> {
    loop {
        let (mut sock, _) = listener.accept().await?;
        let target =
            match tokio::time::timeout(Duration::from_secs(10), read_target(&mut sock)).await {
                Ok(Some(t)) => t,
                _ => continue,
            };
        let Ok(url) = url::Url::parse(&format!("http://127.0.0.1{target}")) else {
            continue;
        };
        if url.path() != "/callback" {
            reply(
                &mut sock,
                404,
                "Not found",
                "This is Gatehouse's login listener.",
            )
            .await;
            continue;
        }
        let param = |k: &str| {
            url.query_pairs()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.into_owned())
        };
        if param("state").as_deref() != Some(state) {
            // Not the login we started (a stale tab, or someone else): keep waiting.
            reply(
                &mut sock,
                400,
                "Login not recognised",
                "This login was not started by this Gatehouse app.",
            )
            .await;
            continue;
        }
        if let Some(err) = param("error") {
            let why = param("error_description").unwrap_or(err);
            reply(&mut sock, 200, "Login failed", &why).await;
            return Err(Error::Sso(why));
        }
        let Some(code) = param("code") else {
            reply(&mut sock, 400, "Login failed", "The gateway sent no code.").await;
            return Err(Error::Sso("the gateway sent no code".into()));
        };
        reply(
            &mut sock,
            200,
            "Logged in to Gatehouse",
            "You can close this tab and go back to Gatehouse.",
        )
        .await;
        return Ok(code);
    }
}

/// The request target of an HTTP/1 request line, reading at most 8 KiB of headers.
async fn read_target(sock: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() + n > 8192 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) if target.starts_with('/') => Some(target.to_string()),
        _ => None,
    }
}

async fn reply(sock: &mut TcpStream, status: u16, title: &str, message: &str) {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1><p>{m}</p></body></html>",
        t = esc(title),
        m = esc(message)
    );
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        if status == 200 { "OK" } else { "Error" },
        body.len()
    );
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(body.as_bytes()).await;
    let _ = sock.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_pairs_match() {
        let (v, c) = pkce();
        assert!(v.len() >= 43);
        let expect = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(v.as_bytes()));
        assert_eq!(c, expect);
    }

    #[test]
    fn default_postgres_address_uses_the_url_host() {
        assert_eq!(
            default_postgres("https://gh.example.com").unwrap(),
            "gh.example.com:7432"
        );
        assert_eq!(default_postgres("http://[::1]:7480").unwrap(), "[::1]:7432");
    }
}
