//! PgJDBC, the driver DBeaver and IntelliJ use (Debian's `libpostgresql-jdbc-java`), through
//! the gateway; the checks live in `tests/java/PgJdbcCheck.java`: catalog browsing, server-side
//! prepares with binary results, fetch-size portals over masked rows, batches, generated keys,
//! errors in transactions and cancel. The audit trail then has to show what the tool did.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use gatehouse_tests::{run_cmd, Api, Fixture, AGENT, ENV};

/// Debian's PgJDBC jar.
const JDBC_JAR: &str = "/usr/share/java/postgresql.jar";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_catalog_prepares_portals_and_cancel() {
    let f = Fixture::start_with(|b| b.user("root", "root-pw", &["admins"])).await;
    assert!(
        std::path::Path::new(JDBC_JAR).exists(),
        "{JDBC_JAR} is missing: run scripts/install-deps.sh (apt package libpostgresql-jdbc-java)"
    );
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("java/PgJdbcCheck.java");
    let out = run_cmd(
        Command::new("java")
            .args(["-cp", JDBC_JAR])
            .arg(source)
            .env(
                "GATEHOUSE_JDBC_URL",
                format!(
                    "jdbc:postgresql://{}:{}/{ENV}?sslmode=disable&ApplicationName=DBeaver",
                    f.gw.pg_host, f.gw.pg_port
                ),
            )
            .env("GATEHOUSE_USER", AGENT)
            .env("GATEHOUSE_PASSWORD", &f.token),
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

    // A result read in pieces (fetch size) is one audit record with all its rows, as if read
    // at once.
    let api = Api::new(f.gw.http());
    let root = f.gw.login("root", "root-pw").await;
    let search = |q: &str| {
        format!(
            "/api/v1/audit?identity={AGENT}&event=statement&q={}&limit=50",
            url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        )
    };
    for (q, rows) in [
        ("jdbc_customers WHERE id <=", 1000),
        ("generate_series(1, 100)", 100),
        ("generate_series(101, 200)", 100),
    ] {
        let (status, page) = api.get(&search(q), &root).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().expect("audit items");
        assert_eq!(items.len(), 1, "one record for {q}: {page}");
        assert_eq!(items[0]["rows"], rows, "{}", items[0]);
    }
    // PgJDBC names itself with a SET after connecting: the audit has it as the tool sent it
    // (upstream it kept the identity in front, which the Java checks saw).
    let (_, page) = api.get(&search("application_name"), &root).await;
    assert!(
        page["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|r| r["statement"]
                .as_str()
                .is_some_and(|s| s.contains("DBeaver")))),
        "{page}"
    );
}
