//! Session workers: a fixed set of OS threads, each running a single-threaded tokio runtime,
//! among which accepted connections are dealt round-robin.
//!
//! A session never leaves its worker, so its two directions, its timers and its upstream socket
//! are driven by one thread with no cross-thread wake-ups; on a busy host that is what keeps the
//! gateway's cost per statement at a proxy like PgBouncer's, while still using every core.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use super::sched::WorkerScheduling;

pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    // Dropping the senders lets the worker threads finish.
    _stops: Vec<oneshot::Sender<()>>,
    _threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` workers (at least one; 0 means [`default_count`]), scheduled as
    /// `scheduling` says.
    pub fn start(count: usize, scheduling: WorkerScheduling) -> std::io::Result<Workers> {
        let count = match count {
            0 => default_count(),
            n => n,
        };
        let mut handles = Vec::with_capacity(count);
        let mut stops = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let (tx, rx) = oneshot::channel::<()>();
            stops.push(tx);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("gatehouse-worker-{i}"))
                    .spawn(move || {
                        if let Err(e) = super::sched::apply_to_current_thread(scheduling) {
                            // A sandbox may forbid it; the worker runs either way.
                            tracing::warn!(error = %e, ?scheduling, "cannot set the session worker's scheduling policy; keeping the default");
                        }
                        // Keeps driving the sessions spawned onto this runtime until told to stop.
                        let _ = rt.block_on(rx);
                    })?,
            );
        }
        Ok(Workers {
            handles,
            next: AtomicUsize::new(0),
            _stops: stops,
            _threads: threads,
        })
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The worker that takes the next connection.
    pub fn pick(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }
}

/// One worker per CPU but one: the audit writer is busy in proportion to the statements the
/// workers relay, and a worker sharing its core is preempted at every wake-up it causes (on a
/// 2-core host, two workers cost a sixth more CPU per statement than one under pgbench -c 8).
pub fn default_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}
