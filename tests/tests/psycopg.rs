//! psycopg 3 (from PyPI) through the gateway; the checks live in `tests/python/psycopg_check.py`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use gatehouse_tests::{python, run_cmd, Fixture, AGENT, ENV};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg3_server_side_binding_pipeline_and_copy() {
    let f = Fixture::start().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/psycopg_check.py");
    let out = run_cmd(
        Command::new(python())
            .arg(script)
            .env("GATEHOUSE_DSN", f.gw.conn_str(ENV, AGENT, &f.token)),
        Duration::from_secs(120),
    );
    assert!(
        out.ok(),
        "psycopg checks failed:\n{}\n{}\ngateway log:\n{}",
        out.stdout,
        out.stderr,
        f.gw.log()
    );
    assert!(out.stdout.contains("all checks passed"));
}
