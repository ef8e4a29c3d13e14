//! Turning a presented secret into an [`Identity`]: service-account tokens from the config,
//! session tokens from the store, and local users' passwords (argon2).
//!
//! Failures never say whether an account exists: an unknown user and a wrong password give the
//! same [`AuthError::InvalidCredentials`].

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use argon2::{Argon2, PasswordHash, PasswordVerifier};

use super::groups::GroupDirectory;
use super::lockout::{Lockout, Refusal};
use super::tokens::{self, REFRESH_PREFIX, SERVICE_ACCOUNT_PREFIX, SESSION_PREFIX};
use super::{Identity, IdentityKind};
use crate::config::{ServerConfig, ServiceAccountConfig, UserConfig};
use crate::store::{
    InsertOutcome, ServiceAccountRecord, SessionLookup, SessionRecord, SessionSummary, Store,
    StoreError,
};

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

/// Why a local-user login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("invalid username or password")]
    InvalidCredentials {
        /// This failure was the source address's last allowed one: every login from it is
        /// refused for this many seconds.
        address_limited: Option<i64>,
    },
    #[error("too many failed logins for this user; try again in {seconds} seconds")]
    LockedOut { seconds: i64 },
    #[error("too many failed logins from your address; try again in {seconds} seconds")]
    AddressLimited { seconds: i64 },
    #[error("the gateway cannot check logins right now: {0}")]
    Unavailable(#[from] StoreError),
}

/// Why an administrator's change to service accounts was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("an identity named `{0}` already exists")]
    NameTaken(String),
    #[error("no active service account with id `{0}`")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct ServiceAccount {
    name: String,
    token_sha256: [u8; 32],
    groups: Vec<String>,
    on_behalf_of: Option<String>,
}

/// Whom an agent that is not bound to a person may name as the one it acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MayActFor {
    Anyone,
    These(Vec<String>),
}

impl MayActFor {
    fn allows(&self, person: &str) -> bool {
        match self {
            MayActFor::Anyone => true,
            MayActFor::These(people) => people.iter().any(|p| p == person),
        }
    }
}

struct LocalUser {
    password_phc: String,
    groups: Vec<String>,
}

/// How a session was opened; recorded with it and shown to administrators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMethod {
    Password,
    Oidc,
}

impl SessionMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionMethod::Password => "password",
            SessionMethod::Oidc => "oidc",
        }
    }
}

/// A session token handed out by a login.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub token: String,
    /// Exchanged at `/api/v1/auth/refresh` for a new token pair; `None` when refresh is off.
    pub refresh_token: Option<String>,
    pub session_id: String,
    pub expires_at: i64,
    pub refresh_expires_at: Option<i64>,
}

/// What an administrator asks for when creating a service account.
#[derive(Debug, Clone)]
pub struct NewServiceAccount {
    pub name: String,
    pub kind: IdentityKind,
    pub groups: Vec<String>,
    pub on_behalf_of: Option<String>,
    pub description: Option<String>,
    pub expires_at: Option<i64>,
}

/// A service account as listed: from the config (read-only) or from the store.
#[derive(Debug, Clone)]
pub struct ServiceAccountView {
    pub record: ServiceAccountRecord,
    /// `config` or `api`.
    pub source: &'static str,
}

pub struct Authenticator {
    service_accounts: Vec<ServiceAccount>,
    users: HashMap<String, LocalUser>,
    /// Names of config identities, which API-created service accounts may not reuse.
    config_names: HashSet<String>,
    store: Store,
    session_ttl_seconds: i64,
    refresh_ttl_seconds: i64,
    lockout: Lockout,
    /// Verified against when a user is unknown, so both paths cost one argon2 verification.
    dummy_phc: String,
    /// API-managed group memberships, added to every identity this authenticator vouches for.
    groups: GroupDirectory,
    /// Config service accounts' `may_act_for`, by name (API-created accounts have none).
    may_act_for: HashMap<String, MayActFor>,
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Identity names appear in connection strings and `application_name`; keep them plain.
pub(super) fn valid_identity_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@+".contains(c))
}

impl Authenticator {
    pub fn new(
        service_accounts: &[ServiceAccountConfig],
        users: &[UserConfig],
        store: Store,
        server: &ServerConfig,
    ) -> Self {
        let config_members = service_accounts
            .iter()
            .flat_map(|sa| {
                sa.groups
                    .iter()
                    .map(|g| (g.clone(), sa.name.get_ref().clone()))
            })
            .chain(users.iter().flat_map(|u| {
                u.groups
                    .iter()
                    .map(|g| (g.clone(), u.name.get_ref().clone()))
            }))
            .collect();
        let config_names = service_accounts
            .iter()
            .map(|sa| sa.name.get_ref().clone())
            .chain(users.iter().map(|u| u.name.get_ref().clone()))
            .collect();
        let may_act_for = service_accounts
            .iter()
            .filter_map(|sa| {
                let people = sa.may_act_for.as_ref()?.get_ref();
                let rule = if people.iter().any(|p| p == "*") {
                    MayActFor::Anyone
                } else {
                    MayActFor::These(people.clone())
                };
                Some((sa.name.get_ref().clone(), rule))
            })
            .collect();
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
        let lockout = Lockout::new(
            server.login_max_failures,
            server.login_lockout_seconds,
            server.login_max_failures_per_address,
            store.clone(),
        );
        Self {
            service_accounts,
            users,
            config_names,
            store,
            session_ttl_seconds: server.session_ttl_seconds as i64,
            refresh_ttl_seconds: server.refresh_ttl_seconds as i64,
            lockout,
            dummy_phc: hash_password("gatehouse-dummy-password").unwrap_or_default(),
            groups: GroupDirectory::new(config_members),
            may_act_for,
        }
    }

    /// `identity` acting for `person`, as a wire startup parameter or an MCP header or argument
    /// names them. Only agents act for someone ([`Identity::acting_for`]); an agent bound to a
    /// person by its administrator acts for that person only; an agent that is not bound may
    /// name only the people its config `may_act_for` lists (`*`: anyone), because whoever an
    /// agent acts for is a requester of what it asks and may not decide it.
    pub fn acting_for(
        &self,
        identity: Identity,
        person: Option<&str>,
    ) -> Result<Identity, super::OnBehalfError> {
        let named = person.map(str::trim).filter(|p| !p.is_empty());
        if let Some(p) = named {
            let unbound_agent =
                identity.kind == IdentityKind::Agent && identity.on_behalf_of.is_none();
            if unbound_agent
                && !self
                    .may_act_for
                    .get(&identity.name)
                    .is_some_and(|m| m.allows(p))
            {
                return Err(super::OnBehalfError::NotAllowed {
                    identity: identity.name,
                    requested: p.to_string(),
                });
            }
        }
        identity.acting_for(named)
    }

    /// The API-managed group memberships.
    pub fn groups(&self) -> &GroupDirectory {
        &self.groups
    }

    /// Resolves a bearer token (service-account or session) to its identity, with the groups
    /// administrators added through the API as they are now.
    pub async fn authenticate_token(&self, token: &str) -> Result<Identity, AuthError> {
        Ok(self.with_memberships(self.token_identity_until(token).await?.0))
    }

    /// `identity` with the API-managed group memberships as they are at this moment.
    /// Together with [`Self::token_identity_until`] this is [`Self::authenticate_token`] split in
    /// two, so that an open connection can be asked again, after a membership changes, what
    /// the same token would be worth now.
    pub fn with_memberships(&self, mut identity: Identity) -> Identity {
        self.groups.merge_into(&mut identity);
        identity
    }

    /// The identity a token proves as it was issued (the groups its login, the config or the
    /// service account gave it, without API memberships: these do not change while the token
    /// lives, so a connection keeps them), and when the token stops being valid for good (Unix
    /// seconds): for a session token the session's absolute end (its refresh token's expiry,
    /// or its access token's when it has no refresh token; a refresh renews the access token
    /// but never moves that end), for an API service account its `expires_at`. A connection
    /// opened with the token keeps that as the time it must end. `None` for tokens that do not
    /// expire (config service accounts, API ones without an expiry), which a connection may
    /// use until they are rotated or revoked.
    pub async fn token_identity_until(
        &self,
        token: &str,
    ) -> Result<(Identity, Option<i64>), AuthError> {
        let digest = tokens::sha256(token);
        if token.starts_with(SESSION_PREFIX) {
            return match self.store.lookup_session(digest, now()).await? {
                SessionLookup::Active(rec) => Ok((
                    Identity {
                        name: rec.identity,
                        kind: IdentityKind::parse(&rec.kind),
                        groups: rec.groups,
                        on_behalf_of: None,
                        session_id: Some(rec.id),
                    },
                    Some(rec.refresh_expires_at.unwrap_or(rec.expires_at)),
                )),
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
        if let Some(sa) = found {
            let identity = Identity {
                name: sa.name.clone(),
                kind: IdentityKind::Agent,
                groups: sa.groups.clone(),
                on_behalf_of: sa.on_behalf_of.clone(),
                session_id: None,
            };
            return Ok((identity, None));
        }
        // API-created accounts: found by the hash of a 256-bit secret, so the index lookup
        // reveals nothing useful through its timing.
        let Some(sa) = self.store.service_account_by_token(digest).await? else {
            return Err(AuthError::InvalidCredentials);
        };
        if sa.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        if sa.expires_at.is_some_and(|t| t <= now()) {
            return Err(AuthError::Expired);
        }
        let identity = Identity {
            name: sa.name,
            kind: IdentityKind::parse(&sa.kind),
            groups: sa.groups,
            on_behalf_of: sa.on_behalf_of,
            session_id: None,
        };
        Ok((identity, sa.expires_at))
    }

    /// Checks a local user's password, with lockout after repeated failures for the user name
    /// and a limit on failures from one source address (see `lockout.rs`). Runs argon2 and
    /// reads the store, so call it off the async runtime.
    pub fn verify_password(
        &self,
        username: &str,
        password: &str,
        source: Option<IpAddr>,
    ) -> Result<Identity, LoginError> {
        let t = now();
        match self.lockout.refused(username, source, t)? {
            Some(Refusal::User { seconds }) => return Err(LoginError::LockedOut { seconds }),
            Some(Refusal::Address { seconds }) => {
                return Err(LoginError::AddressLimited { seconds })
            }
            None => {}
        }
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
            (true, Some(u)) => {
                self.lockout.succeeded(username);
                Ok(Identity {
                    name: username.to_string(),
                    kind: IdentityKind::Human,
                    groups: u.groups.clone(),
                    on_behalf_of: None,
                    session_id: None,
                })
            }
            _ => {
                let failed = self.lockout.failed(username, source, now())?;
                if let Some(seconds) = failed.address_limited {
                    tracing::warn!(
                        address = ?source,
                        seconds,
                        "logins refused from an address after repeated failures"
                    );
                }
                match failed.user_locked {
                    Some(seconds) => {
                        tracing::warn!(
                            user = username,
                            seconds,
                            "local user locked out after repeated failed logins"
                        );
                        Err(LoginError::LockedOut { seconds })
                    }
                    None => Err(LoginError::InvalidCredentials {
                        address_limited: failed.address_limited,
                    }),
                }
            }
        }
    }

    /// Creates a session for `identity` and returns its tokens (shown once; only their hashes
    /// are kept).
    pub async fn issue_session(
        &self,
        identity: &Identity,
        method: SessionMethod,
    ) -> Result<IssuedSession, AuthError> {
        let token = tokens::generate(SESSION_PREFIX);
        let created_at = now();
        let refresh = (self.refresh_ttl_seconds > 0).then(|| {
            (
                tokens::generate(REFRESH_PREFIX),
                created_at + self.refresh_ttl_seconds.max(self.session_ttl_seconds),
            )
        });
        let record = SessionRecord {
            id: tokens::random_id(),
            identity: identity.name.clone(),
            kind: identity.kind.as_str().to_string(),
            groups: identity.groups.clone(),
            created_at,
            expires_at: created_at + self.session_ttl_seconds,
            method: method.as_str().to_string(),
            refresh_expires_at: refresh.as_ref().map(|r| r.1),
        };
        let issued = IssuedSession {
            token: token.clone(),
            refresh_token: refresh.as_ref().map(|r| r.0.clone()),
            session_id: record.id.clone(),
            expires_at: record.expires_at,
            refresh_expires_at: record.refresh_expires_at,
        };
        self.store
            .insert_session(
                tokens::sha256(&token),
                refresh.as_ref().map(|r| tokens::sha256(&r.0)),
                record,
            )
            .await?;
        Ok(issued)
    }

    /// Exchanges a refresh token for a new access and refresh token; the old pair stops working.
    pub async fn refresh(&self, refresh_token: &str) -> Result<IssuedSession, AuthError> {
        if !refresh_token.starts_with(REFRESH_PREFIX) {
            return Err(AuthError::InvalidCredentials);
        }
        let token = tokens::generate(SESSION_PREFIX);
        let refresh = tokens::generate(REFRESH_PREFIX);
        let t = now();
        match self
            .store
            .refresh_session(
                tokens::sha256(refresh_token),
                tokens::sha256(&token),
                tokens::sha256(&refresh),
                t + self.session_ttl_seconds,
                t,
            )
            .await?
        {
            SessionLookup::Active(rec) => Ok(IssuedSession {
                token,
                refresh_token: Some(refresh),
                session_id: rec.id,
                expires_at: rec.expires_at,
                refresh_expires_at: rec.refresh_expires_at,
            }),
            SessionLookup::Expired => Err(AuthError::Expired),
            SessionLookup::Revoked => Err(AuthError::Revoked),
            SessionLookup::Unknown => Err(AuthError::InvalidCredentials),
        }
    }

    /// Revokes the session behind `token`; its id if it was active.
    pub async fn revoke(&self, token: &str) -> Result<Option<String>, AuthError> {
        Ok(self
            .store
            .revoke_session(tokens::sha256(token), now())
            .await?)
    }

    /// Revokes a session by id (an administrator's action); true if it was active.
    pub async fn revoke_session_id(&self, id: &str) -> Result<bool, AuthError> {
        Ok(self
            .store
            .revoke_session_by_id(id.to_string(), now())
            .await?)
    }

    pub async fn list_sessions(
        &self,
        identity: Option<String>,
        include_inactive: bool,
    ) -> Result<Vec<SessionSummary>, AuthError> {
        Ok(self
            .store
            .list_sessions(identity, include_inactive, now(), 1000)
            .await?)
    }

    /// Creates a service account; returns it and its token (shown once, stored hashed).
    pub async fn create_service_account(
        &self,
        req: NewServiceAccount,
        created_by: &str,
    ) -> Result<(ServiceAccountRecord, String), ManageError> {
        if !valid_identity_name(&req.name) {
            return Err(ManageError::Invalid(
                "`name` must be 1-128 characters of letters, digits and . _ - @ +".into(),
            ));
        }
        if req.expires_at.is_some_and(|t| t <= now()) {
            return Err(ManageError::Invalid("`expires_at` is in the past".into()));
        }
        if req.kind == IdentityKind::Human && req.on_behalf_of.is_some() {
            return Err(ManageError::Invalid(
                "`on_behalf_of` is for agents; a human service account acts for itself".into(),
            ));
        }
        if self.config_names.contains(&req.name) {
            return Err(ManageError::NameTaken(req.name));
        }
        let token = tokens::generate(SERVICE_ACCOUNT_PREFIX);
        let record = ServiceAccountRecord {
            id: tokens::random_id(),
            name: req.name.clone(),
            kind: req.kind.as_str().to_string(),
            groups: req.groups,
            on_behalf_of: req.on_behalf_of,
            description: req.description,
            created_at: now(),
            created_by: created_by.to_string(),
            rotated_at: None,
            expires_at: req.expires_at,
            revoked_at: None,
        };
        match self
            .store
            .insert_service_account(tokens::sha256(&token), record.clone())
            .await?
        {
            InsertOutcome::Inserted => Ok((record, token)),
            InsertOutcome::NameTaken => Err(ManageError::NameTaken(req.name)),
        }
    }

    /// Gives an active service account a new token; the old one stops working at once.
    pub async fn rotate_service_account(
        &self,
        id: &str,
        expires_at: Option<i64>,
    ) -> Result<(ServiceAccountRecord, String), ManageError> {
        if expires_at.is_some_and(|t| t <= now()) {
            return Err(ManageError::Invalid("`expires_at` is in the past".into()));
        }
        let token = tokens::generate(SERVICE_ACCOUNT_PREFIX);
        if !self
            .store
            .rotate_service_account(id.to_string(), tokens::sha256(&token), expires_at, now())
            .await?
        {
            return Err(ManageError::NotFound(id.to_string()));
        }
        let record = self
            .store
            .service_account(id.to_string())
            .await?
            .ok_or_else(|| ManageError::NotFound(id.to_string()))?;
        Ok((record, token))
    }

    /// Revokes an active service account; returns it (its name ends its connections).
    pub async fn revoke_service_account(
        &self,
        id: &str,
    ) -> Result<ServiceAccountRecord, ManageError> {
        if !self
            .store
            .revoke_service_account(id.to_string(), now())
            .await?
        {
            return Err(ManageError::NotFound(id.to_string()));
        }
        self.store
            .service_account(id.to_string())
            .await?
            .ok_or_else(|| ManageError::NotFound(id.to_string()))
    }

    /// Every service account: the config's (read-only) first, then the API's.
    pub async fn list_service_accounts(&self) -> Result<Vec<ServiceAccountView>, StoreError> {
        let mut out: Vec<ServiceAccountView> = self
            .service_accounts
            .iter()
            .map(|sa| ServiceAccountView {
                record: ServiceAccountRecord {
                    id: format!("config:{}", sa.name),
                    name: sa.name.clone(),
                    kind: IdentityKind::Agent.as_str().into(),
                    groups: sa.groups.clone(),
                    on_behalf_of: sa.on_behalf_of.clone(),
                    description: None,
                    created_at: 0,
                    created_by: "config".into(),
                    rotated_at: None,
                    expires_at: None,
                    revoked_at: None,
                },
                source: "config",
            })
            .collect();
        out.extend(
            self.store
                .list_service_accounts()
                .await?
                .into_iter()
                .map(|record| ServiceAccountView {
                    record,
                    source: "api",
                }),
        );
        Ok(out)
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

[[service_accounts]]
name = "helper"
token_sha256 = "{}"
groups = ["agents"]
may_act_for = ["bob"]

[[service_accounts]]
name = "loner"
token_sha256 = "{}"
groups = ["agents"]

[[users]]
name = "admin"
password_argon2 = "{phc}"
groups = ["admins"]
"#,
            tokens::sha256_hex("gha_secret"),
            tokens::sha256_hex("gha_helper"),
            tokens::sha256_hex("gha_loner"),
        );
        let c = Config::parse(&text, Path::new("t.toml")).unwrap();
        let server = crate::config::ServerConfig {
            session_ttl_seconds: 60,
            login_max_failures: 3,
            ..Default::default()
        };
        Authenticator::new(
            &c.service_accounts,
            &c.users,
            Store::open_in_memory().unwrap(),
            &server,
        )
    }

    #[tokio::test]
    async fn an_agent_names_only_the_people_its_config_allows() {
        let a = authenticator();
        let helper = a.authenticate_token("gha_helper").await.unwrap();
        let acting = a.acting_for(helper.clone(), Some("bob")).unwrap();
        assert_eq!(acting.on_behalf_of.as_deref(), Some("bob"));
        assert!(matches!(
            a.acting_for(helper.clone(), Some("carol")),
            Err(crate::identity::OnBehalfError::NotAllowed { .. })
        ));
        assert!(a.acting_for(helper, None).unwrap().on_behalf_of.is_none());
        assert!(matches!(
            a.acting_for(
                a.authenticate_token("gha_loner").await.unwrap(),
                Some("bob")
            ),
            Err(crate::identity::OnBehalfError::NotAllowed { .. })
        ));
        // Bound to alice: alice only, as before.
        let bot = a.authenticate_token("gha_secret").await.unwrap();
        assert!(a.acting_for(bot.clone(), Some("alice")).is_ok());
        assert!(matches!(
            a.acting_for(bot, Some("bob")),
            Err(crate::identity::OnBehalfError::Fixed { .. })
        ));
        let admin = a.verify_password("admin", "pw", None).unwrap();
        assert!(matches!(
            a.acting_for(admin, Some("bob")),
            Err(crate::identity::OnBehalfError::NotAnAgent(_))
        ));
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
            a.verify_password("admin", "nope", None),
            Err(LoginError::InvalidCredentials { .. })
        ));
        assert!(matches!(
            a.verify_password("ghost", "pw", None),
            Err(LoginError::InvalidCredentials { .. })
        ));
        let id = a.verify_password("admin", "pw", None).unwrap();
        let s = a.issue_session(&id, SessionMethod::Password).await.unwrap();
        let back = a.authenticate_token(&s.token).await.unwrap();
        assert_eq!(
            (back.name.as_str(), back.groups.clone()),
            ("admin", vec!["admins".to_string()])
        );
        assert_eq!(
            a.revoke(&s.token).await.unwrap(),
            Some(s.session_id.clone())
        );
        assert!(matches!(
            a.authenticate_token(&s.token).await,
            Err(AuthError::Revoked)
        ));
        assert!(matches!(
            a.authenticate_token("ghs_unknown").await,
            Err(AuthError::InvalidCredentials)
        ));
    }

    #[tokio::test]
    async fn refresh_rotates_and_lockout_holds_even_the_right_password() {
        let a = authenticator();
        let id = a.verify_password("admin", "pw", None).unwrap();
        let s = a.issue_session(&id, SessionMethod::Password).await.unwrap();
        let r = a
            .refresh(s.refresh_token.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(r.session_id, s.session_id);
        assert!(matches!(
            a.authenticate_token(&s.token).await,
            Err(AuthError::InvalidCredentials)
        ));
        assert!(a.authenticate_token(&r.token).await.is_ok());
        assert!(a
            .refresh(s.refresh_token.as_deref().unwrap())
            .await
            .is_err());
        assert!(a.revoke_session_id(&s.session_id).await.unwrap());
        assert!(matches!(
            a.authenticate_token(&r.token).await,
            Err(AuthError::Revoked)
        ));

        for _ in 0..2 {
            assert!(matches!(
                a.verify_password("admin", "x", None),
                Err(LoginError::InvalidCredentials { .. })
            ));
        }
        assert!(matches!(
            a.verify_password("admin", "x", None),
            Err(LoginError::LockedOut { .. })
        ));
        assert!(matches!(
            a.verify_password("admin", "pw", None),
            Err(LoginError::LockedOut { .. })
        ));
    }

    #[tokio::test]
    async fn api_service_accounts_rotate_and_revoke() {
        let a = authenticator();
        let req = NewServiceAccount {
            name: "reporter".into(),
            kind: IdentityKind::Agent,
            groups: vec!["agents".into()],
            on_behalf_of: Some("alice".into()),
            description: None,
            expires_at: None,
        };
        let mut clash = req.clone();
        clash.name = "bot".into();
        assert!(matches!(
            a.create_service_account(clash, "root").await,
            Err(ManageError::NameTaken(_))
        ));
        let (rec, token) = a.create_service_account(req, "root").await.unwrap();
        assert!(token.starts_with("gha_"));
        let id = a.authenticate_token(&token).await.unwrap();
        assert_eq!(
            (id.kind, id.on_behalf_of.as_deref()),
            (IdentityKind::Agent, Some("alice"))
        );
        let (_, token2) = a.rotate_service_account(&rec.id, None).await.unwrap();
        assert!(a.authenticate_token(&token).await.is_err());
        assert!(a.authenticate_token(&token2).await.is_ok());
        a.revoke_service_account(&rec.id).await.unwrap();
        assert!(matches!(
            a.authenticate_token(&token2).await,
            Err(AuthError::Revoked)
        ));
        assert_eq!(a.list_service_accounts().await.unwrap().len(), 4);
    }
}
