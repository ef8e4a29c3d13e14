//! [`SessionHandle`]: the live session shared by a process's commands and tunnels. It hands out
//! a token that is fresh, refreshing it shortly before expiry and saving the new pair, and
//! cooperates with other processes using the same store: a refresh rotates the token pair (the
//! old one stops working), so before refreshing, and after any rejection, it re-reads the
//! store and adopts a newer session another process saved.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Mutex;

use crate::api::{ApiClient, TokenPair};
use crate::error::{Error, Result};
use crate::session::Session;
use crate::store::SessionStore;

/// The live session of one process.
#[derive(Clone)]
pub struct SessionHandle {
    inner: Arc<Inner>,
}

struct Inner {
    store: SessionStore,
    api: ApiClient,
    session: Mutex<Session>,
}

impl SessionHandle {
    /// Loads the stored session; `Error::NotLoggedIn` if there is none.
    pub async fn load(store: SessionStore) -> Result<Self> {
        let s2 = store.clone();
        let session = blocking(move || s2.load())
            .await?
            .ok_or(Error::NotLoggedIn)?;
        Self::new(store, session)
    }

    /// A handle over a session already in hand (e.g. just logged in).
    pub fn new(store: SessionStore, session: Session) -> Result<Self> {
        let api = ApiClient::new(&session.gateway, &session.trust)?;
        Ok(SessionHandle {
            inner: Arc::new(Inner {
                store,
                api,
                session: Mutex::new(session),
            }),
        })
    }

    pub fn api(&self) -> &ApiClient {
        &self.inner.api
    }

    pub fn store(&self) -> &SessionStore {
        &self.inner.store
    }

    /// A copy of the current session (tokens included: keep it out of logs).
    pub async fn snapshot(&self) -> Session {
        self.inner.session.lock().await.clone()
    }

    /// A token that is good for a while: refreshed first if it is close to expiry. Fails with
    /// `SessionExpired` when the session is over (then `gatehouse login` is the way on).
    pub async fn token(&self) -> Result<String> {
        let mut s = self.inner.session.lock().await;
        let now = Utc::now();
        if !s.needs_refresh(now) {
            return Ok(s.token.clone());
        }
        self.renew(&mut s, None).await?;
        Ok(s.token.clone())
    }

    /// Called when the gateway refused `token`: adopts a newer stored session or refreshes.
    /// Returns a token to try again with, or `SessionExpired`.
    pub async fn rejected(&self, token: &str) -> Result<String> {
        let mut s = self.inner.session.lock().await;
        if s.token != token {
            // Someone in this process already replaced it.
            return Ok(s.token.clone());
        }
        self.renew(&mut s, Some(token)).await?;
        Ok(s.token.clone())
    }

    /// The renewal itself, under the session lock. `rejected` is a token the gateway refused.
    async fn renew(&self, s: &mut Session, rejected: Option<&str>) -> Result<()> {
        // Another process (a second tunnel, a new login) may have saved a newer session.
        if self.adopt_stored(s).await? {
            return Ok(());
        }
        let now = Utc::now();
        let Some(refresh) = s.refresh_token.clone().filter(|_| s.can_refresh(now)) else {
            if rejected.is_some() || s.access_expired(now) {
                return Err(s.expired_error());
            }
            // Nothing to refresh with, but the token still works for now.
            return Ok(());
        };
        match self.inner.api.refresh(&refresh).await {
            Ok(pair) => {
                apply(s, pair);
                let (store, copy) = (self.inner.store.clone(), s.clone());
                blocking(move || store.save(&copy)).await?;
                tracing::info!(identity = %s.identity, "session refreshed");
                Ok(())
            }
            Err(Error::LoginRefused(_)) => {
                // A concurrent refresh by another process may have used our refresh token a
                // moment ago: give it time to save its result before giving up.
                for _ in 0..10 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if self.adopt_stored(s).await? {
                        return Ok(());
                    }
                }
                Err(s.expired_error())
            }
            Err(e) if rejected.is_none() && !s.access_expired(Utc::now()) => {
                // The gateway is unreachable or failing; the current token still works, so
                // keep it and try again on the next call.
                tracing::warn!(error = %e, "could not refresh the session yet");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Replaces `s` with the stored session if that is a newer one for the same gateway and
    /// identity. True if it did.
    async fn adopt_stored(&self, s: &mut Session) -> Result<bool> {
        let store = self.inner.store.clone();
        let stored = match blocking(move || store.load()).await {
            Ok(Some(x)) => x,
            Ok(None) => return Ok(false),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the session store");
                return Ok(false);
            }
        };
        let same_place = stored.gateway == s.gateway && stored.identity == s.identity;
        let newer = stored.token != s.token && !stored.is_dead(Utc::now());
        if same_place && newer {
            *s = stored;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Runs `f` with a fresh token; on a 401 renews once and retries.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn(ApiClient, String) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let token = self.token().await?;
        match f(self.inner.api.clone(), token.clone()).await {
            Err(Error::LoginRefused(_)) => {
                let token = self.rejected(&token).await?;
                match f(self.inner.api.clone(), token).await {
                    Err(Error::LoginRefused(_)) => Err(self.snapshot().await.expired_error()),
                    other => other,
                }
            }
            other => other,
        }
    }

    /// Keeps the session fresh until the handle's last user is gone: wakes up when a refresh is
    /// due and refreshes (retrying every 30 s while the gateway is unreachable).
    pub fn spawn_refresher(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let handle = SessionHandle { inner };
                let due = handle.snapshot().await.refresh_due();
                let Some(due) = due else { return };
                let wait = (due - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .max(Duration::from_millis(500));
                drop(handle);
                tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
                let Some(inner) = weak.upgrade() else { return };
                let handle = SessionHandle { inner };
                let result = handle.token().await;
                let still_due = handle
                    .snapshot()
                    .await
                    .refresh_due()
                    .is_some_and(|d| d <= Utc::now());
                drop(handle);
                if let Err(e) = result {
                    tracing::warn!(error = %e, "the session could not be refreshed");
                    // Expired: nothing more to do until someone logs in again, which the
                    // tunnel notices on its next connection.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                } else if still_due {
                    // The gateway could not be reached; the token still works. Retry soon,
                    // without spinning.
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        })
    }
}

/// Copies a new token pair into the session.
pub fn apply(s: &mut Session, pair: TokenPair) {
    s.token = pair.token;
    s.expires_at = Some(pair.expires_at);
    if pair.refresh_token.is_some() {
        s.refresh_token = pair.refresh_token;
        s.refresh_expires_at = pair.refresh_expires_at;
    }
    s.issued_at = Utc::now();
}

/// Runs blocking store work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
}
