//! The app's one managed state: the session store, the signed-in session (if any) and the
//! tunnels open over it. Commands only go through here, so the rules live in one place: one
//! session at a time, one tunnel per environment, and every tunnel stops when the session
//! they run over is replaced or ended. Tunnels open on stable ports (`gatehouse_client::ports`,
//! shared with the CLI), and those open when the app quit are reopened at its next start.
//!
//! Architecture invariant: tokens stay in this process. Nothing here returns a token, and the
//! UI reaches the gateway's API only through `api_request`, which adds it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use gatehouse_client::api::RawResponse;
use gatehouse_client::login::{self, Credentials, LoginTarget, TrustChoice};
use gatehouse_client::session::LoginMethod;
use gatehouse_client::{
    start_stable, Error, PortBook, Session, SessionHandle, SessionStore, Trust, TunnelInfo,
    TunnelManager, TunnelSpec,
};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::error::{CommandError, CommandResult};

/// `session_info()` and the logins: who is signed in where. (Its TypeScript twin in
/// `ui/src/api/desktop-types.ts` is generated from this struct; see `ui_types.rs`.)
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct SessionInfo {
    pub gateway: String,
    pub identity: String,
    /// When the access token runs out (RFC 3339; renewed automatically while the app runs);
    /// `null` only for a service-account session the CLI stored.
    pub expires_at: Option<String>,
}

/// One open tunnel as the UI shows it (`connect`, `tunnels`, the `tunnels-changed` event).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct TunnelView {
    pub environment: String,
    pub database: Option<String>,
    pub port: u16,
    pub connection_string: String,
    pub psql: String,
    pub opened_at: String,
    pub active_connections: usize,
}

/// The state Tauri manages.
pub struct AppState {
    store: SessionStore,
    /// Each environment's last local port, and the tunnels open when the app last ran.
    ports: PortBook,
    /// How many approvals wait on the signed-in person (the tray shows it).
    waiting: std::sync::atomic::AtomicUsize,
    /// What the approvals watcher last saw (see `notify`).
    watcher: crate::notify::Watcher,
    /// The gateway's PostgreSQL address when it is not the one the gateway announces
    /// (`GATEHOUSE_POSTGRES`, like the CLI's `--postgres`).
    postgres: Option<String>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Whether the stored session was looked at yet (lazily: the first command does it, inside
    /// the async runtime that the session's refresher needs).
    restored: bool,
    current: Option<Connected>,
}

/// A signed-in session and what runs over it.
struct Connected {
    handle: SessionHandle,
    tunnels: TunnelManager,
    /// Environment → (tunnel id, when it was opened).
    open: BTreeMap<String, (u64, DateTime<Utc>)>,
    refresher: tokio::task::JoinHandle<()>,
}

impl Drop for Connected {
    fn drop(&mut self) {
        // The tunnel manager stops its tunnels when dropped; the refresher would only notice
        // at its next wake-up.
        self.refresher.abort();
    }
}

impl Connected {
    fn new(handle: SessionHandle) -> Connected {
        Connected {
            refresher: handle.spawn_refresher(),
            tunnels: TunnelManager::new(handle.clone()),
            handle,
            open: BTreeMap::new(),
        }
    }

    fn views(&self) -> Vec<TunnelView> {
        let by_id: BTreeMap<u64, TunnelInfo> =
            self.tunnels.list().into_iter().map(|t| (t.id, t)).collect();
        self.open
            .values()
            .filter_map(|(id, at)| by_id.get(id).map(|t| view(t, *at)))
            .collect()
    }
}

fn view(t: &TunnelInfo, opened_at: DateTime<Utc>) -> TunnelView {
    TunnelView {
        environment: t.environment.clone(),
        database: t.database.clone(),
        port: t.port,
        connection_string: t.url.clone(),
        psql: t.psql.clone(),
        opened_at: opened_at.to_rfc3339(),
        active_connections: t.active_connections,
    }
}

fn info(s: &Session) -> SessionInfo {
    SessionInfo {
        gateway: s.gateway.clone(),
        identity: s.identity.clone(),
        expires_at: s.expires_at.map(|e| e.to_rfc3339()),
    }
}

/// Runs blocking session-store work (the keychain talks D-Bus) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> gatehouse_client::Result<T> + Send + 'static,
) -> gatehouse_client::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
}

/// How a login proves who the person is.
pub enum LoginWith {
    Password { username: String, password: String },
    Sso,
}

impl AppState {
    /// The state for this process: the same session store as the CLI
    /// (`GATEHOUSE_SESSION_STORE`, `GATEHOUSE_CONFIG_DIR`), so a CLI login is the app's too.
    pub fn from_env() -> gatehouse_client::Result<AppState> {
        let store = SessionStore::from_env()?;
        Ok(AppState {
            ports: PortBook::new(store.dir()),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            watcher: Default::default(),
            store,
            postgres: std::env::var("GATEHOUSE_POSTGRES")
                .ok()
                .filter(|p| !p.is_empty()),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// Takes the lock, adopting the stored session the first time.
    async fn lock(&self) -> tokio::sync::MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().await;
        if !inner.restored {
            inner.restored = true;
            let store = self.store.clone();
            match blocking(move || store.load()).await {
                Ok(Some(s)) if !s.is_dead(Utc::now()) => {
                    match SessionHandle::new(self.store.clone(), s) {
                        Ok(h) => inner.current = Some(Connected::new(h)),
                        Err(e) => tracing::warn!(error = %e, "the stored session cannot be used"),
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the stored session"),
            }
        }
        inner
    }

    /// The signed-in session, or `None` when there is none or it can no longer be renewed.
    pub async fn session_info(&self) -> Option<SessionInfo> {
        let inner = self.lock().await;
        let c = inner.current.as_ref()?;
        let s = c.handle.snapshot().await;
        (!s.is_dead(Utc::now())).then(|| info(&s))
    }

    /// Logs in, stores the session and makes it current (ending the previous one, and its
    /// tunnels). The lock is not held while the person is in the browser.
    pub async fn login(&self, gateway: String, with: LoginWith) -> CommandResult<SessionInfo> {
        let creds = match with {
            LoginWith::Password { username, password } => {
                Credentials::Password { username, password }
            }
            LoginWith::Sso => Credentials::Sso {
                open: Box::new(|url: &str| {
                    tracing::info!(%url, "opening the browser for single sign-on");
                    if let Err(e) = login::open_in_browser(url) {
                        tracing::warn!(error = %e, %url, "could not open the browser");
                    }
                }),
            },
        };
        let trust = self.trust_for(&gateway).await;
        let target = LoginTarget {
            gateway,
            postgres: self.postgres.clone(),
            trust,
        };
        // A remote gateway whose certificate nothing vouches for is refused with its
        // fingerprint in the message (there is no dialog to ask in yet); a local one is
        // trusted on first use and pinned, as by the CLI.
        let refuse = |_: &gatehouse_client::tls::Probe| false;
        let logged_in = login::login(&target, creds, &refuse).await?;
        for note in &logged_in.notes {
            tracing::info!(note = %note, "login");
        }
        let session = logged_in.session;
        {
            let (store, copy) = (self.store.clone(), session.clone());
            blocking(move || store.save(&copy).map(|_| ())).await?;
        }
        let handle = SessionHandle::new(self.store.clone(), session.clone())?;
        let previous = {
            let mut inner = self.lock().await;
            inner.current.replace(Connected::new(handle))
        };
        if let Some(prev) = previous {
            revoke_unless_same(prev, &session).await;
        }
        Ok(info(&session))
    }

    /// How to trust `gateway`'s certificate at a new login: as the current or stored session
    /// for the same gateway does (a pin or CA given to the CLI, or trusted on first use), so
    /// signing in again never needs those choices made again; otherwise decided afresh.
    async fn trust_for(&self, gateway: &str) -> TrustChoice {
        let current = match self.lock().await.current.as_ref() {
            Some(c) => Some(c.handle.snapshot().await),
            None => None,
        };
        let previous = match current {
            Some(s) => Some(s),
            None => {
                let store = self.store.clone();
                blocking(move || store.load()).await.ok().flatten()
            }
        };
        let same = |s: &Session| {
            gatehouse_client::api::normalize_base(gateway).is_ok_and(|g| g == s.gateway)
        };
        match previous.filter(same).map(|s| s.trust) {
            Some(Trust::Pinned { sha256 }) => TrustChoice::Fingerprint(sha256),
            Some(Trust::Ca { pem }) => TrustChoice::Ca(pem),
            Some(Trust::Insecure) => TrustChoice::Insecure,
            Some(Trust::WebPki) | None => TrustChoice::Auto,
        }
    }

    /// Revokes the session at the gateway (best effort), stops its tunnels and forgets it.
    pub async fn logout(&self) -> CommandResult<()> {
        let current = self.lock().await.current.take();
        if let Some(c) = current {
            let s = c.handle.snapshot().await;
            drop(c);
            // Signed out on purpose: nothing to reopen at the next start.
            if let Err(e) = self.ports.all_closed(&s.gateway) {
                tracing::warn!(error = %e, "cannot note the closed tunnels");
            }
            if s.method != LoginMethod::ServiceToken {
                let api = gatehouse_client::api::ApiClient::new(&s.gateway, &s.trust)?;
                let revoke =
                    tokio::time::timeout(std::time::Duration::from_secs(5), api.logout(&s.token));
                if let Ok(Err(e)) = revoke.await {
                    tracing::warn!(error = %e, "the gateway did not confirm the logout");
                }
            }
        }
        let store = self.store.clone();
        blocking(move || store.clear()).await?;
        Ok(())
    }

    /// A gateway API call with the session's token; a 401 renews the session once and retries.
    /// Without a usable session the answer is the gateway's own kind of 401, so the UI handles
    /// "sign in again" the same way in both shells.
    pub async fn api_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> CommandResult<RawResponse> {
        let unauthorized = || RawResponse {
            status: 401,
            body: serde_json::json!({
                "error": "unauthorized",
                "message": CommandError::NotLoggedIn.to_string(),
            }),
        };
        let Ok(handle) = self.handle().await else {
            return Ok(unauthorized());
        };
        let token = match handle.token().await {
            Ok(t) => t,
            Err(e @ (Error::SessionExpired { .. } | Error::NotLoggedIn)) => {
                tracing::info!(error = %e, "the session is over");
                return Ok(unauthorized());
            }
            Err(e) => return Err(e.into()),
        };
        let first = handle.api().request(&token, method, path, body).await?;
        if first.status != 401 {
            return Ok(first);
        }
        match handle.rejected(&token).await {
            Ok(fresh) => Ok(handle.api().request(&fresh, method, path, body).await?),
            // The session is over: the UI gets the 401 and goes back to sign-in.
            Err(_) => Ok(first),
        }
    }

    async fn handle(&self) -> CommandResult<SessionHandle> {
        let inner = self.lock().await;
        inner
            .current
            .as_ref()
            .map(|c| c.handle.clone())
            .ok_or(CommandError::NotLoggedIn)
    }

    /// Opens a tunnel to `environment` (or returns the one already open), after checking with
    /// the gateway that this identity may reach it.
    pub async fn connect(
        &self,
        environment: String,
        database: Option<String>,
        port: Option<u16>,
    ) -> CommandResult<TunnelView> {
        let handle = self.handle().await?;
        let envs = handle
            .call(|api, token| async move { api.environments(&token).await })
            .await
            .map_err(|e| CommandError::from(e).for_app())?;
        if !envs.iter().any(|e| e.name == environment && e.can_connect) {
            return Err(CommandError::NotReachable(environment));
        }
        let mut inner = self.lock().await;
        let c = inner.current.as_mut().ok_or(CommandError::NotLoggedIn)?;
        if let Some(existing) = c.views().into_iter().find(|t| t.environment == environment) {
            return Ok(existing);
        }
        let mut spec = TunnelSpec::new(&environment);
        spec.database = database.filter(|d| !d.is_empty());
        let gateway = c.handle.snapshot().await.gateway;
        // The port asked for, else the one this environment had last time, else a free one.
        let t = start_stable(&c.tunnels, &self.ports, &gateway, spec, port).await?;
        let opened_at = Utc::now();
        c.open.insert(environment.clone(), (t.id, opened_at));
        tracing::info!(env = %environment, port = t.port, "tunnel opened");
        Ok(view(&t, opened_at))
    }

    /// Closes the tunnel to `environment` and every connection through it (nothing to do if
    /// none is open).
    pub async fn disconnect(&self, environment: &str) -> CommandResult<()> {
        let mut inner = self.lock().await;
        if let Some(c) = inner.current.as_mut() {
            if let Some((id, _)) = c.open.remove(environment) {
                c.tunnels.stop(id)?;
                tracing::info!(env = %environment, "tunnel closed");
                let gateway = c.handle.snapshot().await.gateway;
                if let Err(e) = self.ports.closed(&gateway, environment) {
                    tracing::warn!(error = %e, "cannot note the closed tunnel");
                }
            }
        }
        Ok(())
    }

    /// Closes every tunnel (the tray's "Disconnect all").
    pub async fn disconnect_all(&self) {
        let mut inner = self.lock().await;
        if let Some(c) = inner.current.as_mut() {
            c.open.clear();
            c.tunnels.stop_all();
            let gateway = c.handle.snapshot().await.gateway;
            if let Err(e) = self.ports.all_closed(&gateway) {
                tracing::warn!(error = %e, "cannot note the closed tunnels");
            }
        }
    }

    /// Reopens the tunnels that were open when the app last ran for the signed-in gateway, on
    /// their ports, unless the person turned that off. One that cannot be reopened (no longer
    /// granted, port taken) is skipped with a warning and stays marked for the next start.
    pub async fn reopen_tunnels(&self) -> Vec<TunnelView> {
        if !self.ports.reopen_tunnels() {
            return Vec::new();
        }
        let Ok(handle) = self.handle().await else {
            return Vec::new();
        };
        let gateway = handle.snapshot().await.gateway;
        let mut opened = Vec::new();
        for (environment, r) in self.ports.open_at(&gateway) {
            match self
                .connect(environment.clone(), r.database.clone(), Some(r.port))
                .await
            {
                Ok(t) => opened.push(t),
                Err(e) => {
                    tracing::warn!(env = %environment, port = r.port, error = %e, "cannot reopen a tunnel")
                }
            }
        }
        opened
    }

    /// Whether tunnels are reopened at start (a setting, on by default).
    pub fn reopen_setting(&self) -> bool {
        self.ports.reopen_tunnels()
    }

    pub fn set_reopen_setting(&self, on: bool) -> CommandResult<()> {
        Ok(self.ports.set_reopen_tunnels(on)?)
    }

    /// Who is signed in, and a handle for the API, for the notification watcher.
    pub async fn watcher_session(&self) -> Option<(SessionHandle, String)> {
        let handle = self.handle().await.ok()?;
        let me = handle.snapshot().await.identity;
        Some((handle, me))
    }

    pub fn watcher(&self) -> &crate::notify::Watcher {
        &self.watcher
    }

    pub fn set_waiting(&self, n: usize) {
        self.waiting.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many approvals wait on the signed-in person, as the watcher last saw.
    pub fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn tunnels(&self) -> Vec<TunnelView> {
        let inner = self.lock().await;
        inner
            .current
            .as_ref()
            .map(Connected::views)
            .unwrap_or_default()
    }
}

/// Revokes a replaced session at the gateway unless the new login adopted it.
async fn revoke_unless_same(prev: Connected, new: &Session) {
    let s = prev.handle.snapshot().await;
    drop(prev);
    if s.method == LoginMethod::ServiceToken || s.token == new.token {
        return;
    }
    if let Ok(api) = gatehouse_client::api::ApiClient::new(&s.gateway, &s.trust) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), api.logout(&s.token)).await;
    }
}
