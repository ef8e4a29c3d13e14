//! Turning a presented secret into an [`Identity`]: service-account tokens from the config,
//! session tokens from the store, and local users' passwords (argon2).
//!
//! Failures never say whether an account exists: an unknown user and a wrong password give the
//! same [`AuthError::InvalidCredentials`].

use std::collections::HashMap;

use argon2::{Argon2, PasswordHash, PasswordVerifier};

use super::tokens::{self, SESSION_PREFIX};
use super::{Identity, IdentityKind};
use crate::config::{ServiceAccountConfig, UserConfig};
use crate::store::{SessionLookup, SessionRecord, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("the session has expired")]
    Expired,
    #[error("the session has been revoked")]
    Revoked,
    #[error("the credential store is unavailable: {0}")]
    Store(#[from] StoreError),
}

struct ServiceAccount {
    name: String,
    token_sha256: [u8; 32],
    groups: Vec<String>,
    on_behalf_of: Option<String>,
}

struct LocalUser {
    password_phc: String,
    groups: Vec<String>,
}

/// A session token handed out by a login.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub token: String,
    pub session_id: String,
    pub expires_at: i64,
}

pub struct Authenticator {
    service_accounts: Vec<ServiceAccount>,
    users: HashMap<String, LocalUser>,
    store: Store,
    session_ttl_seconds: i64,
    /// Verified against when a user is unknown, so both paths cost one argon2 verification.
    dummy_phc: String,
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Authenticator {
    pub fn new(
        service_accounts: &[ServiceAccountConfig],
        users: &[UserConfig],
        store: Store,
        session_ttl_seconds: u64,
    ) -> Self {
        let service_accounts = service_accounts
            .iter()
            .filter_map(|sa| {
                let mut h = [0u8; 32];
                hex::decode_to_slice(sa.token_sha256.get_ref(), &mut h).ok()?;
                Some(ServiceAccount {
                    name: sa.name.get_ref().clone(),
                    token_sha256: h,
                    groups: sa.groups.clone(),
                    on_behalf_of: sa.on_behalf_of.clone(),
                })
            })
            .collect();
        let users = users
            .iter()
            .map(|u| {
                (
                    u.name.get_ref().clone(),
                    LocalUser {
                        password_phc: u.password_argon2.get_ref().clone(),
                        groups: u.groups.clone(),
                    },
                )
            })
            .collect();
        Self {
            service_accounts,
            users,
            store,
            session_ttl_seconds: session_ttl_seconds as i64,
            dummy_phc: hash_password("gatehouse-dummy-password").unwrap_or_default(),
        }
    }

    /// Resolves a bearer token (service-account or session) to its identity.
    pub async fn authenticate_token(&self, token: &str) -> Result<Identity, AuthError> {
        let digest = tokens::sha256(token);
        if token.starts_with(SESSION_PREFIX) {
            return match self.store.lookup_session(digest, now()).await? {
                SessionLookup::Active(rec) => Ok(Identity {
                    name: rec.identity,
                    kind: if rec.kind == "agent" {
                        IdentityKind::Agent
                    } else {
                        IdentityKind::Human
                    },
                    groups: rec.groups,
                    on_behalf_of: None,
                    session_id: Some(rec.id),
                }),
                SessionLookup::Expired => Err(AuthError::Expired),
                SessionLookup::Revoked => Err(AuthError::Revoked),
                SessionLookup::Unknown => Err(AuthError::InvalidCredentials),
            };
        }
        // Compare against every account so timing does not reveal which one matched.
        let mut found = None;
        for sa in &self.service_accounts {
            if tokens::digest_eq(&digest, &sa.token_sha256) {
                found = Some(sa);
            }
        }
        let sa = found.ok_or(AuthError::InvalidCredentials)?;
        Ok(Identity {
            name: sa.name.clone(),
            kind: IdentityKind::Agent,
            groups: sa.groups.clone(),
            on_behalf_of: sa.on_behalf_of.clone(),
            session_id: None,
        })
    }

    /// Checks a local user's password. Runs argon2, so call it off the async runtime.
    pub fn verify_password(&self, username: &str, password: &str) -> Result<Identity, AuthError> {
        let user = self.users.get(username);
        let phc = user
            .map(|u| u.password_phc.as_str())
            .unwrap_or(&self.dummy_phc);
        let ok = PasswordHash::new(phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        match (ok, user) {
            (true, Some(u)) => Ok(Identity {
                name: username.to_string(),
                kind: IdentityKind::Human,
                groups: u.groups.clone(),
                on_behalf_of: None,
                session_id: None,
            }),
            _ => Err(AuthError::InvalidCredentials),
        }
    }

    /// Creates a session for `identity` and returns its token (shown once; only its hash is kept).
    pub async fn issue_session(&self, identity: &Identity) -> Result<IssuedSession, AuthError> {
        let token = tokens::generate(SESSION_PREFIX);
        let created_at = now();
        let record = SessionRecord {
            id: tokens::random_id(),
            identity: identity.name.clone(),
            kind: identity.kind.as_str().to_string(),
            groups: identity.groups.clone(),
            created_at,
            expires_at: created_at + self.session_ttl_seconds,
        };
        let issued = IssuedSession {
            token: token.clone(),
            session_id: record.id.clone(),
            expires_at: record.expires_at,
        };
        self.store
            .insert_session(tokens::sha256(&token), record)
            .await?;
        Ok(issued)
    }

    /// Revokes the session behind `token`; true if it was active.
    pub async fn revoke(&self, token: &str) -> Result<bool, AuthError> {
        Ok(self
            .store
            .revoke_session(tokens::sha256(token), now())
            .await?)
    }
}

/// Hashes a password into an argon2id PHC string (for `[[users]]` entries).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn authenticator() -> Authenticator {
        let phc = hash_password("pw").unwrap();
        let text = format!(
            r#"
[[service_accounts]]
name = "bot"
token_sha256 = "{}"
groups = ["agents"]
on_behalf_of = "alice"

[[users]]
name = "admin"
password_argon2 = "{phc}"
groups = ["admins"]
"#,
            tokens::sha256_hex("gha_secret")
        );
        let c = Config::parse(&text, Path::new("t.toml")).unwrap();
        Authenticator::new(
            &c.service_accounts,
            &c.users,
            Store::open_in_memory().unwrap(),
            60,
        )
    }

    #[tokio::test]
    async fn service_account_tokens() {
        let a = authenticator();
        let id = a.authenticate_token("gha_secret").await.unwrap();
        assert_eq!(
            (id.name.as_str(), id.kind, id.on_behalf_of.as_deref()),
            ("bot", IdentityKind::Agent, Some("alice"))
        );
        assert!(matches!(
            a.authenticate_token("gha_wrong").await,
            Err(AuthError::InvalidCredentials)
        ));
    }

    #[tokio::test]
    async fn passwords_sessions_and_revocation() {
        let a = authenticator();
        assert!(matches!(
            a.verify_password("admin", "nope"),
            Err(AuthError::InvalidCredentials)
        ));
        assert!(matches!(
            a.verify_password("ghost", "pw"),
            Err(AuthError::InvalidCredentials)
        ));
        let id = a.verify_password("admin", "pw").unwrap();
        let s = a.issue_session(&id).await.unwrap();
        let back = a.authenticate_token(&s.token).await.unwrap();
        assert_eq!(
            (back.name.as_str(), back.groups.clone()),
            ("admin", vec!["admins".to_string()])
        );
        assert!(a.revoke(&s.token).await.unwrap());
        assert!(matches!(
            a.authenticate_token(&s.token).await,
            Err(AuthError::Revoked)
        ));
        assert!(matches!(
            a.authenticate_token("ghs_unknown").await,
            Err(AuthError::InvalidCredentials)
        ));
    }
}
