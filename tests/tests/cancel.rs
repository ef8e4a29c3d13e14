//! Cancel requests: the client's key (the gateway's own) reaches the right upstream backend.

use std::time::{Duration, Instant};

use gatehouse_tests::raw::RawConn;
use gatehouse_tests::{sqlstate, Fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_long_query_and_the_session_stays_usable() {
    let f = Fixture::start().await;
    let c = f.connect().await;
    let cancel = c.cancel_token();
    let started = Instant::now();
    let (result, cancelled) = tokio::join!(c.simple_query("SELECT pg_sleep(30)"), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sent = Instant::now();
        cancel
            .cancel_query(tokio_postgres::NoTls)
            .await
            .expect("cancel request sent");
        sent
    });
    let e = result.expect_err("the query was cancelled");
    assert_eq!(sqlstate(&e), "57014", "{e}");
    assert!(
        cancelled.elapsed() < Duration::from_secs(1),
        "cancel took {:?}",
        cancelled.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let one: i32 = c.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cancel_key_cancels_nothing() {
    let f = Fixture::start().await;
    let c = f.connect().await;
    // Learn the gateway-issued key through a second, raw connection: it differs from the
    // upstream's, so a forged key built from pg_backend_pid() must not work either.
    let upstream_pid: i32 = c
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let query = tokio::spawn(async move { c.simple_query("SELECT pg_sleep(2)").await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (pid, secret) in [(upstream_pid, 0i32), (upstream_pid, 12345), (1, 1)] {
        let mut raw = RawConn::connect("127.0.0.1", f.gw.pg_port).await;
        let mut pkt = 16u32.to_be_bytes().to_vec();
        pkt.extend(80877102u32.to_be_bytes());
        pkt.extend(pid.to_be_bytes());
        pkt.extend(secret.to_be_bytes());
        raw.send(&pkt).await;
        assert!(raw.read().await.is_none(), "a cancel request gets no reply");
    }
    query
        .await
        .unwrap()
        .expect("the query ran to completion, not cancelled");
}
