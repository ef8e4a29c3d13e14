//! A logged-in session: where the gateway is, who we are, the token pair and when it runs out,
//! and how to trust the gateway's TLS certificate. Pure data plus the freshness rules; storing
//! it is `store.rs`, renewing it is `handle.rs`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How the tunnel decides the gateway's PostgreSQL-port certificate is the right one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Trust {
    /// Public web roots (webpki) and the gateway's host name.
    WebPki,
    /// A CA (or the gateway's own self-signed certificate) given at login, as PEM, plus the
    /// host name check.
    Ca { pem: String },
    /// Exactly this end-entity certificate (hex sha256 of its DER), whatever its issuer or
    /// names: trust on first use for a self-signed gateway, or a pin given with
    /// `--tls-fingerprint`. The handshake signature is still checked against its key.
    Pinned { sha256: String },
    /// No verification at all (`--insecure`); the token is still encrypted but could be
    /// intercepted by anyone on the path.
    Insecure,
}

/// How the session was obtained (shown by `whoami`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginMethod {
    Sso,
    Password,
    ServiceToken,
}

/// Everything needed to talk to one gateway as one identity.
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    /// Base URL of the gateway's HTTP API, without a trailing slash.
    pub gateway: String,
    /// `HOST:PORT` of the gateway's PostgreSQL listener.
    pub postgres: String,
    pub trust: Trust,
    /// The identity name (the `user` the gateway expects in the startup message).
    pub identity: String,
    pub method: LoginMethod,
    pub token: String,
    /// When the access token stops working; `None` for service-account tokens.
    pub expires_at: Option<DateTime<Utc>>,
    pub refresh_token: Option<String>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    /// When we received the current token (our clock), to size the refresh margin.
    pub issued_at: DateTime<Utc>,
}

impl std::fmt::Debug for Session {
    // Tokens never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("gateway", &self.gateway)
            .field("postgres", &self.postgres)
            .field("identity", &self.identity)
            .field("method", &self.method)
            .field("expires_at", &self.expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish_non_exhaustive()
    }
}

/// Refresh no earlier than this before expiry for long sessions...
const MAX_MARGIN_SECS: i64 = 300;

impl Session {
    /// True when the access token should be renewed now: within five minutes of expiry, or in
    /// the last quarter of its life for short-lived tokens.
    pub fn needs_refresh(&self, now: DateTime<Utc>) -> bool {
        match self.expires_at {
            None => false,
            Some(exp) => now >= exp - chrono::Duration::seconds(self.margin_secs(exp)),
        }
    }

    fn margin_secs(&self, exp: DateTime<Utc>) -> i64 {
        let life = (exp - self.issued_at).num_seconds().max(0);
        (life / 4).min(MAX_MARGIN_SECS)
    }

    /// When [`Session::needs_refresh`] turns true (None: never).
    pub fn refresh_due(&self) -> Option<DateTime<Utc>> {
        self.expires_at
            .map(|exp| exp - chrono::Duration::seconds(self.margin_secs(exp)))
    }

    /// True when the access token is past its expiry.
    pub fn access_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|exp| now >= exp)
    }

    /// True when a refresh could still work (a refresh token that has not run out).
    pub fn can_refresh(&self, now: DateTime<Utc>) -> bool {
        self.refresh_token.is_some() && self.refresh_expires_at.is_none_or(|exp| now < exp)
    }

    /// True when neither the access token nor a refresh can work any more.
    pub fn is_dead(&self, now: DateTime<Utc>) -> bool {
        self.access_expired(now) && !self.can_refresh(now)
    }

    /// The error that says this session is over.
    pub fn expired_error(&self) -> crate::Error {
        crate::Error::SessionExpired {
            identity: self.identity.clone(),
            gateway: self.gateway.clone(),
        }
    }

    /// The host part of `postgres` (for SNI and certificate names).
    pub fn postgres_host(&self) -> &str {
        host_of(&self.postgres)
    }
}

/// The host of a `HOST:PORT` (IPv6 in brackets allowed).
pub fn host_of(addr: &str) -> &str {
    let host = match addr.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => addr,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// True for names that can only mean this machine.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(issued: i64, expires: Option<i64>) -> Session {
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        Session {
            gateway: "http://g".into(),
            postgres: "g:7432".into(),
            trust: Trust::WebPki,
            identity: "ana".into(),
            method: LoginMethod::Password,
            token: "t".into(),
            expires_at: expires.map(t),
            refresh_token: Some("r".into()),
            refresh_expires_at: None,
            issued_at: t(issued),
        }
    }

    #[test]
    fn long_sessions_refresh_five_minutes_before_expiry() {
        let s = session(0, Some(43_200));
        let t = |x| DateTime::from_timestamp(x, 0).unwrap();
        assert!(!s.needs_refresh(t(43_200 - 301)));
        assert!(s.needs_refresh(t(43_200 - 300)));
    }

    #[test]
    fn short_sessions_refresh_in_their_last_quarter() {
        let s = session(0, Some(8));
        let t = |x| DateTime::from_timestamp(x, 0).unwrap();
        assert!(!s.needs_refresh(t(5)));
        assert!(s.needs_refresh(t(6)));
    }

    #[test]
    fn service_tokens_never_expire_here() {
        let s = session(0, None);
        assert!(!s.needs_refresh(Utc::now()));
        assert!(!s.is_dead(Utc::now()));
    }

    #[test]
    fn hosts() {
        assert_eq!(host_of("127.0.0.1:7432"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7432"), "::1");
        assert_eq!(host_of("db.example.com"), "db.example.com");
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("::1"));
        assert!(!is_loopback_host("10.0.0.1"));
    }
}
