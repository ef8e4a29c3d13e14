//! The gateway's TOML configuration: its shape, its defaults, and the checks that turn a
//! mistake into a message naming the key and the line.
//!
//! Parsing is two steps: serde (via `toml`) rejects malformed TOML, unknown keys and wrong types
//! with the line it saw them on; [`Config::validate`] then checks what types cannot express
//! (addresses, URLs, references between sections) and points at the offending value's span.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// A configuration problem, located in the file where possible.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}:{line}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub environments: Vec<EnvironmentConfig>,
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccountConfig>,
    #[serde(default)]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub grants: Vec<GrantConfig>,
    /// Single sign-on for people through an OpenID Connect provider.
    pub oidc: Option<OidcConfig>,
    /// Outgoing notifications (e.g. a chat bot showing approvals).
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Where the audit trail goes besides its database, and how long it stays there.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Guardrail settings.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Masking of personal data in results.
    #[serde(default)]
    pub masking: MaskingConfig,
    /// Guardrail rules, evaluated in order before API-managed and built-in rules.
    #[serde(default)]
    pub rules: Vec<Spanned<crate::policy::Rule>>,
    /// The MCP server for AI agents at `/mcp`.
    #[serde(default)]
    pub mcp: McpConfig,
    /// Where the gateway keeps its state: absent, SQLite in `data_dir`; with `url`, a
    /// PostgreSQL database that several replicas share.
    pub store: Option<StoreConfig>,
    /// Directory of the config file; relative paths in the config are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub postgres_listen: Spanned<String>,
    pub http_listen: Spanned<String>,
    pub data_dir: PathBuf,
    pub public_url: Spanned<String>,
    /// `HOST:PORT` at which clients reach `postgres_listen`, announced to the CLI and the desktop
    /// app (`GET /api/v1/info`). Unset: `public_url`'s host with `postgres_listen`'s port.
    pub postgres_public_address: Option<Spanned<String>>,
    pub admin_groups: Vec<String>,
    /// PEM certificate chain and key for TLS to clients; generated into `data_dir` when unset.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Refuse clients that do not use TLS, even on loopback.
    pub require_tls: bool,
    pub session_ttl_seconds: u64,
    /// Lifetime of a session's refresh token (the session itself); 0 issues no refresh tokens.
    pub refresh_ttl_seconds: u64,
    /// Failed local-user logins in a row before the user is locked out.
    pub login_max_failures: u32,
    /// How long a locked-out local user must wait.
    pub login_lockout_seconds: u64,
    /// Failed logins from one source address (an IPv6 /64 counts as one) within
    /// `login_lockout_seconds` before every login from it is refused for the rest of that
    /// window; 0 disables.
    pub login_max_failures_per_address: u32,
    /// Largest single protocol message a client may send.
    pub max_message_bytes: usize,
    pub max_connections: usize,
    /// Threads that run client sessions, each a single-threaded event loop; 0 means one per
    /// CPU but one (see `pg::workers::default_count`).
    pub worker_threads: usize,
    /// How the session workers are scheduled: `batch` (Linux `SCHED_BATCH`: their wake-ups do
    /// not preempt the database or the clients, see `pg::sched`) or `normal`.
    pub worker_scheduling: crate::pg::sched::WorkerScheduling,
    /// Time a client has from TCP accept to the end of authentication.
    pub handshake_timeout_seconds: u64,
    /// Close a connection that has been idle (no statement in flight) this long; 0 disables.
    pub idle_timeout_seconds: u64,
    pub upstream_connect_timeout_seconds: u64,
    /// How long a statement sent to review holds its client while approvers decide.
    pub approval_window_seconds: u64,
    /// After an approval that came too late for the held client, how long the identical
    /// statement may be re-run (once) by the same identity in the same environment.
    pub approval_grant_seconds: u64,
    /// The built web console (`ui/dist`) served at `/`. Unset: `ui/dist` of the source tree the
    /// binary was built from, which is right for `scripts/setup.sh`, the tests and a checkout.
    pub console_dir: Option<PathBuf>,
    /// This replica's name among those sharing a store (logs, metrics, `/api/v1/info`, the
    /// origin of the changes it announces). Unset: the host name and `postgres_listen`'s port.
    pub replica_id: Option<Spanned<String>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            postgres_listen: Spanned::new(0..0, "127.0.0.1:7432".into()),
            http_listen: Spanned::new(0..0, "127.0.0.1:7480".into()),
            data_dir: PathBuf::from("./data"),
            public_url: Spanned::new(0..0, "http://127.0.0.1:7480".into()),
            postgres_public_address: None,
            admin_groups: vec!["admins".into()],
            tls_cert: None,
            tls_key: None,
            require_tls: false,
            session_ttl_seconds: 12 * 3600,
            refresh_ttl_seconds: 7 * 24 * 3600,
            login_max_failures: 5,
            login_lockout_seconds: 300,
            login_max_failures_per_address: 50,
            max_message_bytes: 64 * 1024 * 1024,
            max_connections: 1000,
            worker_threads: 0,
            worker_scheduling: Default::default(),
            handshake_timeout_seconds: 10,
            idle_timeout_seconds: 0,
            upstream_connect_timeout_seconds: 5,
            approval_window_seconds: 60,
            approval_grant_seconds: 900,
            console_dir: None,
            replica_id: None,
        }
    }
}

/// `[masking]`: personal data in results. On by default, with no rules to write.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskingConfig {
    /// Mask results for every identity without an exemption (default true).
    pub enabled: bool,
    /// `partial` (format-preserving, `a***@example.com`) or `hash` (deterministic keyed
    /// tokens, `h:3f…`, so values can still be joined and counted).
    pub mode: crate::masking::Mode,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            mode: crate::masking::Mode::Partial,
        }
    }
}

/// `[policy]`: how guardrails are evaluated.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Apply the built-in production rules (deny DROP, GRANT, role changes, …; review unbounded
    /// writes and what cannot be analysed) after the configured and API rules.
    pub builtin_rules: bool,
    /// Statement shapes whose classification is kept in memory.
    pub cache_size: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            builtin_rules: true,
            cache_size: crate::policy::DEFAULT_CACHE_SIZE,
        }
    }
}

/// `[mcp]`: the Model Context Protocol server for AI agents, on the HTTP listener at `/mcp`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    pub enabled: bool,
    /// Most rows one `query` returns; the rest are counted and the result is flagged truncated.
    pub max_rows: usize,
    /// Per identity: `query`, `explain` and `describe` calls in any 60 seconds.
    pub statements_per_minute: u32,
    /// Per identity: rows returned by `query` in any hour.
    pub rows_per_hour: u64,
    /// Per identity: statements running at once.
    pub concurrent_queries: u32,
    /// `statement_timeout` of the MCP server's sessions.
    pub statement_timeout_seconds: u64,
    /// Longest `wait_for_approval` call.
    pub max_wait_seconds: u64,
    /// `Host` header values accepted besides loopback names and `server.public_url`'s host
    /// (a guard against DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// Limits for particular identities (e.g. a busier reporting agent).
    pub limits: Vec<McpLimitOverride>,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_rows: 500,
            statements_per_minute: 60,
            rows_per_hour: 50_000,
            concurrent_queries: 2,
            statement_timeout_seconds: 30,
            max_wait_seconds: 300,
            allowed_hosts: Vec::new(),
            limits: Vec::new(),
        }
    }
}

/// `[[mcp.limits]]`: one identity's own MCP limits; unset keys keep the `[mcp]` values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpLimitOverride {
    pub identity: Spanned<String>,
    pub statements_per_minute: Option<u32>,
    pub rows_per_hour: Option<u64>,
    pub concurrent_queries: Option<u32>,
    pub max_rows: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Production,
    Staging,
    Development,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    pub name: Spanned<String>,
    pub tier: Tier,
    #[serde(default)]
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// `postgresql://user[:password]@host:port/database?sslmode=...`
    pub upstream: Spanned<String>,
    /// Name of the environment variable holding the upstream password.
    pub upstream_password_env: Option<Spanned<String>>,
    /// Groups whose members decide approvals here; `server.admin_groups` when empty.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Statements sent to review are approved automatically when the planner estimates they
    /// touch fewer rows than this (`EXPLAIN`, never `ANALYZE`). Unset: always a person.
    pub auto_approve_below_rows: Option<u64>,
    /// Databases on the upstream server that clients may reach as `env/database`, besides the
    /// one in `upstream`; `["*"]` opens every database. Unset: the `upstream` database only.
    pub databases: Option<Spanned<Vec<String>>>,
    /// People may ask for this environment for a while (`gatehouse request`); unset: they
    /// cannot, and the environment stays invisible to those without a grant.
    pub access_requests: Option<Spanned<AccessRequestConfig>>,
    /// Session replay keeps this many rows of each result as the client saw them (after
    /// masking) with the statement's audit record, under the audit's retention. 0 (the
    /// default): none; at most [`MAX_REPLAY_ROWS`].
    pub replay_rows: Option<Spanned<usize>>,
}

/// Most rows per result an environment may keep for session replay: replay shows what a
/// result looked like, it is not a copy of the data.
pub const MAX_REPLAY_ROWS: usize = 100;

/// `[environments.access_requests]`: just-in-time access. A request names a duration up to
/// `max_duration_seconds`, optionally one of `roles`, and a reason; the environment's
/// approvers decide it, and an approval grants the requester alone access until it ends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessRequestConfig {
    /// The longest access a request may ask for.
    pub max_duration_seconds: u64,
    /// A request nobody decided within this long expires.
    pub pending_expiry_seconds: u64,
    /// Upstream roles a request may ask for (`SET ROLE`); without one, connections run as the
    /// environment's own user.
    pub roles: Vec<String>,
    /// Members of these groups may approve their own request, with a reason: break-glass,
    /// announced loudly and capped at `break_glass_max_seconds`.
    pub break_glass_groups: Vec<String>,
    /// Unset: an hour, or `max_duration_seconds` when that is shorter.
    pub break_glass_max_seconds: Option<u64>,
}

impl AccessRequestConfig {
    /// How long break-glass access lasts at most.
    pub fn break_glass_max(&self) -> u64 {
        self.break_glass_max_seconds
            .unwrap_or_else(|| self.max_duration_seconds.min(3600))
    }
}

impl Default for AccessRequestConfig {
    fn default() -> Self {
        Self {
            max_duration_seconds: 8 * 3600,
            pending_expiry_seconds: 3600,
            roles: Vec::new(),
            break_glass_groups: Vec::new(),
            break_glass_max_seconds: None,
        }
    }
}

/// The longest access a request may ever ask for; longer is a grant for an administrator.
pub const MAX_ACCESS_REQUEST_SECONDS: u64 = 30 * 24 * 3600;

/// `access_requests` of an environment: every bound positive, break-glass no longer than a
/// normal request, offered roles role names, once each.
fn check_access_requests(a: &AccessRequestConfig) -> Result<(), (&'static str, String)> {
    if a.max_duration_seconds == 0 || a.max_duration_seconds > MAX_ACCESS_REQUEST_SECONDS {
        return Err((
            "max_duration_seconds",
            format!("must be 1 to {MAX_ACCESS_REQUEST_SECONDS} (30 days)"),
        ));
    }
    if a.pending_expiry_seconds == 0 || a.pending_expiry_seconds > MAX_ACCESS_REQUEST_SECONDS {
        return Err((
            "pending_expiry_seconds",
            format!("must be 1 to {MAX_ACCESS_REQUEST_SECONDS} (30 days)"),
        ));
    }
    if a.break_glass_max_seconds
        .is_some_and(|b| b == 0 || b > a.max_duration_seconds)
    {
        return Err((
            "break_glass_max_seconds",
            "must be at least 1 and at most `max_duration_seconds`: break-glass access is short"
                .into(),
        ));
    }
    let mut seen = HashSet::new();
    for r in &a.roles {
        if !valid_role_name(r) {
            return Err((
                "roles",
                format!("`{r}` is not a PostgreSQL role name (letters, digits, `_`, `$`; at most 63 bytes)"),
            ));
        }
        if !seen.insert(r.as_str()) {
            return Err(("roles", format!("`{r}` is listed twice")));
        }
    }
    if a.break_glass_groups.iter().any(|g| g.trim().is_empty()) {
        return Err(("break_glass_groups", "group names must not be empty".into()));
    }
    Ok(())
}

/// `[store]`: the shared PostgreSQL store of several gateway replicas.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgresql://USER[:PASSWORD]@HOST[:PORT][/DATABASE][?sslmode=...&sslrootcert=...]`, read
    /// as an environment's `upstream`.
    pub url: Spanned<String>,
    /// Environment variable holding the store's password; wins over one in the URL.
    pub password_env: Option<Spanned<String>>,
    /// Connections each replica keeps to the store at most.
    #[serde(default = "default_store_pool_size")]
    pub pool_size: Spanned<usize>,
}

/// A record waiting in the queue takes a few hundred bytes: this bounds it to a few GiB.
const MAX_AUDIT_QUEUE: usize = 8 * 1024 * 1024;

fn default_store_pool_size() -> Spanned<usize> {
    Spanned::new(0..0, 8)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Append every committed record to this file as a JSON line (for log shippers).
    pub file: Option<PathBuf>,
    /// POST committed records as JSON Lines to this URL (e.g. a SIEM's HTTP collector).
    pub webhook_url: Option<Spanned<String>>,
    /// Environment variable holding the HMAC-SHA256 secret that signs webhook deliveries.
    pub webhook_secret_env: Option<String>,
    /// Move records older than this many days into verified archive files; 0 keeps everything.
    pub retention_days: u64,
    /// Records held in memory while the trail is slow or cannot be written (a full disk, the
    /// shared store away); past that, statements wait. Default
    /// [`crate::audit::DEFAULT_QUEUE_RECORDS`].
    pub queue_records: Option<Spanned<usize>>,
}

impl AuditConfig {
    pub fn queue_records(&self) -> usize {
        self.queue_records
            .as_ref()
            .map_or(crate::audit::DEFAULT_QUEUE_RECORDS, |n| *n.get_ref())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: Spanned<String>,
    /// Environment variable holding the HMAC-SHA256 signing secret.
    pub secret_env: Option<String>,
    /// Events to send (`approval.created`, `approval.decided`); all when empty.
    #[serde(default)]
    pub events: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountConfig {
    pub name: Spanned<String>,
    pub token_sha256: Spanned<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// The person an agent acts for, shown to policy and audit.
    pub on_behalf_of: Option<String>,
    /// For an agent not bound to a person (`on_behalf_of` unset): the people it may name as the
    /// one it acts for (their identity names; `"*"`: anyone). Empty: nobody.
    #[serde(default)]
    pub may_act_for: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: Spanned<String>,
    pub password_argon2: Spanned<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantConfig {
    pub groups: Vec<String>,
    pub environments: Vec<Spanned<String>>,
    /// The upstream role to use (`SET ROLE`) for connections this grant allows, e.g. a read-only
    /// role for agents; the environment's own user when unset.
    pub upstream_role: Option<Spanned<String>>,
}

/// `[oidc]`: single sign-on through any standard OpenID Connect provider (Okta, Entra ID,
/// Google, Keycloak, ...). The gateway is a confidential client using the authorization code
/// flow with PKCE; its redirect URI at the provider is `{server.public_url}/auth/oidc/callback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer URL; `{issuer}/.well-known/openid-configuration` must be its discovery document.
    pub issuer: Spanned<String>,
    pub client_id: Spanned<String>,
    /// Name of the environment variable holding the client secret.
    pub client_secret_env: Option<Spanned<String>>,
    /// Scopes to request; must include `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Spanned<Vec<String>>,
    /// The ID-token claim that lists the user's groups (a list of strings, or one string).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The claim that names the user (the identity name, and the `user` for psql).
    #[serde(default = "default_username_claim")]
    pub username_claim: Spanned<String>,
    /// Groups every SSO user gets, in addition to the IdP's.
    #[serde(default)]
    pub default_groups: Vec<String>,
    /// Extra groups for named SSO users: `"alice@example.com" = ["dba"]`.
    #[serde(default)]
    pub user_groups: std::collections::BTreeMap<String, Vec<String>>,
    /// How far the IdP's clock may be from ours when checking `exp` and `iat`.
    #[serde(default = "default_clock_skew")]
    pub clock_skew_seconds: Spanned<u64>,
}

fn default_scopes() -> Spanned<Vec<String>> {
    Spanned::new(
        0..0,
        vec!["openid".into(), "email".into(), "profile".into()],
    )
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_username_claim() -> Spanned<String> {
    Spanned::new(0..0, "email".into())
}

fn default_clock_skew() -> Spanned<u64> {
    Spanned::new(0..0, 60)
}

/// Longest clock skew `[oidc] clock_skew_seconds` may allow.
pub const MAX_CLOCK_SKEW_SECONDS: u64 = 300;

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        config.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(config)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Validator { text, path }.check(&config)?;
        Ok(config)
    }

    /// `data_dir`, resolved against the config file's directory.
    pub fn data_dir(&self) -> PathBuf {
        self.resolve(&self.server.data_dir)
    }

    /// Where the built web console is: `server.console_dir` (resolved against the config file's
    /// directory), else `ui/dist` in the source tree this binary was built from.
    pub fn console_dir(&self) -> PathBuf {
        match &self.server.console_dir {
            Some(d) => self.resolve(d),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/dist"),
        }
    }

    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// Whether the gateway is served over https (`public_url`'s scheme, in whatever case it was
    /// written): then every cookie it sets is `Secure`.
    pub fn public_https(&self) -> bool {
        url::Url::parse(self.server.public_url.get_ref()).is_ok_and(|u| u.scheme() == "https")
    }

    pub fn postgres_listen(&self) -> SocketAddr {
        // validated in `Validator::check`
        self.server
            .postgres_listen
            .get_ref()
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 7432)))
    }

    /// Where clients reach the PostgreSQL listener: `server.postgres_public_address`, else
    /// `public_url`'s host (the name people already use for this gateway) with the listener's port.
    pub fn postgres_public_address(&self) -> String {
        if let Some(a) = &self.server.postgres_public_address {
            return a.get_ref().clone();
        }
        let port = self.postgres_listen().port();
        // validated in `Validator::check`
        match url::Url::parse(self.server.public_url.get_ref())
            .ok()
            .and_then(|u| u.host().map(|h| h.to_owned()))
        {
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]:{port}"),
            Some(h) => format!("{h}:{port}"),
            None => self.postgres_listen().to_string(),
        }
    }

    /// This replica's id: `server.replica_id`, else this host's name and the PostgreSQL
    /// listener's port (unique among replicas on one host, stable across restarts).
    pub fn replica_id(&self) -> String {
        if let Some(id) = &self.server.replica_id {
            return id.get_ref().clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "gatehouse".into());
        format!("{host}:{}", self.postgres_listen().port())
    }

    pub fn http_listen(&self) -> SocketAddr {
        self.server
            .http_listen
            .get_ref()
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 7480)))
    }
}

/// `databases` of an environment: database names (no `/`, as `env/database` splits on the
/// first), or `*` alone.
fn check_databases(dbs: &[String]) -> Result<(), String> {
    if dbs.iter().any(|d| d == "*") && dbs.len() > 1 {
        return Err("`*` opens every database; list it alone".into());
    }
    for d in dbs {
        if d.is_empty() || d.len() > 63 || d.contains('/') || d.chars().any(char::is_control) {
            return Err(format!(
                "`{d}` is not a database name (1 to 63 bytes, no `/` or control characters)"
            ));
        }
    }
    Ok(())
}

/// `may_act_for` of a service account: identity names, or `*` alone.
fn check_people(people: &[String]) -> Result<(), String> {
    if people.iter().any(|p| p == "*") && people.len() > 1 {
        return Err("`*` lets the agent name anyone; list it alone".into());
    }
    for p in people {
        if p.trim().is_empty() || p.len() > 200 || p.chars().any(char::is_control) {
            return Err(format!(
                "`{p}` is not an identity name (1 to 200 printable characters)"
            ));
        }
    }
    Ok(())
}

struct Validator<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Validator<'_> {
    fn err<T>(
        &self,
        span: &Spanned<T>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let start = span.span().start.min(self.text.len());
        let line = self.text[..start].matches('\n').count() + 1;
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            key: key.into(),
            message: message.into(),
        }
    }

    fn check(&self, c: &Config) -> Result<(), ConfigError> {
        let s = &c.server;
        for (span, key) in [
            (&s.postgres_listen, "server.postgres_listen"),
            (&s.http_listen, "server.http_listen"),
        ] {
            if span.get_ref().parse::<SocketAddr>().is_err() {
                return Err(self.err(
                    span,
                    key,
                    format!("`{}` is not an address like 127.0.0.1:7432", span.get_ref()),
                ));
            }
        }
        match url::Url::parse(s.public_url.get_ref()) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => {
                return Err(self.err(
                    &s.public_url,
                    "server.public_url",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if let Some(a) = &s.postgres_public_address {
            if !is_host_port(a.get_ref()) {
                return Err(self.err(
                    a,
                    "server.postgres_public_address",
                    format!(
                        "`{}` is not an address like gatehouse.example.com:7432",
                        a.get_ref()
                    ),
                ));
            }
        }
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            return Err(ConfigError::Syntax {
                path: self.path.to_path_buf(),
                message: "`server.tls_cert` and `server.tls_key` must be set together".into(),
            });
        }

        if let Some(n) = &c.audit.queue_records {
            if !(1..=MAX_AUDIT_QUEUE).contains(n.get_ref()) {
                return Err(self.err(
                    n,
                    "audit.queue_records",
                    format!("between 1 and {MAX_AUDIT_QUEUE} records"),
                ));
            }
        }

        if let Some(store) = &c.store {
            if let Err(message) =
                crate::pg::upstream::UpstreamTarget::parse(store.url.get_ref(), None)
            {
                return Err(self.err(&store.url, "store.url", message.to_string()));
            }
            let n = *store.pool_size.get_ref();
            if !(2..=200).contains(&n) {
                return Err(self.err(
                    &store.pool_size,
                    "store.pool_size",
                    "between 2 and 200 connections",
                ));
            }
            if c.audit.retention_days > 0 {
                // Archive files are one gateway's; the shared trail is kept by the store.
                return Err(self.err(
                    &store.url,
                    "audit.retention_days",
                    "archiving into files is for a gateway's own trail; with a shared store \
                     the trail stays in PostgreSQL (partition or back it up there)",
                ));
            }
        }

        let mut env_names = HashSet::new();
        for (i, env) in c.environments.iter().enumerate() {
            let name = env.name.get_ref();
            let key = format!("environments[{i}].name");
            if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
                return Err(self.err(&env.name, key, "must be non-empty, without '/' or spaces"));
            }
            if !env_names.insert(name.as_str()) {
                return Err(self.err(
                    &env.name,
                    key,
                    format!("environment `{name}` is defined twice"),
                ));
            }
            if let Err(message) =
                crate::pg::upstream::UpstreamTarget::parse(env.upstream.get_ref(), None)
            {
                return Err(self.err(
                    &env.upstream,
                    format!("environments[{i}].upstream"),
                    message.to_string(),
                ));
            }
            if let Some(dbs) = &env.databases {
                if let Err(message) = check_databases(dbs.get_ref()) {
                    return Err(self.err(dbs, format!("environments[{i}].databases"), message));
                }
            }
            if let Some(n) = env
                .replay_rows
                .as_ref()
                .filter(|n| *n.get_ref() > MAX_REPLAY_ROWS)
            {
                return Err(self.err(
                    n,
                    format!("environments[{i}].replay_rows"),
                    format!("at most {MAX_REPLAY_ROWS} rows per result are kept for replay"),
                ));
            }
            if let Some(a) = &env.access_requests {
                if let Err((field, message)) = check_access_requests(a.get_ref()) {
                    return Err(self.err(
                        a,
                        format!("environments[{i}].access_requests.{field}"),
                        message,
                    ));
                }
            }
        }

        let mut identities = HashSet::new();
        for (i, sa) in c.service_accounts.iter().enumerate() {
            let name = sa.name.get_ref();
            if name.is_empty() || !identities.insert(name.as_str()) {
                return Err(self.err(
                    &sa.name,
                    format!("service_accounts[{i}].name"),
                    "must be non-empty and unique among users and service accounts",
                ));
            }
            let hash = sa.token_sha256.get_ref();
            if hash.len() != 64 || hex::decode(hash).is_err() {
                return Err(self.err(
                    &sa.token_sha256,
                    format!("service_accounts[{i}].token_sha256"),
                    "must be 64 hex characters (sha256 of the token, e.g. `printf %s TOKEN | sha256sum`)",
                ));
            }
            if let Some(people) = &sa.may_act_for {
                let key = format!("service_accounts[{i}].may_act_for");
                if sa.on_behalf_of.is_some() && !people.get_ref().is_empty() {
                    return Err(self.err(
                        people,
                        key,
                        "this account is bound to one person by `on_behalf_of`; `may_act_for` is for agents that are not",
                    ));
                }
                if let Err(message) = check_people(people.get_ref()) {
                    return Err(self.err(people, key, message));
                }
            }
        }
        for (i, u) in c.users.iter().enumerate() {
            let name = u.name.get_ref();
            if name.is_empty() || !identities.insert(name.as_str()) {
                return Err(self.err(
                    &u.name,
                    format!("users[{i}].name"),
                    "must be non-empty and unique among users and service accounts",
                ));
            }
            if argon2::PasswordHash::new(u.password_argon2.get_ref()).is_err() {
                return Err(self.err(
                    &u.password_argon2,
                    format!("users[{i}].password_argon2"),
                    "is not an argon2 PHC string (`$argon2id$v=19$...`); make one with `gatehouse-server hash-password`",
                ));
            }
        }
        if let Some(u) = &c.audit.webhook_url {
            match url::Url::parse(u.get_ref()) {
                Ok(p) if p.scheme() == "http" || p.scheme() == "https" => {}
                _ => {
                    return Err(self.err(
                        u,
                        "audit.webhook_url",
                        "must be an http:// or https:// URL",
                    ))
                }
            }
        }
        for (i, w) in c.webhooks.iter().enumerate() {
            match url::Url::parse(w.url.get_ref()) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => {
                    return Err(self.err(
                        &w.url,
                        format!("webhooks[{i}].url"),
                        "must be an http:// or https:// URL",
                    ))
                }
            }
        }
        for (i, g) in c.grants.iter().enumerate() {
            for (j, env) in g.environments.iter().enumerate() {
                if env.get_ref() != "*" && !env_names.contains(env.get_ref().as_str()) {
                    return Err(self.err(
                        env,
                        format!("grants[{i}].environments[{j}]"),
                        format!("no environment named `{}` is defined", env.get_ref()),
                    ));
                }
            }
            if let Some(role) = &g.upstream_role {
                if !valid_role_name(role.get_ref()) {
                    return Err(self.err(
                        role,
                        format!("grants[{i}].upstream_role"),
                        "must be a PostgreSQL role name (letters, digits, `_`, `$`; at most 63 bytes)",
                    ));
                }
            }
        }
        if let Some(o) = &c.oidc {
            self.check_oidc(o)?;
        }
        self.check_rules(c, &env_names)?;
        self.check_mcp(&c.mcp)?;
        Ok(())
    }

    fn check_mcp(&self, m: &McpConfig) -> Result<(), ConfigError> {
        let mut seen = HashSet::new();
        for (i, l) in m.limits.iter().enumerate() {
            if !seen.insert(l.identity.get_ref().as_str()) {
                return Err(self.err(
                    &l.identity,
                    format!("mcp.limits[{i}].identity"),
                    format!("`{}` has limits twice", l.identity.get_ref()),
                ));
            }
        }
        if m.max_rows == 0 || m.concurrent_queries == 0 || m.statement_timeout_seconds == 0 {
            return Err(ConfigError::Syntax {
                path: self.path.to_path_buf(),
                message: "`mcp.max_rows`, `mcp.concurrent_queries` and `mcp.statement_timeout_seconds` must be at least 1".into(),
            });
        }
        Ok(())
    }

    fn check_rules(&self, c: &Config, env_names: &HashSet<&str>) -> Result<(), ConfigError> {
        let builtin = if c.policy.builtin_rules {
            crate::policy::rules::builtin()
        } else {
            Vec::new()
        };
        let mut ids = HashSet::new();
        for (i, spanned) in c.rules.iter().enumerate() {
            let r = spanned.get_ref();
            if let Err(e) = r.validate() {
                return Err(self.err(spanned, format!("rules[{i}].{}", e.field), e.message));
            }
            if !ids.insert(r.id.as_str()) {
                return Err(self.err(
                    spanned,
                    format!("rules[{i}].id"),
                    format!("rule `{}` is defined twice", r.id),
                ));
            }
            if builtin.iter().any(|b| b.id == r.id) {
                return Err(self.err(
                    spanned,
                    format!("rules[{i}].id"),
                    format!("`{}` is the id of a built-in rule; choose another", r.id),
                ));
            }
            if let Some(e) = r
                .environments
                .iter()
                .find(|e| !env_names.contains(e.as_str()))
            {
                return Err(self.err(
                    spanned,
                    format!("rules[{i}].environments"),
                    format!("no environment named `{e}` is defined"),
                ));
            }
        }
        Ok(())
    }

    fn check_oidc(&self, o: &OidcConfig) -> Result<(), ConfigError> {
        match url::Url::parse(o.issuer.get_ref()) {
            Ok(u) if u.scheme() == "https" => {}
            // Plain HTTP only to an IdP on this machine (development, tests).
            Ok(u) if u.scheme() == "http" && is_loopback_host(&u) => {}
            Ok(_) => {
                return Err(self.err(
                    &o.issuer,
                    "oidc.issuer",
                    "must be an https:// URL (http:// only for an IdP on 127.0.0.1 or localhost)",
                ))
            }
            Err(e) => return Err(self.err(&o.issuer, "oidc.issuer", format!("is not a URL: {e}"))),
        }
        if o.client_id.get_ref().trim().is_empty() {
            return Err(self.err(&o.client_id, "oidc.client_id", "must not be empty"));
        }
        if let Some(var) = &o.client_secret_env {
            if var.get_ref().trim().is_empty() {
                return Err(self.err(
                    var,
                    "oidc.client_secret_env",
                    "must name an environment variable",
                ));
            }
        }
        if !o.scopes.get_ref().iter().any(|s| s == "openid") {
            return Err(self.err(&o.scopes, "oidc.scopes", "must include \"openid\""));
        }
        if o.username_claim.get_ref().trim().is_empty() {
            return Err(self.err(
                &o.username_claim,
                "oidc.username_claim",
                "must not be empty",
            ));
        }
        if *o.clock_skew_seconds.get_ref() > MAX_CLOCK_SKEW_SECONDS {
            return Err(self.err(
                &o.clock_skew_seconds,
                "oidc.clock_skew_seconds",
                format!(
                    "must be at most {MAX_CLOCK_SKEW_SECONDS} (a larger skew accepts stale tokens)"
                ),
            ));
        }
        Ok(())
    }
}

fn is_loopback_host(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `host:port` as a client dials it: a DNS name or IPv4 address, or an IPv6 one in brackets.
fn is_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => !host.is_empty() && !host.contains(':') && url::Host::parse(host).is_ok(),
    };
    host_ok && port.parse::<u16>().is_ok_and(|p| p != 0)
}

/// A role name the gateway is willing to put in `SET ROLE`: a plain identifier.
pub fn valid_role_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && name.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    const OK: &str = r#"
[server]
postgres_listen = "127.0.0.1:7432"

[[environments]]
name = "prod"
tier = "production"
upstream = "postgresql://app@127.0.0.1:5432/appdb"

[[service_accounts]]
name = "agent"
token_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
groups = ["agents"]

[[grants]]
groups = ["agents"]
environments = ["prod"]
"#;

    #[test]
    fn accepts_the_design_example() {
        let c = parse(OK).expect("valid");
        assert_eq!(c.environments[0].name.get_ref(), "prod");
        assert_eq!(c.server.admin_groups, vec!["admins"]);
    }

    #[test]
    fn worker_scheduling_is_batch_unless_set_and_refuses_other_words() {
        use crate::pg::sched::WorkerScheduling;
        let set = |v: &str| {
            OK.replace(
                "postgres_listen = \"127.0.0.1:7432\"",
                &format!("postgres_listen = \"127.0.0.1:7432\"\nworker_scheduling = \"{v}\""),
            )
        };
        let scheduling = |text: &str| parse(text).map(|c| c.server.worker_scheduling);
        assert_eq!(scheduling(OK).unwrap(), WorkerScheduling::Batch);
        assert_eq!(
            scheduling(&set("normal")).unwrap(),
            WorkerScheduling::Normal
        );
        assert_eq!(scheduling(&set("batch")).unwrap(), WorkerScheduling::Batch);
        let e = scheduling(&set("realtime")).unwrap_err().to_string();
        assert!(e.contains("worker_scheduling"), "{e}");
    }

    #[test]
    fn the_audit_queue_is_bounded_and_defaults_to_its_constant() {
        let queue = |text: &str| parse(text).map(|c| c.audit.queue_records());
        assert_eq!(queue(OK).unwrap(), crate::audit::DEFAULT_QUEUE_RECORDS);
        let set = |n: &str| format!("{OK}\n[audit]\nqueue_records = {n}\n");
        assert_eq!(queue(&set("16")).unwrap(), 16);
        for bad in ["0", "100000000"] {
            let e = queue(&set(bad)).expect_err(bad).to_string();
            assert!(e.contains("audit.queue_records"), "{e}");
        }
    }

    #[test]
    fn file_retention_is_refused_with_a_shared_store() {
        let store = "\n[store]\nurl = \"postgresql://gh@127.0.0.1:5432/gatehouse\"\n";
        assert!(parse(&format!("{OK}{store}")).is_ok());
        assert!(parse(&format!("{OK}\n[audit]\nretention_days = 30\n")).is_ok());
        let e = parse(&format!("{OK}{store}\n[audit]\nretention_days = 30\n"))
            .expect_err("archive files are one gateway's");
        assert!(
            e.to_string().contains("audit.retention_days")
                && e.to_string().contains("shared store"),
            "{e}"
        );
    }

    #[test]
    fn databases_and_may_act_for_are_checked_with_key_and_line() {
        let with = |env_line: &str, sa_line: &str| {
            OK.replace(
                "upstream = \"postgresql://app@127.0.0.1:5432/appdb\"",
                &format!("upstream = \"postgresql://app@127.0.0.1:5432/appdb\"\n{env_line}"),
            )
            .replace(
                "groups = [\"agents\"]\n\n[[grants]]",
                &format!("groups = [\"agents\"]\n{sa_line}\n\n[[grants]]"),
            )
        };
        assert!(parse(&with(
            "databases = [\"reports\"]",
            "may_act_for = [\"alice\"]"
        ))
        .is_ok());
        assert!(parse(&with("databases = [\"*\"]", "may_act_for = [\"*\"]")).is_ok());
        for (env_line, sa_line, key) in [
            ("databases = [\"a/b\"]", "", "environments[0].databases"),
            (
                "databases = [\"*\", \"x\"]",
                "",
                "environments[0].databases",
            ),
            ("databases = [\"\"]", "", "environments[0].databases"),
            (
                "",
                "may_act_for = [\"*\", \"bob\"]",
                "service_accounts[0].may_act_for",
            ),
            (
                "",
                "may_act_for = [\" \"]",
                "service_accounts[0].may_act_for",
            ),
            (
                "",
                "on_behalf_of = \"bob\"\nmay_act_for = [\"alice\"]",
                "service_accounts[0].may_act_for",
            ),
        ] {
            let e = parse(&with(env_line, sa_line)).unwrap_err().to_string();
            assert!(e.contains(key), "{env_line} {sa_line}: {e}");
            assert!(e.contains("test.toml:"), "{e}");
        }
    }

    #[test]
    fn unknown_grant_environment_names_key_and_line() {
        let text = OK.replace("environments = [\"prod\"]", "environments = [\"staging\"]");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("test.toml:17:"), "{e}");
        assert!(e.contains("grants[0].environments[0]"), "{e}");
        assert!(e.contains("staging"), "{e}");
    }

    #[test]
    fn unknown_key_is_a_syntax_error_with_line() {
        let text = OK.replace("tier = \"production\"", "tier = \"production\"\nteir = 1");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("line 8"), "{e}");
        assert!(e.contains("teir"), "{e}");
    }

    #[test]
    fn postgres_public_address_defaults_to_the_public_host_and_listener_port() {
        let text = OK.replace(
            "postgres_listen = \"127.0.0.1:7432\"",
            "postgres_listen = \"0.0.0.0:6432\"\npublic_url = \"https://gh.example.com\"",
        );
        assert_eq!(
            parse(&text).unwrap().postgres_public_address(),
            "gh.example.com:6432"
        );
        let v6 = OK.replace(
            "postgres_listen = \"127.0.0.1:7432\"",
            "postgres_listen = \"[::]:7432\"\npublic_url = \"http://[::1]:7480\"",
        );
        assert_eq!(parse(&v6).unwrap().postgres_public_address(), "[::1]:7432");
        let set = OK.replace(
            "postgres_listen = \"127.0.0.1:7432\"",
            "postgres_listen = \"127.0.0.1:7432\"\npostgres_public_address = \"db.example.com:443\"",
        );
        assert_eq!(
            parse(&set).unwrap().postgres_public_address(),
            "db.example.com:443"
        );
    }

    #[test]
    fn bad_postgres_public_address_names_key_and_line() {
        for bad in [
            "db.example.com",
            "db.example.com:0",
            ":7432",
            "::1:7432",
            "a b:7432",
        ] {
            let text = OK.replace(
                "postgres_listen = \"127.0.0.1:7432\"",
                &format!("postgres_listen = \"127.0.0.1:7432\"\npostgres_public_address = {bad:?}"),
            );
            let e = parse(&text).unwrap_err().to_string();
            assert!(
                e.contains(":4:") && e.contains("server.postgres_public_address"),
                "{bad}: {e}"
            );
        }
        assert!(is_host_port("[::1]:7432") && is_host_port("10.0.0.5:7432"));
    }

    #[test]
    fn bad_listen_address() {
        let text = OK.replace("127.0.0.1:7432", "localhost");
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains(":3:") && e.contains("server.postgres_listen"),
            "{e}"
        );
    }

    #[test]
    fn bad_token_hash_and_upstream() {
        let e = parse(&OK.replace(
            "0000000000000000000000000000000000000000000000000000000000000000",
            "abc",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("service_accounts[0].token_sha256"), "{e}");
        let e = parse(&OK.replace("postgresql://app@", "mysql://app@"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("environments[0].upstream"), "{e}");
    }

    #[test]
    fn mcp_section_defaults_overrides_and_checks() {
        let c = parse(OK).expect("valid");
        assert!(c.mcp.enabled);
        assert_eq!((c.mcp.max_rows, c.mcp.concurrent_queries), (500, 2));
        let c = parse(&format!(
            "{OK}[mcp]\nstatements_per_minute = 10\n[[mcp.limits]]\nidentity = \"bot\"\nrows_per_hour = 5\n"
        ))
        .expect("valid");
        assert_eq!(c.mcp.statements_per_minute, 10);
        assert_eq!(c.mcp.limits[0].rows_per_hour, Some(5));
        let e = parse(&format!(
            "{OK}[[mcp.limits]]\nidentity = \"bot\"\n[[mcp.limits]]\nidentity = \"bot\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("mcp.limits[1].identity"), "{e}");
        let e = parse(&format!("{OK}[mcp]\nmax_rows = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("mcp.max_rows"), "{e}");
        assert!(
            parse(&format!("{OK}[mcp]\nrows = 1\n")).is_err(),
            "unknown keys"
        );
    }

    const OIDC: &str = r#"
[oidc]
issuer = "https://idp.example.com"
client_id = "gatehouse"
client_secret_env = "GATEHOUSE_OIDC_SECRET"
groups_claim = "groups"
"#;

    #[test]
    fn oidc_section_defaults_and_checks() {
        let c = parse(&format!("{OK}{OIDC}")).expect("valid");
        let o = c.oidc.as_ref().unwrap();
        assert_eq!(o.scopes.get_ref(), &["openid", "email", "profile"]);
        assert_eq!(o.username_claim.get_ref(), "email");
        assert_eq!(*o.clock_skew_seconds.get_ref(), 60);

        let e = parse(&format!(
            "{OK}{}",
            OIDC.replace("https://idp", "http://idp")
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("test.toml:20:") && e.contains("oidc.issuer"),
            "{e}"
        );
        assert!(parse(&format!(
            "{OK}{}",
            OIDC.replace("https://idp.example.com", "http://127.0.0.1:9")
        ))
        .is_ok());

        let e = parse(&format!("{OK}{OIDC}scopes = [\"email\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(":24:") && e.contains("oidc.scopes"), "{e}");
        let e = parse(&format!("{OK}{OIDC}clock_skew_seconds = 3600\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":24:") && e.contains("oidc.clock_skew_seconds"),
            "{e}"
        );
        let e = parse(&format!("{OK}{}", OIDC.replace("\"gatehouse\"", "\" \"")))
            .unwrap_err()
            .to_string();
        assert!(e.contains(":21:") && e.contains("oidc.client_id"), "{e}");
    }

    #[test]
    fn rules_are_read_and_checked_with_key_and_line() {
        let rules = r#"
[policy]
cache_size = 100

[[rules]]
id = "no-truncate-audit"
description = "the audit tables are append-only"
action = "deny"
kinds = ["truncate"]
tables = ["audit_*"]
"#;
        let c = parse(&format!("{OK}{rules}")).expect("valid");
        assert_eq!(c.rules.len(), 1);
        assert_eq!(c.rules[0].get_ref().id, "no-truncate-audit");
        assert!(c.policy.builtin_rules);
        assert_eq!(c.policy.cache_size, 100);

        let e = parse(&format!("{OK}{rules}hours = \"9-5\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(":22:") && e.contains("rules[0].hours"), "{e}");
        let e = parse(&format!(
            "{OK}{rules}{}",
            rules.replace("[policy]\ncache_size = 100", "")
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(":31:") && e.contains("rules[1].id") && e.contains("twice"),
            "{e}"
        );
        let e = parse(&format!(
            "{OK}{}",
            rules.replace("no-truncate-audit", "prod-no-drop")
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("rules[0].id") && e.contains("built-in"), "{e}");
        let e = parse(&format!("{OK}{rules}environments = [\"nope\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("rules[0].environments") && e.contains("nope"),
            "{e}"
        );
        let e = parse(&format!("{OK}{}", rules.replace("\"deny\"", "\"block\"")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 25") && e.contains("block"), "{e}");
        let e = parse(&format!("{OK}{}", rules.replace("kinds =", "kind =")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 26") && e.contains("kind"), "{e}");
    }

    #[test]
    fn grant_upstream_role_must_be_an_identifier() {
        let text = OK.replace(
            "environments = [\"prod\"]",
            "environments = [\"prod\"]\nupstream_role = \"ro; DROP\"",
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains(":18:") && e.contains("grants[0].upstream_role"),
            "{e}"
        );
        assert!(parse(&OK.replace(
            "environments = [\"prod\"]",
            "environments = [\"prod\"]\nupstream_role = \"app_readonly\""
        ))
        .is_ok());
    }

    #[test]
    fn replay_rows_are_bounded() {
        let with = |n: usize| {
            OK.replace(
                "\n[[service_accounts]]",
                &format!("replay_rows = {n}\n\n[[service_accounts]]"),
            )
        };
        let c = parse(&with(5)).expect("valid");
        assert_eq!(
            c.environments[0].replay_rows.as_ref().map(|n| *n.get_ref()),
            Some(5)
        );
        let e = parse(&with(MAX_REPLAY_ROWS + 1)).unwrap_err().to_string();
        assert!(e.contains("environments[0].replay_rows"), "{e}");
    }

    #[test]
    fn access_requests_are_checked_with_key_and_line() {
        let with = |table: &str| {
            OK.replace(
                "\n[[service_accounts]]",
                &format!("\n[environments.access_requests]\n{table}\n\n[[service_accounts]]"),
            )
        };
        let c = parse(&with("max_duration_seconds = 7200\nroles = [\"app_readonly\"]\nbreak_glass_groups = [\"oncall\"]\nbreak_glass_max_seconds = 900")).expect("valid");
        let a = c.environments[0]
            .access_requests
            .as_ref()
            .unwrap()
            .get_ref();
        assert_eq!(a.max_duration_seconds, 7200);
        assert_eq!(a.pending_expiry_seconds, 3600);
        assert_eq!(a.roles, ["app_readonly"]);
        for (table, key) in [
            (
                "max_duration_seconds = 0",
                "access_requests.max_duration_seconds",
            ),
            (
                "pending_expiry_seconds = 0",
                "access_requests.pending_expiry_seconds",
            ),
            ("roles = [\"ro; DROP\"]", "access_requests.roles"),
            ("roles = [\"ro\", \"ro\"]", "access_requests.roles"),
            (
                "max_duration_seconds = 600\nbreak_glass_max_seconds = 601",
                "access_requests.break_glass_max_seconds",
            ),
        ] {
            let e = parse(&with(table)).unwrap_err().to_string();
            assert!(
                e.contains(":10:") && e.contains(&format!("environments[0].{key}")),
                "{table}: {e}"
            );
        }
        assert!(parse(&with("max_duration = 1")).is_err());
    }
}
