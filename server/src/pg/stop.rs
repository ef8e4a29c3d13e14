//! Ending a connection from outside (a revoked token, access taken away, an administrator):
//! the registry sets the reason once, the connection's relay sees it.
//!
//! A tokio `watch` did this, but the relay polls its stop at every wake of the session (twice
//! per statement), and polling a `watch` takes the mutex of its waiter list each time, while
//! its client reads each took the lock around its value. Here the relay keeps its waker from
//! its first poll (a task's waker stays the same) and otherwise reads one atomic.

use std::future::Future;
use std::sync::atomic::{fence, Ordering};
use std::sync::OnceLock;
use std::task::{Poll, Waker};

use super::connections::Termination;

#[derive(Default)]
pub struct Stop {
    why: OnceLock<Termination>,
    waiter: OnceLock<Waker>,
}

impl Stop {
    /// Tells the connection to end; false when it already was (the first reason stands).
    pub fn send(&self, why: Termination) -> bool {
        let first = self.why.set(why).is_ok();
        // Paired with the one in `stopped`: either it sees the reason or this sees its waker.
        fence(Ordering::SeqCst);
        if let Some(w) = self.waiter.get() {
            w.wake_by_ref();
        }
        first
    }

    /// Why the connection was told to end, if it was.
    pub fn reason(&self) -> Option<&Termination> {
        self.why.get()
    }

    /// Ready once the connection is told to end. Only the connection's own task waits on it.
    pub fn stopped(&self) -> impl Future<Output = Termination> + '_ {
        std::future::poll_fn(|cx| {
            if self.waiter.get().is_none() {
                let _ = self.waiter.set(cx.waker().clone());
                fence(Ordering::SeqCst);
            }
            match self.why.get() {
                Some(why) => Poll::Ready(why.clone()),
                None => Poll::Pending,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::error::SqlState;
    use std::sync::Arc;
    use std::time::Duration;

    fn why(message: &str) -> Termination {
        Termination {
            code: SqlState::AdminShutdown,
            message: message.into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stop_sent_from_another_thread_wakes_the_waiting_task() {
        for _ in 0..200 {
            let stop = Arc::new(Stop::default());
            let waiting = {
                let stop = stop.clone();
                tokio::spawn(async move { stop.stopped().await.message })
            };
            let sender = {
                let stop = stop.clone();
                std::thread::spawn(move || stop.send(why("revoked")))
            };
            assert!(sender.join().expect("sent"));
            let got = tokio::time::timeout(Duration::from_secs(5), waiting)
                .await
                .expect("woken")
                .expect("joined");
            assert_eq!(got, "revoked");
        }
    }

    #[tokio::test]
    async fn the_first_reason_stands() {
        let stop = Stop::default();
        assert!(stop.reason().is_none());
        assert!(stop.send(why("first")));
        assert!(!stop.send(why("second")));
        assert_eq!(stop.stopped().await.message, "first");
        assert_eq!(stop.reason().map(|t| t.message.as_str()), Some("first"));
    }
}
