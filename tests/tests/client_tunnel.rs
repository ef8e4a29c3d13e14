//! `gatehouse login` + `gatehouse connect` end to end: real PostgreSQL, the real gateway and the
//! real CLI, with psql, pgbench (every -M mode), tokio-postgres and psycopg 3 connecting through
//! the tunnel with no password; cancel through the tunnel; two tunnels to two environments; the
//! session refreshed under a running tunnel; a gateway restart; an expired or revoked session;
//! tunnel connections ended with their session, and new ones after a new login.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_tests::{
    app_url, ended_with, message, run_cmd, sqlstate, CliHome, Fixture, GatewayBuilder, ENV, PG_BIN,
};

const USER: &str = "ana";
const PASSWORD: &str = "ana-password-1";

/// The fixture plus a local user `ana` (engineers, granted `app`) and an admin `root`.
async fn fixture_with(extra: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> Fixture {
    Fixture::start_with(|b| {
        extra(
            b.user(USER, PASSWORD, &["engineers"])
                .user("root", "root-password", &["admins"])
                .grant(&["engineers", "admins"], &[ENV]),
        )
    })
    .await
}

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("GATEHOUSE_PYTHON") {
        return p.into();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_pgbench_tokio_postgres_and_psycopg_through_the_tunnel() {
    let f = fixture_with(|b| b).await;
    let home = CliHome::new();
    home.must_login(&f.gw, USER, PASSWORD);

    // The session is in the private file (no keychain here), never world-readable.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.session_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let envs = home.run(&["--json", "envs"]);
    assert!(envs.ok(), "{envs:?}");
    let v: serde_json::Value = serde_json::from_str(&envs.stdout).unwrap();
    assert_eq!(v["items"][0]["name"], ENV);
    assert_eq!(v["items"][0]["tier"], "staging");
    let table = home.run(&["envs"]);
    assert!(
        table.stdout.contains("NAME") && table.stdout.contains("staging"),
        "{table:?}"
    );

    let t = home.tunnel(ENV, &[]);
    assert_eq!(t.info["user"], USER);
    assert!(t.info["psql"]
        .as_str()
        .unwrap()
        .contains(&t.port.to_string()));

    // psql: the gateway sees ana, through the tunnel, with the client's application name.
    let out = t.psql(
        ENV,
        &[
            "-At",
            "-c",
            "SELECT current_user, current_database(), current_setting('application_name')",
        ],
    );
    assert!(out.ok(), "psql: {out:?}\n{}\n{}", t.log(), f.gw.log());
    assert_eq!(
        out.stdout.trim(),
        "app_owner|appdb|gatehouse:ana/gatehouse-tunnel/psql"
    );

    // pgbench in every protocol mode.
    let conn = t.conn_str(ENV);
    let init = run_cmd(
        Command::new(format!("{PG_BIN}/pgbench")).args(["-i", "-s", "1", "-q", &conn]),
        Duration::from_secs(120),
    );
    assert!(init.ok(), "pgbench -i: {init:?}\n{}", t.log());
    for mode in ["simple", "extended", "prepared"] {
        let run = run_cmd(
            Command::new(format!("{PG_BIN}/pgbench"))
                .args(["-M", mode, "-c", "4", "-j", "2", "-t", "50", "-n", &conn]),
            Duration::from_secs(120),
        );
        assert!(run.ok(), "pgbench -M {mode}: {run:?}\n{}", t.log());
        assert!(
            run.stdout
                .contains("number of transactions actually processed: 200/200"),
            "pgbench -M {mode}: {}",
            run.stdout
        );
    }

    // tokio-postgres: extended protocol, parameters, binary results, a transaction.
    let c = t
        .connect(ENV)
        .await
        .expect("tokio-postgres through the tunnel");
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM pgbench_accounts WHERE aid <= $1",
            &[&10i32],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 10);
    c.batch_execute("BEGIN; CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2); COMMIT")
        .await
        .unwrap();
    let sum: i64 = c
        .query_one("SELECT sum(x) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sum, 3);

    // psycopg 3: server-side binding, pipeline mode, COPY, binary.
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/psycopg_check.py");
    let py = run_cmd(
        Command::new(python())
            .arg(script)
            .env("GATEHOUSE_DSN", t.conn_str(ENV)),
        Duration::from_secs(120),
    );
    assert!(
        py.ok(),
        "psycopg: {}\n{}\n{}",
        py.stdout,
        py.stderr,
        t.log()
    );
    assert!(py.stdout.contains("all checks passed"));

    // The gateway records these connections as coming through a tunnel.
    let admin = f.gw.login("root", "root-password").await;
    let records = f.gw.audit(&admin, "identity=ana&event=connection.").await;
    assert!(!records.is_empty(), "no connection records for ana");
    assert!(records.iter().all(|r| r["via"] == "tunnel"), "{records:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_through_the_tunnel_stops_the_query() {
    let f = fixture_with(|b| b).await;
    let home = CliHome::new();
    home.must_login(&f.gw, USER, PASSWORD);
    let t = home.tunnel(ENV, &[]);
    let c = t.connect(ENV).await.expect("connect through the tunnel");
    let cancel = c.cancel_token();
    let (result, sent) = tokio::join!(c.simple_query("SELECT pg_sleep(30)"), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sent = Instant::now();
        cancel
            .cancel_query(tokio_postgres::NoTls)
            .await
            .expect("cancel request sent to the tunnel");
        sent
    });
    let e = result.expect_err("the query was cancelled");
    assert_eq!(sqlstate(&e), "57014", "{e}\n{}", t.log());
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "cancel took {:?}",
        sent.elapsed()
    );
    let one: i32 = c.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);

    // psql's own Ctrl-C path: a cancel over a fresh connection with the key it was given.
    let out = t.psql(
        ENV,
        &[
            "-c",
            "SET statement_timeout = '200ms'",
            "-c",
            "SELECT pg_sleep(5)",
        ],
    );
    assert!(
        !out.ok() && out.stderr.contains("statement timeout"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tunnels_to_two_environments_at_once() {
    let cluster_db = "stagedb";
    let f = fixture_with(|b| b).await;
    f.cluster
        .exec(
            "postgres",
            &format!("CREATE DATABASE {cluster_db} OWNER app_owner"),
        )
        .await;
    // A second gateway with two environments on the same server.
    let stage_url = app_url(&f.cluster).replace("/appdb", &format!("/{cluster_db}"));
    let gw = GatewayBuilder::new()
        .environment(
            ENV,
            "production",
            &app_url(&f.cluster),
            Some(&f.upstream_password),
        )
        // The production environment may also reach the staging database (it says so).
        .environment_setting(ENV, &format!("databases = [\"{cluster_db}\"]"))
        .environment("stage", "staging", &stage_url, Some(&f.upstream_password))
        .user(USER, PASSWORD, &["engineers"])
        .grant(&["engineers"], &[ENV, "stage"])
        .start()
        .await;
    let home = CliHome::new();
    home.must_login(&gw, USER, PASSWORD);
    let envs = home.run(&["envs"]);
    assert!(
        envs.stdout.contains("stage") && envs.stdout.contains("staging"),
        "{envs:?}"
    );

    let prod = home.tunnel(ENV, &[]);
    let stage = home.tunnel("stage", &[]);
    assert_ne!(prod.port, stage.port);
    let (a, b) = (
        prod.connect(ENV).await.unwrap(),
        stage.connect("stage").await.unwrap(),
    );
    let db = |c: tokio_postgres::Client| async move {
        let s: String = c
            .query_one("SELECT current_database()::text", &[])
            .await
            .unwrap()
            .get(0);
        s
    };
    assert_eq!(db(a).await, "appdb");
    assert_eq!(db(b).await, cluster_db);

    // --database picks another database the environment reaches; one it does not list is
    // refused.
    let other = home.tunnel(ENV, &["--database", cluster_db, "--port", "0"]);
    let out = other.psql(ENV, &["-At", "-c", "SELECT current_database()"]);
    assert_eq!(out.stdout.trim(), cluster_db, "{out:?}");
    let unlisted = home.tunnel("stage", &["--database", "appdb", "--port", "0"]);
    let out = unlisted.psql("stage", &["-At", "-c", "SELECT current_database()"]);
    assert!(
        !out.ok() && out.stderr.contains("does not reach database \"appdb\""),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tunnel_survives_a_token_refresh() {
    // Six-second access tokens: the tunnel refreshes in the last quarter of their life.
    let f = fixture_with(|b| b.server("session_ttl_seconds = 6")).await;
    let home = CliHome::new();
    home.must_login(&f.gw, USER, PASSWORD);
    let first = home.session()["token"].as_str().unwrap().to_string();
    let t = home.tunnel(ENV, &[]);
    let open = t.connect(ENV).await.unwrap();
    tokio::time::sleep(Duration::from_secs(9)).await;

    let now = home.session()["token"].as_str().unwrap().to_string();
    assert_ne!(first, now, "the token was not refreshed:\n{}", t.log());
    // The connection opened before the refresh still works, and new ones get the new token
    // (the old one has expired by now).
    let one: i32 = open.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    let out = t.psql(ENV, &["-At", "-c", "SELECT 2"]);
    assert!(out.ok(), "{out:?}\n{}", t.log());
    // Other commands in the same home pick up the refreshed session.
    let who = home.run(&["whoami"]);
    assert!(who.ok() && who.stdout.contains(USER), "{who:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_connections_end_with_their_session_and_a_new_login_opens_new_ones() {
    // Two-second access tokens the tunnel keeps refreshing, six-second sessions: a refresh
    // renews the token, not the session.
    let f = fixture_with(|b| b.server("session_ttl_seconds = 2\nrefresh_ttl_seconds = 6")).await;
    let home = CliHome::new();
    home.must_login(&f.gw, USER, PASSWORD);
    let session_end = home.session()["refresh_expires_at"]
        .as_str()
        .expect("a refresh token")
        .to_string();
    let t = home.tunnel(ENV, &[]);
    let (old, conn) = tokio_postgres::connect(&t.conn_str(ENV), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("through the tunnel: {e}\n{}", t.log()));
    let old_end = tokio::spawn(conn);
    old.simple_query("SELECT 1").await.expect("connected");

    // The gateway's reason reaches the local client unchanged.
    let (code, m) = ended_with(old_end).await;
    assert_eq!(code, "57P01", "{m}");
    assert_eq!(
        m,
        format!("your Gatehouse session ended at {session_end}; log in again")
    );
    let refused = t.connect(ENV).await.expect_err("the session is over");
    assert!(message(&refused).contains("login"), "{}", message(&refused));

    // After a new login the same tunnel opens connections with the new session; the old
    // session's end is not theirs.
    home.must_login(&f.gw, USER, PASSWORD);
    let new = t
        .connect(ENV)
        .await
        .unwrap_or_else(|e| panic!("after a new login: {e}\n{}", t.log()));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let row = new.query_one("SELECT 2", &[]).await.expect("still open");
    assert_eq!(row.get::<_, i32>(0), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tunnel_survives_a_gateway_restart() {
    let mut f = fixture_with(|b| b).await;
    let home = CliHome::new();
    home.must_login(&f.gw, USER, PASSWORD);
    let t = home.tunnel(ENV, &[]);
    assert!(t.psql(ENV, &["-c", "SELECT 1"]).ok());

    // While the gateway is down, local clients are told so.
    f.gw.kill9();
    let down = t.psql(ENV, &["-c", "SELECT 1"]);
    assert!(!down.ok());
    assert!(down.stderr.contains("cannot reach the gateway"), "{down:?}");

    // Once it is back, new connections work through the same tunnel.
    f.gw.restart();
    let out = t.psql(ENV, &["-At", "-c", "SELECT 'back'"]);
    assert!(out.ok(), "{out:?}\n{}\n{}", t.log(), f.gw.log());
    assert_eq!(out.stdout.trim(), "back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_reported_clearly() {
    // Two-second sessions with no refresh token: nothing can keep them alive.
    let f = fixture_with(|b| b.server("session_ttl_seconds = 2\nrefresh_ttl_seconds = 0")).await;
    let home = CliHome::new();
    home.must_login(&f.gw, USER, PASSWORD);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let out = home.run(&["connect", ENV]);
    assert_eq!(out.status, 3, "{out:?}");
    assert!(
        out.stderr.contains("expired") && out.stderr.contains("gatehouse login"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_gives_local_clients_a_clear_error_until_login() {
    let f = fixture_with(|b| b).await;
    let home = CliHome::new();
    home.must_login(&f.gw, USER, PASSWORD);
    let mut t = home.tunnel(ENV, &[]);
    assert!(t.psql(ENV, &["-c", "SELECT 1"]).ok());

    let out = home.run(&["logout"]);
    assert!(out.ok(), "{out:?}");

    let (client, conn) = tokio_postgres::connect(&t.conn_str(ENV), tokio_postgres::NoTls)
        .await
        .map(|(c, conn)| (Some(c), Some(conn)))
        .unwrap_or_else(|e| {
            assert_eq!(sqlstate(&e), "28P01", "{e}");
            assert!(message(&e).contains("gatehouse login"), "{}", message(&e));
            (None, None)
        });
    assert!(client.is_none() && conn.is_none(), "connected after logout");
    assert!(t.running(), "the tunnel stays up");

    // Logging in again (another terminal) brings the same tunnel back.
    home.must_login(&f.gw, USER, PASSWORD);
    let out = t.psql(ENV, &["-At", "-c", "SELECT 'again'"]);
    assert!(out.ok(), "{out:?}\n{}", t.log());
}
