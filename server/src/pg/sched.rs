//! The scheduling policy of the session workers (`server.worker_scheduling`).
//!
//! A relay is woken by the very tasks it serves: a client's send wakes the worker, whose send
//! wakes the database backend, whose reply wakes the worker again. Under Linux's default policy
//! each wake-up may preempt the task that caused it, halfway through its own work, so a busy
//! host pays two context switches where one would do, and the worker handles one event per
//! wake-up instead of every event that became ready meanwhile. `SCHED_BATCH` (same nice value,
//! same share of CPU) tells the scheduler the worker is throughput work: its wake-ups do not
//! preempt, it runs when the waker blocks or its slice ends. Measured with `bench/pgbench.sh`
//! on two shared cores, that is about a tenth less gateway CPU per statement and a tenth more
//! throughput; the price is that on a saturated CPU a relay can wait up to one scheduler slice.
// The one system call std and our dependencies do not wrap; kept to this file.
#![allow(unsafe_code)]

use serde::{Deserialize, Serialize};

/// How session workers are scheduled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerScheduling {
    /// `SCHED_BATCH` on Linux (see the module's documentation); elsewhere, the default.
    #[default]
    Batch,
    /// The operating system's default policy.
    Normal,
}

/// Applies `policy` to the calling thread.
pub fn apply_to_current_thread(policy: WorkerScheduling) -> std::io::Result<()> {
    match policy {
        WorkerScheduling::Normal => Ok(()),
        WorkerScheduling::Batch => batch(),
    }
}

#[cfg(target_os = "linux")]
fn batch() -> std::io::Result<()> {
    // Priority 0 is the only one SCHED_BATCH takes; the thread's nice value is kept.
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread, and `param` is a valid sched_param that outlives
    // the call, which only reads it.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn batch() -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// (policy, nice) of the calling thread, from `/proc/thread-self/stat`.
    fn policy_and_nice() -> (i64, i64) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields after the command name (which may hold spaces), numbered from 3.
        let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        (rest[41 - 3].parse().unwrap(), rest[19 - 3].parse().unwrap())
    }

    #[test]
    fn batch_changes_the_policy_of_the_calling_thread_only_and_keeps_its_nice_value() {
        let main_before = policy_and_nice();
        let (before, after) = std::thread::spawn(|| {
            let before = policy_and_nice();
            apply_to_current_thread(WorkerScheduling::Batch).unwrap();
            (before, policy_and_nice())
        })
        .join()
        .unwrap();
        const SCHED_BATCH: i64 = 3;
        assert_ne!(before.0, SCHED_BATCH);
        assert_eq!(after, (SCHED_BATCH, before.1));
        assert_eq!(policy_and_nice(), main_before, "other threads keep theirs");
    }

    #[test]
    fn normal_leaves_the_thread_alone() {
        let (before, after) = std::thread::spawn(|| {
            let before = policy_and_nice();
            apply_to_current_thread(WorkerScheduling::Normal).unwrap();
            (before, policy_and_nice())
        })
        .join()
        .unwrap();
        assert_eq!(before, after);
    }
}
