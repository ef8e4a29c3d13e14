//! A dead upstream is a clear `08xxx` error for its environment only; the gateway keeps serving
//! the others and recovers by itself when the upstream returns.

use std::time::{Duration, Instant};

use gatehouse_tests::{app_url, message, random_token, sqlstate, Cluster, GatewayBuilder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_isolated_and_recovers() {
    let mut a = Cluster::start().await;
    let b = Cluster::start().await;
    let pw = random_token("up");
    for c in [&a, &b] {
        c.exec(
            "postgres",
            &format!("CREATE ROLE app_owner LOGIN PASSWORD '{pw}'"),
        )
        .await;
        c.exec("postgres", "CREATE DATABASE appdb OWNER app_owner")
            .await;
    }
    let token = random_token("gha_");
    let gw = GatewayBuilder::new()
        .environment("a", "production", &app_url(&a), Some(&pw))
        .environment("b", "staging", &app_url(&b), Some(&pw))
        .service_account("agent", &token, &["eng"])
        .grant(&["eng"], &["a", "b"])
        .start()
        .await;

    let on_a = gw.connect("a", "agent", &token).await.unwrap();
    let on_b = gw.connect("b", "agent", &token).await.unwrap();
    on_a.query_one("SELECT 1", &[]).await.unwrap();

    a.stop();
    // The open session on `a` learns why: PostgreSQL's own shutdown notice, or ours.
    let e = on_a.query_one("SELECT 1", &[]).await.unwrap_err();
    let code = sqlstate(&e);
    assert!(
        code.is_empty() || code.starts_with("57P") || code.starts_with("08"),
        "{code}: {e}"
    );
    // New sessions on `a` get a clear 08001 that names the environment.
    let e = gw
        .connect("a", "agent", &token)
        .await
        .map(|_| ())
        .expect_err("a is down");
    assert_eq!(sqlstate(&e), "08001", "{e}");
    assert!(
        message(&e).contains("environment \"a\" is unreachable"),
        "{}",
        message(&e)
    );
    // `b` never noticed.
    assert_eq!(
        on_b.query_one("SELECT 2", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
    let fresh_b = gw.connect("b", "agent", &token).await.unwrap();
    fresh_b.query_one("SELECT 1", &[]).await.unwrap();

    a.start_again();
    let deadline = Instant::now() + Duration::from_secs(10);
    let back = loop {
        match gw.connect("a", "agent", &token).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("a did not come back: {e}"),
        }
    };
    assert_eq!(
        back.query_one("SELECT 3", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_upstream_credentials_are_an_operator_problem_not_a_leak() {
    let c = Cluster::start().await;
    c.exec("postgres", "CREATE ROLE app_owner LOGIN PASSWORD 'right'")
        .await;
    c.exec("postgres", "CREATE DATABASE appdb OWNER app_owner")
        .await;
    let token = random_token("gha_");
    let gw = GatewayBuilder::new()
        .environment("app", "production", &app_url(&c), Some("wrong"))
        .service_account("agent", &token, &["eng"])
        .grant(&["eng"], &["app"])
        .start()
        .await;
    let e = gw
        .connect("app", "agent", &token)
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(sqlstate(&e), "08004", "{e}");
    let m = message(&e);
    assert!(m.contains("rejected the gateway's credentials"), "{m}");
    assert!(!m.contains("app_owner"), "{m}");
}
