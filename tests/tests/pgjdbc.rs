//! PgJDBC, the driver DBeaver and IntelliJ use (Debian's `libpostgresql-jdbc-java`), through
//! the gateway; the checks live in `tests/java/PgJdbcCheck.java`: catalog browsing, server-side
//! prepares with binary results, fetch-size portals over masked rows, batches, generated keys,
//! errors in transactions and cancel. The audit trail then has to show what the tool did.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use gatehouse_tests::{run_cmd, Fixture, ADMIN, ADMIN_PASSWORD, AGENT, ENV};

/// Debian's PgJDBC jar.
const JDBC_JAR: &str = "/usr/share/java/postgresql.jar";

/// Runs the PgJDBC checks (`args`: none for all of them, `browse` for reading only) as `agent`.
fn run_checks(f: &Fixture, args: &[&str]) {
    assert!(
        std::path::Path::new(JDBC_JAR).exists(),
        "{JDBC_JAR} is missing: run scripts/install-deps.sh (apt package libpostgresql-jdbc-java)"
    );
    let java = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("java");
    let out = run_cmd(
        Command::new("java")
            .args(["-cp", JDBC_JAR])
            .arg(java.join("PgJdbcCheck.java"))
            .args(args)
            .env(
                "GATEHOUSE_JDBC_URL",
                format!(
                    "jdbc:postgresql://{}:{}/{ENV}?sslmode=disable&ApplicationName=DBeaver",
                    f.gw.pg_host, f.gw.pg_port
                ),
            )
            .env("GATEHOUSE_USER", AGENT)
            .env("GATEHOUSE_PASSWORD", &f.token)
            .env("GATEHOUSE_JDBC_SETUP", java.join("jdbc_customers.sql")),
        Duration::from_secs(180),
    );
    assert!(
        out.ok(),
        "PgJDBC checks failed:\n{}\n{}\ngateway log:\n{}",
        out.stdout,
        out.stderr,
        f.gw.log()
    );
    assert!(out.stdout.contains("all checks passed"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_catalog_prepares_portals_and_cancel() {
    let f = Fixture::start_with(|b| b.user(ADMIN, ADMIN_PASSWORD, &["admins"])).await;
    run_checks(&f, &[]);

    // A result read in pieces (fetch size) is one audit record with all its rows, as if read
    // at once.
    for (q, rows) in [
        ("jdbc_customers WHERE id <=", 1000),
        ("generate_series(1, 100)", 100),
        ("generate_series(101, 200)", 100),
    ] {
        let items = f.agent_statements(Some(q)).await;
        assert_eq!(items.len(), 1, "one record for {q}: {items:?}");
        assert_eq!(items[0]["rows"], rows, "{}", items[0]);
    }
    // PgJDBC names itself with a SET after connecting: the audit has it as the tool sent it
    // (upstream it kept the identity in front, which the Java checks saw).
    let sets = f.agent_statements(Some("application_name")).await;
    assert!(
        sets.iter().any(|r| r["statement"]
            .as_str()
            .is_some_and(|s| s.contains("DBeaver"))),
        "{sets:?}"
    );
}

/// A tool browsing a production database is never held for review nor refused: what PgJDBC
/// runs to show the catalog and a table's first rows are reads the classifier understands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsing_production_with_pgjdbc_is_never_held() {
    let f = Fixture::production_without_long_holds().await;
    f.cluster
        .exec(
            "appdb",
            &format!(
                "SET ROLE app_owner; {}",
                include_str!("../java/jdbc_customers.sql")
            ),
        )
        .await;
    run_checks(&f, &["browse"]);
    let items = f.agent_statements(None).await;
    assert!(items.len() > 10, "{items:?}");
    for r in &items {
        assert_eq!(r["decision"], "allow", "{r}");
        assert!(r["sqlstate"].is_null(), "{r}");
    }
}
