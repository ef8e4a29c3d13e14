//! Cancel keys: each client gets its own random BackendKeyData, mapped here to the upstream
//! backend that serves it. A CancelRequest arrives on a fresh, unauthenticated connection, so the
//! 32-bit secret (compared in constant time) is the only proof; a wrong one does nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use subtle::ConstantTimeEq;

use super::upstream::{self, UpstreamTarget};

struct Entry {
    secret: i32,
    target: Arc<UpstreamTarget>,
    upstream_pid: i32,
    upstream_secret: i32,
}

#[derive(Clone, Default)]
pub struct CancelRegistry {
    entries: Arc<Mutex<HashMap<i32, Entry>>>,
}

/// Removes its key from the registry when the session ends.
pub struct CancelKey {
    registry: CancelRegistry,
    pub pid: i32,
    pub secret: i32,
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.pid);
    }
}

impl CancelRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Allocates a fresh key for a client whose upstream backend is `(upstream_pid, upstream_secret)`.
    pub fn register(
        &self,
        target: Arc<UpstreamTarget>,
        upstream_pid: i32,
        upstream_secret: i32,
    ) -> CancelKey {
        let mut rng = rand::rngs::OsRng;
        let secret: i32 = rng.gen();
        let mut entries = self.lock();
        let pid = loop {
            let pid = rng.gen_range(1..i32::MAX);
            if !entries.contains_key(&pid) {
                break pid;
            }
        };
        entries.insert(
            pid,
            Entry {
                secret,
                target,
                upstream_pid,
                upstream_secret,
            },
        );
        CancelKey {
            registry: self.clone(),
            pid,
            secret,
        }
    }

    /// Forwards a client's CancelRequest to the right upstream, if the key matches.
    pub async fn cancel(&self, pid: i32, secret: i32, timeout: Duration) -> bool {
        if !self.knows(pid, secret) {
            tracing::warn!(pid, "cancel request with an unknown key ignored");
            return false;
        }
        self.forward(pid, secret, timeout).await
    }

    /// Whether `(pid, secret)` is a key this gateway issued (and its session still runs).
    pub fn knows(&self, pid: i32, secret: i32) -> bool {
        self.lock()
            .get(&pid)
            .is_some_and(|e| bool::from(e.secret.to_be_bytes().ct_eq(&secret.to_be_bytes())))
    }

    /// Forwards a CancelRequest for a key this gateway issued; false (quietly) for any other,
    /// as for one relayed by another replica that is not ours.
    pub async fn forward(&self, pid: i32, secret: i32, timeout: Duration) -> bool {
        let found = {
            let entries = self.lock();
            entries.get(&pid).and_then(|e| {
                bool::from(e.secret.to_be_bytes().ct_eq(&secret.to_be_bytes()))
                    .then(|| (e.target.clone(), e.upstream_pid, e.upstream_secret))
            })
        };
        let Some((target, upid, usecret)) = found else {
            return false;
        };
        match upstream::cancel(&target, upid, usecret, timeout).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "forwarding a cancel request failed");
                false
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_unique_and_forgotten_on_drop() {
        let r = CancelRegistry::default();
        let t = Arc::new(
            UpstreamTarget::parse("postgresql://u@127.0.0.1:1/d?sslmode=disable", None).unwrap(),
        );
        let a = r.register(t.clone(), 10, 20);
        let b = r.register(t, 11, 21);
        assert_ne!(a.pid, b.pid);
        assert_eq!(r.len(), 2);
        // Wrong secret: nothing is forwarded.
        assert!(
            !r.cancel(a.pid, a.secret.wrapping_add(1), Duration::from_millis(100))
                .await
        );
        drop(a);
        assert_eq!(r.len(), 1);
    }
}
