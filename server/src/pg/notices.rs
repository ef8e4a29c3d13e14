//! The gateway's own messages for a session's client (the NOTICE that a statement waits for
//! approval): queued by the half of the relay that decides statements, sent by the half that
//! forwards the server's answers, between two of its frames.
//!
//! A tokio channel did this, but its receiver registered the task's waker at every poll of the
//! forwarding half, twice per statement, for a message that almost never comes. Here the
//! receiving half keeps its waker from its first poll (a task's waker stays the same) and
//! otherwise only reads a flag.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::task::{Poll, Waker};

use bytes::BytesMut;

#[derive(Default)]
pub struct Notices {
    queue: Mutex<Vec<BytesMut>>,
    queued: AtomicBool,
    receiver: OnceLock<Waker>,
}

impl Notices {
    /// Queues a whole message for the client and wakes the half that sends it.
    pub fn send(&self, message: BytesMut) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message);
        self.queued.store(true, Ordering::Release);
        if let Some(w) = self.receiver.get() {
            w.wake_by_ref();
        }
    }

    /// Ready once a message is queued. Only the session's forwarding half waits on it.
    pub fn queued(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            if self.receiver.get().is_none() {
                let _ = self.receiver.set(cx.waker().clone());
            }
            // After the waker is in place: a message queued before it was is seen here.
            if self.queued.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// The queued messages, oldest first.
    pub fn take(&self) -> Vec<BytesMut> {
        if !self.queued.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_message_queued_from_another_task_wakes_the_waiting_half() {
        let notices = Arc::new(Notices::default());
        let waiting = {
            let n = notices.clone();
            tokio::spawn(async move {
                n.queued().await;
                n.take()
            })
        };
        // Let the waiting half park with its waker kept first.
        tokio::task::yield_now().await;
        notices.send(BytesMut::from(&b"one"[..]));
        notices.send(BytesMut::from(&b"two"[..]));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("joined");
        assert_eq!(
            got,
            vec![BytesMut::from(&b"one"[..]), BytesMut::from(&b"two"[..])]
        );
        assert!(notices.take().is_empty());
    }

    #[tokio::test]
    async fn a_message_queued_before_the_first_wait_is_not_missed() {
        let notices = Notices::default();
        notices.send(BytesMut::from(&b"early"[..]));
        tokio::time::timeout(std::time::Duration::from_secs(5), notices.queued())
            .await
            .expect("ready at once");
        assert_eq!(notices.take().len(), 1);
    }
}
