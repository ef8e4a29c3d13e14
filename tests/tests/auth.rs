//! Authentication and authorization at connect time: every failure is a clear FATAL with the
//! right SQLSTATE, and none of them says whether an account exists.

use std::process::Command;
use std::time::Duration;

use gatehouse_tests::raw::{startup_packet, RawConn};
use gatehouse_tests::{message as msg, random_token, run_cmd, sqlstate, Api, Fixture, AGENT, ENV};
use reqwest::Method;

async fn refused(f: &Fixture, env: &str, user: &str, password: &str) -> (String, String) {
    match f.gw.connect(env, user, password).await {
        Ok(_) => panic!("connection as {user} to {env} should have been refused"),
        Err(e) => (sqlstate(&e), msg(&e)),
    }
}

async fn application_name(c: &tokio_postgres::Client) -> String {
    c.query_one("SELECT current_setting('application_name')", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_grants_and_environments() {
    let outsider = random_token("gha_");
    let outsider2 = outsider.clone();
    let f =
        Fixture::start_with(move |b| b.service_account("outsider", &outsider2, &["nobody"])).await;

    let (code, m) = refused(&f, ENV, AGENT, "gha_wrong").await;
    assert_eq!(
        (code.as_str(), m.as_str()),
        ("28P01", "password authentication failed for user \"agent\"")
    );
    // Unknown user: the very same answer.
    let (code, m) = refused(&f, ENV, "ghost", "gha_wrong").await;
    assert_eq!(
        (code.as_str(), m.as_str()),
        ("28P01", "password authentication failed for user \"ghost\"")
    );
    // A valid token presented for another user name is not accepted.
    let (code, _) = refused(&f, ENV, "outsider", &f.token).await;
    assert_eq!(code, "28P01");

    // No grant and no such environment: one answer, so it says nothing about what exists.
    let (code, m) = refused(&f, ENV, "outsider", &outsider).await;
    assert_eq!(code, "28000");
    assert_eq!(
        m,
        "no environment named \"app\" is available to identity \"outsider\""
    );

    let (code, m) = refused(&f, "nope", AGENT, &f.token).await;
    assert_eq!(code, "28000");
    assert_eq!(
        m,
        "no environment named \"nope\" is available to identity \"agent\""
    );

    // Upstream credentials never reach the client, even in errors.
    assert!(!f.gw.log().contains(&f.upstream_password));

    // And the right token still works after all of that.
    let c = f.connect().await;
    assert_eq!(
        c.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_tokens_expire_and_logout_revokes() {
    let f = Fixture::start_with(|b| {
        b.server("session_ttl_seconds = 2")
            .user("alice", "correct horse", &["agents"])
    })
    .await;
    let api = Api::new(f.gw.http());
    let login = |password: &'static str| {
        let body = serde_json::json!({"username": "alice", "password": password});
        api.send(Method::POST, "/api/v1/auth/login", None, Some(body))
    };
    assert_eq!(login("wrong").await.0, 401);
    let (_, body) = login("correct horse").await;
    let token = body["token"].as_str().unwrap().to_string();
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));

    let c =
        f.gw.connect(ENV, "alice", &token)
            .await
            .expect("session token connects");
    let app = application_name(&c).await;
    assert_eq!(app, "gatehouse:alice");
    // A client that names itself later (simple protocol here, among other statements) keeps
    // the identity in front.
    c.batch_execute("SELECT 1; SET application_name = 'nightly report'")
        .await
        .unwrap();
    let app = application_name(&c).await;
    assert_eq!(app, "gatehouse:alice/nightly report");
    // So does one that names itself in a Parse (the extended protocol).
    c.execute("set APPLICATION_NAME to 'etl'", &[])
        .await
        .unwrap();
    let app = application_name(&c).await;
    assert_eq!(app, "gatehouse:alice/etl");

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (code, m) = refused(&f, ENV, "alice", &token).await;
    assert_eq!(code, "28P01");
    assert!(m.contains("has expired"), "{m}");

    let (_, body) = login("correct horse").await;
    let token = body["token"].as_str().unwrap().to_string();
    let (status, _) = api
        .send(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(status, 204);
    let (code, m) = refused(&f, ENV, "alice", &token).await;
    assert_eq!(code, "28P01");
    assert!(m.contains("revoked"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_options_cannot_change_the_upstream_role() {
    let f = Fixture::start().await;
    let out = run_cmd(
        Command::new("psql")
            .arg(format!(
                "{} options='-c role=postgres'",
                f.gw.conn_str(ENV, AGENT, &f.token)
            ))
            .args(["-X", "-c", "SELECT 1"]),
        Duration::from_secs(30),
    );
    assert!(!out.ok());
    assert!(
        out.stderr.contains("cannot be set through the gateway"),
        "{out:?}"
    );
    let mut raw = RawConn::connect("127.0.0.1", f.gw.pg_port).await;
    raw.send(&startup_packet(&[
        ("user", AGENT),
        ("database", ENV),
        ("replication", "database"),
    ]))
    .await;
    let e = raw.read_error().await.expect("an error");
    assert_eq!(e.field(b'C').as_deref(), Some("0A000"));
}

/// A client on another host (a network namespace of the test's own, joined by a veth pair)
/// may not send its token in plaintext; with TLS it may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_tokens_are_refused_off_loopback() {
    let net = TestNet::create();
    let f = Fixture::start_with(|b| b.listen_host(&net.host_addr)).await;
    let base = f.gw.conn_str(ENV, AGENT, &f.token);
    let plain = net.exec(&[
        "psql",
        &format!("{base} sslmode=disable"),
        "-X",
        "-At",
        "-c",
        "SELECT 1",
    ]);
    assert!(!plain.ok(), "{plain:?}");
    assert!(plain.stderr.contains("must use TLS"), "{plain:?}");
    let tls = net.exec(&[
        "psql",
        &format!("{base} sslmode=require"),
        "-X",
        "-At",
        "-c",
        "SELECT inet_client_addr() IS NOT NULL",
    ]);
    assert!(tls.ok(), "{tls:?}");
    assert_eq!(tls.stdout.trim(), "t");
    assert!(
        f.gw.log().contains(&format!("peer={}", net.peer_addr)),
        "{}",
        f.gw.log()
    );
}

/// A network namespace with a veth pair: the test's own second host.
struct TestNet {
    name: String,
    host_if: String,
    host_addr: String,
    peer_addr: String,
}

impl TestNet {
    fn create() -> TestNet {
        let n: u8 = rand::random::<u8>() % 200 + 20;
        let name = format!("ghtest{}", std::process::id() % 100000);
        let host_if = format!("ghh{n}");
        let peer_if = format!("ghp{n}");
        let host_addr = format!("10.231.{n}.1");
        let peer_addr = format!("10.231.{n}.2");
        let sh = |args: &[&str]| {
            let out = run_cmd(Command::new("ip").args(args), Duration::from_secs(10));
            assert!(
                out.ok(),
                "ip {args:?}: {out:?} (these tests run as root with iproute2)"
            );
        };
        sh(&["netns", "add", &name]);
        let net = TestNet {
            name: name.clone(),
            host_if: host_if.clone(),
            host_addr: host_addr.clone(),
            peer_addr: peer_addr.clone(),
        };
        sh(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if,
        ]);
        sh(&["link", "set", &peer_if, "netns", &name]);
        sh(&["addr", "add", &format!("{host_addr}/24"), "dev", &host_if]);
        sh(&["link", "set", &host_if, "up"]);
        sh(&[
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("{peer_addr}/24"),
            "dev",
            &peer_if,
        ]);
        sh(&["netns", "exec", &name, "ip", "link", "set", &peer_if, "up"]);
        sh(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        net
    }

    fn exec(&self, args: &[&str]) -> gatehouse_tests::CmdOutput {
        run_cmd(
            Command::new("ip")
                .args(["netns", "exec", &self.name])
                .args(args),
            Duration::from_secs(30),
        )
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
