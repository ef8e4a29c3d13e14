//! Hostile or broken clients get a clear error and never disturb other sessions: malformed
//! startup packets, an unsupported protocol, oversized messages, stalled handshakes, idle
//! sessions, and more clients than the limit.

use std::time::{Duration, Instant};

use gatehouse_tests::raw::{message, startup_packet, RawConn};
use gatehouse_tests::{Fixture, AGENT, ENV};
use tokio::io::AsyncWriteExt;

async fn assert_healthy(f: &Fixture) {
    let c = f.connect().await;
    assert_eq!(
        c.query_one("SELECT 7", &[]).await.unwrap().get::<_, i32>(0),
        7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_startup_packets_get_protocol_errors() {
    let f = Fixture::start().await;
    let busy = f.connect().await;

    // A length shorter than the header itself.
    let mut raw = RawConn::connect("127.0.0.1", f.gw.pg_port).await;
    raw.send(&[0, 0, 0, 4, 0, 3, 0, 0]).await;
    let e = raw.read_error().await.expect("an error");
    assert_eq!(e.field(b'C').as_deref(), Some("08P01"));
    assert!(
        e.field(b'M')
            .unwrap()
            .contains("invalid length of startup packet"),
        "{e:?}"
    );

    // An absurd length is refused before anything is buffered.
    let mut raw = RawConn::connect("127.0.0.1", f.gw.pg_port).await;
    raw.send(&[0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0]).await;
    assert_eq!(
        raw.read_error()
            .await
            .and_then(|e| e.field(b'C'))
            .as_deref(),
        Some("08P01")
    );

    // Protocol 2.0 is long gone.
    let mut raw = RawConn::connect("127.0.0.1", f.gw.pg_port).await;
    let mut p = startup_packet(&[("user", AGENT)]);
    p[4..8].copy_from_slice(&0x0002_0000u32.to_be_bytes());
    raw.send(&p).await;
    let e = raw.read_error().await.expect("an error");
    assert_eq!(e.field(b'C').as_deref(), Some("0A000"));

    // Not a password message where one is expected.
    let mut raw = RawConn::connect("127.0.0.1", f.gw.pg_port).await;
    raw.send(&startup_packet(&[("user", AGENT), ("database", ENV)]))
        .await;
    assert_eq!(raw.read().await.map(|m| m.tag), Some(b'R'));
    raw.send(&message(b'Q', b"SELECT 1\0")).await;
    assert_eq!(
        raw.read_error()
            .await
            .and_then(|e| e.field(b'C'))
            .as_deref(),
        Some("08P01")
    );

    // Random garbage.
    let mut raw = RawConn::connect("127.0.0.1", f.gw.pg_port).await;
    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(raw.read_error().await.is_some());

    // Nobody else noticed.
    assert_eq!(
        busy.query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    assert_healthy(&f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused_with_54000() {
    let f = Fixture::start_with(|b| b.server("max_message_bytes = 1048576")).await;
    // Below the limit: fine.
    let mut ok = RawConn::login("127.0.0.1", f.gw.pg_port, AGENT, ENV, &f.token).await;
    let rows = ok
        .simple_query(&format!("SELECT length('{}')", "x".repeat(500_000)))
        .await
        .unwrap();
    assert_eq!(rows, vec!["500000".to_string()]);

    // Above it: only the header is needed to refuse.
    let mut raw = RawConn::login("127.0.0.1", f.gw.pg_port, AGENT, ENV, &f.token).await;
    let mut header = vec![b'Q'];
    header.extend_from_slice(&(64u32 << 20).to_be_bytes());
    raw.send(&header).await;
    let e = raw.read_error().await.expect("an error");
    assert_eq!(e.field(b'C').as_deref(), Some("54000"), "{e:?}");
    assert!(
        e.field(b'M')
            .unwrap()
            .contains("exceeds the gateway's limit"),
        "{e:?}"
    );
    assert!(raw.read().await.is_none(), "the connection is closed");

    assert_eq!(
        ok.simple_query("SELECT 2").await.unwrap(),
        vec!["2".to_string()]
    );
    assert_healthy(&f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_time_out_without_blocking_anyone() {
    let f = Fixture::start_with(|b| b.server("handshake_timeout_seconds = 2")).await;
    let started = Instant::now();
    // Fifty clients that connect and say nothing, or half a startup packet.
    let mut stalled = vec![];
    for i in 0..50 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", f.gw.pg_port))
            .await
            .unwrap();
        if i % 2 == 0 {
            s.write_all(&[0, 0, 0, 40, 0, 3]).await.unwrap();
        }
        stalled.push(RawConn { stream: s });
    }
    // Meanwhile everyone else connects and works at once.
    for _ in 0..5 {
        assert_healthy(&f).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "healthy sessions were delayed: {:?}",
        started.elapsed()
    );
    for s in &mut stalled {
        let e = s.read_error().await.expect("a timeout error");
        assert_eq!(e.field(b'C').as_deref(), Some("08P01"));
        assert!(
            e.field(b'M').unwrap().contains("did not finish in time"),
            "{e:?}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_closed_but_long_queries_are_not() {
    let f = Fixture::start_with(|b| b.server("idle_timeout_seconds = 1")).await;
    let mut busy = RawConn::login("127.0.0.1", f.gw.pg_port, AGENT, ENV, &f.token).await;
    // A statement running longer than the idle limit is not idleness.
    assert_eq!(
        busy.simple_query("SELECT pg_sleep(2)::text").await.unwrap(),
        vec![String::new()]
    );
    let mut idle = RawConn::login("127.0.0.1", f.gw.pg_port, AGENT, ENV, &f.token).await;
    let e = idle.read_error().await.expect("an idle timeout error");
    assert_eq!(e.field(b'C').as_deref(), Some("57P05"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_get_53300() {
    let f = Fixture::start_with(|b| b.server("max_connections = 2")).await;
    let a = f.connect().await;
    let b = f.connect().await;
    let e =
        f.gw.connect(ENV, AGENT, &f.token)
            .await
            .map(|_| ())
            .expect_err("refused");
    assert_eq!(gatehouse_tests::sqlstate(&e), "53300");
    drop(a);
    // The slot frees once the first session is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match f.gw.connect(ENV, AGENT, &f.token).await {
            Ok(c) => {
                assert_eq!(
                    c.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0),
                    1
                );
                break;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    drop(b);
}
