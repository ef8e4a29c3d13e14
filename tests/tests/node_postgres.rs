//! node-postgres (npm `pg` and `pg-cursor`) through the gateway; the checks live in
//! `tests/node/pg_check.mjs`. The audit trail then has to show the cursor's read as one
//! statement with all its rows.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use gatehouse_tests::{run_cmd, Fixture, ADMIN, ADMIN_PASSWORD, AGENT, ENV};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres_queries_prepares_cursor_and_notify() {
    let f = Fixture::start_with(|b| b.user(ADMIN, ADMIN_PASSWORD, &["admins"])).await;
    let root_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    assert!(
        root_dir.join("node_modules/pg-cursor").exists(),
        "node_modules/pg-cursor is missing: run scripts/install-deps.sh (npm ci)"
    );
    let out = run_cmd(
        Command::new("node")
            .arg(root_dir.join("tests/node/pg_check.mjs"))
            .env("GATEHOUSE_PG_HOST", &f.gw.pg_host)
            .env("GATEHOUSE_PG_PORT", f.gw.pg_port.to_string())
            .env("GATEHOUSE_PG_DATABASE", ENV)
            .env("GATEHOUSE_PG_USER", AGENT)
            .env("GATEHOUSE_PG_PASSWORD", &f.token),
        Duration::from_secs(120),
    );
    assert!(
        out.ok(),
        "node-postgres checks failed:\n{}\n{}\ngateway log:\n{}",
        out.stdout,
        out.stderr,
        f.gw.log()
    );
    assert!(out.stdout.contains("all checks passed"), "{}", out.stdout);

    let items = f.agent_statements(Some("email FROM node_people")).await;
    assert_eq!(items.len(), 1, "one record for the cursor: {items:?}");
    assert_eq!(items[0]["rows"], 500, "{}", items[0]);
}
