//! In-memory copies of what the store holds (grants, group memberships, masking overrides and
//! exemptions) are re-read after each change. Two changes made at once each re-read the
//! store; were reads and installs free to interleave, the slower reload could install the
//! older list last, and a grant just deleted, or a column just tagged, would be back to what
//! it was in memory until the next change. Security decisions read those copies, so that is
//! an opening, not a glitch: a [`ReloadGate`] runs one reload at a time, read and install
//! together, so the last install is always of the last read.

use std::future::Future;

#[derive(Default)]
pub struct ReloadGate(tokio::sync::Mutex<()>);

impl ReloadGate {
    /// Awaits `read` and hands what it gave to `install`, with no other reload of this gate in
    /// between.
    pub async fn reload<T, E>(
        &self,
        read: impl Future<Output = Result<T, E>>,
        install: impl FnOnce(T),
    ) -> Result<(), E> {
        let _one = self.0.lock().await;
        install(read.await?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A reload whose read started before a change (and so reads the older list) cannot
    /// install after a reload that read the newer one.
    #[tokio::test]
    async fn the_last_install_is_of_the_last_read() {
        let gate = Arc::new(ReloadGate::default());
        let installed = Arc::new(Mutex::new(Vec::<&str>::new()));
        let (release_old, old_read) = tokio::sync::oneshot::channel::<&str>();
        let slow = {
            let (gate, installed) = (gate.clone(), installed.clone());
            tokio::spawn(async move {
                gate.reload(async { old_read.await.map_err(|_| ()) }, |list| {
                    installed.lock().unwrap().push(list)
                })
                .await
            })
        };
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        let fast = {
            let (gate, installed) = (gate.clone(), installed.clone());
            tokio::spawn(async move {
                gate.reload(async { Ok::<_, ()>("new") }, |list| {
                    installed.lock().unwrap().push(list)
                })
                .await
            })
        };
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        release_old.send("old").unwrap();
        slow.await.unwrap().unwrap();
        fast.await.unwrap().unwrap();
        assert_eq!(*installed.lock().unwrap(), ["old", "new"]);
    }

    #[tokio::test]
    async fn a_failed_read_installs_nothing() {
        let gate = ReloadGate::default();
        let mut installed = false;
        let r = gate
            .reload(async { Err::<(), _>("store down") }, |_| installed = true)
            .await;
        assert_eq!(r, Err("store down"));
        assert!(!installed);
    }
}
