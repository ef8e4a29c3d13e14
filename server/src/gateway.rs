//! The gateway's shared state, built once from the config: environments with their upstream
//! targets, the authenticator, grants, guardrail policy, single sign-on, TLS and the cancel-key
//! registry. Sessions and HTTP handlers hold it through an `Arc`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::audit::{Audit, AuditError};
use crate::config::{Config, Tier};
use crate::identity::loopback::Flows;
use crate::identity::oidc::{OidcClient, OidcError, OidcSettings};
use crate::identity::{Authenticator, Grants};
use crate::pg::cancel::CancelRegistry;
use crate::pg::connections::Connections;
use crate::pg::tls;
use crate::pg::upstream::UpstreamTarget;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("environment `{env}`: the variable {var} named by upstream_password_env is not set")]
    MissingPassword { env: String, var: String },
    #[error("environment `{env}`: {source}")]
    Upstream {
        env: String,
        source: crate::pg::upstream::TargetError,
    },
    #[error("store: the variable {var} named by password_env is not set")]
    MissingStorePassword { var: String },
    #[error("store.url: {0}")]
    StoreUrl(crate::pg::upstream::TargetError),
    #[error("oidc: the variable {var} named by client_secret_env is not set")]
    MissingOidcSecret { var: String },
    #[error("oidc: {0}")]
    Oidc(#[from] OidcError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("audit trail: {0}")]
    Audit(#[from] AuditError),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("guardrail rules: {0}")]
    Rules(#[from] crate::policy::RuleError),
    #[error("masking key {path}: {source}")]
    MaskingKey {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// The masking key (keyed-hash mode): 32 random bytes in `data_dir/masking.key`, created with
/// mode 0600 on first start, so tokens stay stable across restarts and differ between gateways.
fn masking_key(data_dir: &std::path::Path) -> Result<[u8; 32], GatewayError> {
    use rand::RngCore;
    let path = data_dir.join("masking.key");
    let err = |source| GatewayError::MaskingKey {
        path: path.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(b) if b.len() == 32 => {
            let mut k = [0u8; 32];
            k.copy_from_slice(&b);
            Ok(k)
        }
        Ok(_) => Err(err(std::io::Error::other("not 32 bytes"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut k = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut k);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            use std::io::Write;
            opts.open(&path)
                .and_then(|mut f| f.write_all(&k))
                .map_err(err)?;
            Ok(k)
        }
        Err(e) => Err(err(e)),
    }
}

/// Which databases on its upstream server an environment reaches (`dbname=env/database`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Databases {
    /// The `upstream` URL's database, and these (config `databases`).
    Listed(Vec<String>),
    /// Every database on the server (`databases = ["*"]`, an explicit opt-in).
    Any,
}

/// Why a client's `dbname` leads nowhere for an identity. Mapped to a SQLSTATE at the session
/// edge and to an HTTP status at the API edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreachable {
    /// No environment of that name, or one the identity has no grant for: the very same
    /// answer, so that asking does not tell which environments exist.
    #[error("no environment named \"{name}\" is available to identity \"{identity}\"")]
    NoEnvironment { name: String, identity: String },
    /// The environment is granted, but the database is not one it reaches.
    #[error("environment \"{env}\" does not reach database \"{database}\"")]
    Database {
        env: String,
        database: String,
        /// The environment's own database (its `upstream` URL's), to suggest.
        own: String,
    },
}

/// A named upstream database that identities may be granted.
pub struct Environment {
    pub name: String,
    pub tier: Tier,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub target: Arc<UpstreamTarget>,
    /// Groups that decide approvals here (`server.admin_groups` when none are configured).
    pub approvers: Vec<String>,
    pub auto_approve_below_rows: Option<u64>,
    /// The databases beyond `target`'s own that clients may reach.
    pub databases: Databases,
    /// How people may ask for this environment for a while; `None`: they may not.
    pub access_requests: Option<crate::config::AccessRequestConfig>,
    /// Rows of each result kept for session replay (0: none).
    pub replay_rows: usize,
}

impl Environment {
    /// Whether this environment reaches `database`: its upstream URL's own database always,
    /// another only when the environment lists it (or lists `*`). Whatever it reaches is
    /// decided with this environment's tier and rules.
    pub fn reaches(&self, database: &str) -> bool {
        database == self.target.database
            || match &self.databases {
                Databases::Any => true,
                Databases::Listed(dbs) => dbs.iter().any(|d| d == database),
            }
    }

    /// The databases as the API shows them: the upstream's own first, then the listed ones
    /// (`*` when every database is open).
    pub fn database_names(&self) -> Vec<String> {
        let mut out = vec![self.target.database.clone()];
        match &self.databases {
            Databases::Any => out.push("*".into()),
            Databases::Listed(dbs) => {
                out.extend(dbs.iter().filter(|d| **d != self.target.database).cloned())
            }
        }
        out
    }
}

pub struct Gateway {
    pub config: Config,
    pub environments: BTreeMap<String, Arc<Environment>>,
    pub auth: Authenticator,
    pub grants: Grants,
    /// Single sign-on, when `[oidc]` is configured.
    pub oidc: Option<OidcClient>,
    /// SSO logins in flight and one-time codes for native apps.
    pub login_flows: Flows,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub cancels: CancelRegistry,
    /// Refusals as data for the loopback sessions of in-process callers (the MCP server).
    pub refusals: crate::pg::refusal_board::RefusalBoard,
    pub connections: Connections,
    pub store: Store,
    pub audit: Audit,
    pub policy: crate::policy::Policy,
    pub approvals: crate::approval::Approvals,
    /// Where the PostgreSQL listener is bound, once it is (the MCP server connects there).
    pub pg_local_addr: std::sync::OnceLock<std::net::SocketAddr>,
    pub masking: crate::masking::Masking,
    masking_reloads: crate::reload_gate::ReloadGate,
    /// This replica's id (`Config::replica_id`): in `/healthz`, `/api/v1/info`, metrics, logs.
    pub replica_id: String,
}

/// The store the config names: the shared PostgreSQL store of `[store]`, or the SQLite file in
/// `data_dir`. Blocks while it connects and migrates.
pub fn open_store(config: &Config) -> Result<Store, GatewayError> {
    let Some(sc) = &config.store else {
        return Ok(Store::open(&config.data_dir())?);
    };
    let password =
        match &sc.password_env {
            Some(var) => Some(std::env::var(var.get_ref()).map_err(|_| {
                GatewayError::MissingStorePassword {
                    var: var.get_ref().clone(),
                }
            })?),
            None => None,
        };
    let settings = pg_settings(
        sc.url.get_ref(),
        password,
        *sc.pool_size.get_ref(),
        config.replica_id(),
    )?;
    Ok(Store::open_postgres(settings)?)
}

/// The shared store's connection settings from a `postgresql://` URL (read as an upstream's:
/// `sslmode`, `sslrootcert`), the password from its variable if any.
pub fn pg_settings(
    url: &str,
    password: Option<String>,
    pool_size: usize,
    replica_id: String,
) -> Result<crate::store::postgres::PgSettings, GatewayError> {
    let target = UpstreamTarget::parse(url, password).map_err(GatewayError::StoreUrl)?;
    let tls = target.tls_config();
    Ok(crate::store::postgres::PgSettings {
        host: target.host.clone(),
        port: target.port,
        user: target.user.clone(),
        password: target.password.clone(),
        database: target.database.clone(),
        tls_required: !matches!(target.sslmode, tls::SslMode::Disable | tls::SslMode::Prefer),
        tls,
        pool_size,
        replica_id,
    })
}

impl Gateway {
    /// Reads the masking overrides from the store and puts them in force, one reload at a time
    /// (see [`crate::reload_gate`]: a column just tagged must not show unmasked again).
    pub async fn reload_masking_overrides(&self) -> Result<(), crate::store::StoreError> {
        self.masking_reloads
            .reload(self.store.masking_overrides(), |o| {
                self.masking.set_overrides(o)
            })
            .await
    }

    /// [`Gateway::reload_masking_overrides`] for the exemptions (a deleted one must not come
    /// back).
    pub async fn reload_exemptions(&self) -> Result<(), crate::store::StoreError> {
        self.masking_reloads
            .reload(self.store.exemptions(), |e| self.masking.set_exemptions(e))
            .await
    }

    /// Resolves secrets, opens the store and prepares TLS. Fails on anything that would make
    /// the gateway unable to serve as configured.
    pub fn build(config: Config) -> Result<Arc<Gateway>, GatewayError> {
        let mut environments = BTreeMap::new();
        for e in &config.environments {
            let name = e.name.get_ref().clone();
            let password = match &e.upstream_password_env {
                Some(var) => Some(std::env::var(var.get_ref()).map_err(|_| {
                    GatewayError::MissingPassword {
                        env: name.clone(),
                        var: var.get_ref().clone(),
                    }
                })?),
                None => None,
            };
            let target =
                UpstreamTarget::parse(e.upstream.get_ref(), password).map_err(|source| {
                    GatewayError::Upstream {
                        env: name.clone(),
                        source,
                    }
                })?;
            environments.insert(
                name.clone(),
                Arc::new(Environment {
                    name,
                    tier: e.tier,
                    tags: e.tags.clone(),
                    description: e.description.clone(),
                    target: Arc::new(target),
                    approvers: if e.approvers.is_empty() {
                        config.server.admin_groups.clone()
                    } else {
                        e.approvers.clone()
                    },
                    auto_approve_below_rows: e.auto_approve_below_rows,
                    databases: match e.databases.as_ref().map(|d| d.get_ref()) {
                        Some(d) if d.iter().any(|x| x == "*") => Databases::Any,
                        Some(d) => Databases::Listed(d.clone()),
                        None => Databases::Listed(Vec::new()),
                    },
                    access_requests: e.access_requests.as_ref().map(|a| a.get_ref().clone()),
                    replay_rows: e.replay_rows.as_ref().map_or(0, |n| *n.get_ref()),
                }),
            );
        }
        let data_dir = config.data_dir();
        let store = open_store(&config)?;
        let config_replica_id = config.replica_id();
        // With a shared store, this replica's chain is written there beside the others'.
        let queue = config.audit.queue_records();
        let audit = match store.pg() {
            Some(pg) => {
                Audit::open_shared(&data_dir, pg.clone(), config_replica_id.clone(), queue)?
            }
            None => Audit::open(&data_dir, queue)?,
        };
        let approvals = crate::approval::Approvals::new(
            store.clone(),
            config.server.approval_grant_seconds,
            config.server.public_url.get_ref(),
        );
        let cert = config.server.tls_cert.as_ref().map(|p| config.resolve(p));
        let key = config.server.tls_key.as_ref().map(|p| config.resolve(p));
        let tls_config = tls::server_config(cert.as_deref(), key.as_deref(), &data_dir)?;
        let auth = Authenticator::new(
            &config.service_accounts,
            &config.users,
            store.clone(),
            &config.server,
        );
        auth.groups().load_blocking(&store)?;
        let grants = Grants::from_config(&config.grants);
        grants.load_blocking(&store)?;
        let policy = crate::policy::Policy::from_config(&config);
        policy.load_blocking(&store)?;
        let masking = crate::masking::Masking::new(crate::masking::Masker::new(
            config.masking.mode,
            masking_key(&data_dir)?,
        ));
        masking.set_overrides(store.masking_overrides_blocking()?);
        masking.set_exemptions(store.exemptions_blocking()?);
        for stored in store.masking_catalogs_blocking()? {
            match crate::masking::Catalog::from_stored_json(
                &stored.json,
                &masking.overrides_for(&stored.environment),
            ) {
                Ok(c) => masking.restore(&stored.environment, &stored.database, c),
                // An unreadable copy only costs the first session a fresh read.
                Err(e) => {
                    tracing::warn!(env = %stored.environment, database = %stored.database, error = %e, "ignoring a stored masking catalog")
                }
            }
        }
        let oidc = match &config.oidc {
            Some(o) => {
                let client_secret = match &o.client_secret_env {
                    Some(var) => Some(std::env::var(var.get_ref()).map_err(|_| {
                        GatewayError::MissingOidcSecret {
                            var: var.get_ref().clone(),
                        }
                    })?),
                    None => None,
                };
                Some(OidcClient::new(OidcSettings {
                    issuer: o.issuer.get_ref().clone(),
                    client_id: o.client_id.get_ref().clone(),
                    client_secret,
                    redirect_uri: format!(
                        "{}/auth/oidc/callback",
                        config.server.public_url.get_ref().trim_end_matches('/')
                    ),
                    scopes: o.scopes.get_ref().clone(),
                    groups_claim: o.groups_claim.clone(),
                    username_claim: o.username_claim.get_ref().clone(),
                    default_groups: o.default_groups.clone(),
                    user_groups: o.user_groups.clone(),
                    clock_skew: std::time::Duration::from_secs(*o.clock_skew_seconds.get_ref()),
                })?)
            }
            None => None,
        };
        Ok(Arc::new(Gateway {
            config,
            environments,
            auth,
            grants,
            oidc,
            login_flows: Flows::default(),
            tls: Some(tokio_rustls::TlsAcceptor::from(tls_config)),
            cancels: CancelRegistry::default(),
            refusals: Default::default(),
            connections: Connections::default(),
            store,
            audit,
            policy,
            approvals,
            pg_local_addr: std::sync::OnceLock::new(),
            masking,
            masking_reloads: Default::default(),
            replica_id: config_replica_id,
        }))
    }

    pub fn is_admin(&self, identity: &crate::identity::Identity) -> bool {
        identity.in_any_group(&self.config.server.admin_groups)
    }

    /// The environment called `name`, if `identity` has a grant for it now; `None` both when
    /// there is no such environment and when there is no grant, so callers answer the two
    /// alike.
    pub fn granted_environment(
        &self,
        identity: &crate::identity::Identity,
        name: &str,
    ) -> Option<&Arc<Environment>> {
        self.environments
            .get(name)
            .filter(|e| self.grants.allows(identity, &e.name))
    }

    /// Where a client's `dbname` leads for `identity`: `env` is the environment's own
    /// database, `env/database` another database on its server if the environment reaches it
    /// ([`Environment::reaches`]). The environment and the database name, or why not.
    pub fn reach(
        &self,
        identity: &crate::identity::Identity,
        dbname: &str,
    ) -> Result<(Arc<Environment>, String), Unreachable> {
        let (env_name, database) = match dbname.split_once('/') {
            Some((e, d)) if !d.is_empty() => (e, Some(d)),
            Some((e, _)) => (e, None),
            None => (dbname, None),
        };
        let env = self
            .granted_environment(identity, env_name)
            .cloned()
            .ok_or_else(|| Unreachable::NoEnvironment {
                name: env_name.to_string(),
                identity: identity.name.clone(),
            })?;
        let database = database.unwrap_or(&env.target.database).to_string();
        if !env.reaches(&database) {
            return Err(Unreachable::Database {
                env: env.name.clone(),
                own: env.target.database.clone(),
                database,
            });
        }
        Ok((env, database))
    }
}
