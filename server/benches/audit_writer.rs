//! How many records per second the audit writer sustains: a burst of statement events (each
//! redacted, encoded, hashed into the chain and committed in batches) into a fresh trail.
//! `cargo bench -p gatehouse-server --bench audit_writer` prints the rate and the writer
//! thread's own CPU time per record (from `/proc`, so the producer's work is not counted).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use gatehouse_server::audit::{Audit, ConnectionMeta, Pending, StatementEvent};
use gatehouse_server::sql::Statement;

// The gateway's allocator (see `main.rs`): records are allocated by sessions and freed by the
// writer, and under glibc's allocator that hand-over costs the writer more than its own work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let n: u64 = std::env::var("RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let audit = Audit::open(dir.path(), gatehouse_server::audit::DEFAULT_QUEUE_RECORDS).expect("open the trail");
        let meta = Arc::new(ConnectionMeta {
            connection_id: "bench".into(),
            identity: "bench-agent".into(),
            identity_kind: "agent",
            on_behalf_of: None,
            client_addr: "127.0.0.1:5000".into(),
            application_name: Some("pgbench".into()),
            environment: "bench".into(),
            database: "bench".into(),
            via: "direct",
        });
        // Like `pgbench -S -M simple`: every statement a new text.
        let writer_before = writer_cpu();
        let start = Instant::now();
        for i in 0..n {
            let stmt = Statement::new(&format!(
                "SELECT abalance FROM pgbench_accounts WHERE aid = {}",
                i % 1_000_000
            ));
            let ev = StatementEvent {
                meta: meta.clone(),
                stmt,
                event: "statement",
                at: SystemTime::now(),
                duration: Some(Duration::from_micros(80)),
                rows: Some(1),
                sqlstate: None,
                error: None,
                decision: "allow",
                rule: None,
                approval_id: None,
                sample: None,
                detected: Default::default(),
            };
            audit.record(Pending::Statement(Box::new(ev))).await;
        }
        while audit.written() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let secs = start.elapsed().as_secs_f64();
        let writer = writer_cpu().saturating_sub(writer_before);
        println!(
            "audit writer: {n} records in {secs:.2} s = {:.0} records/s, writer thread {:.2} µs of CPU per record (last batch commit {} µs)",
            n as f64 / secs,
            writer.as_secs_f64() * 1e6 / n as f64,
            audit.last_commit_micros()
        );
    });
}

/// CPU time the audit writer thread (`gatehouse-audit`) has used so far.
fn writer_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == "gatehouse-audit" {
            // The first field of schedstat: nanoseconds on a CPU.
            let stat = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            let ns = stat.split_whitespace().next().and_then(|v| v.parse().ok());
            return Duration::from_nanos(ns.unwrap_or(0));
        }
    }
    Duration::ZERO
}
