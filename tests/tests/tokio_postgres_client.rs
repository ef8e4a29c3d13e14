//! tokio-postgres through the gateway: prepared statements, binary types, pipelining, COPY,
//! notifications, transactions and large streamed results.

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use gatehouse_tests::{sqlstate, Fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_binary_types_pipelining_copy_and_notify() {
    let f = Fixture::start().await;
    let c = f.connect().await;

    // Prepared statements with binary parameters and results of several types.
    c.batch_execute(
        "CREATE TABLE t (id int8 PRIMARY KEY, name text, score float8, at timestamptz, tags text[], doc jsonb, raw bytea);",
    )
    .await
    .unwrap();
    let insert = c
        .prepare("INSERT INTO t VALUES ($1, $2, $3, now(), $4, $5, $6)")
        .await
        .unwrap();
    for i in 0..50i64 {
        let tags = vec![format!("t{i}"), "x".to_string()];
        let doc = serde_json::json!({"i": i, "even": i % 2 == 0});
        let raw: Vec<u8> = (0..=255u8).collect();
        c.execute(
            &insert,
            &[
                &i,
                &format!("name {i}"),
                &(i as f64 / 3.0),
                &tags,
                &doc,
                &raw,
            ],
        )
        .await
        .unwrap();
    }
    let row = c
        .query_one(
            "SELECT name, score, tags, doc, raw FROM t WHERE id = $1",
            &[&7i64],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "name 7");
    assert!((row.get::<_, f64>(1) - 7.0 / 3.0).abs() < 1e-12);
    assert_eq!(
        row.get::<_, Vec<String>>(2),
        vec!["t7".to_string(), "x".to_string()]
    );
    assert_eq!(row.get::<_, serde_json::Value>(3)["i"], 7);
    assert_eq!(row.get::<_, Vec<u8>>(4).len(), 256);

    // Pipelining: many queries in flight before any answer is read.
    let stmt = c
        .prepare("SELECT id, name FROM t WHERE id = $1")
        .await
        .unwrap();
    let futures: Vec<_> = (0..50i64)
        .map(|i| {
            let c = &c;
            let stmt = &stmt;
            async move { c.query_one(stmt, &[&i]).await }
        })
        .collect();
    let rows = futures_util::future::join_all(futures).await;
    for (i, r) in rows.into_iter().enumerate() {
        assert_eq!(r.unwrap().get::<_, i64>(0), i as i64);
    }

    // Errors keep the session usable, and carry the upstream's SQLSTATE.
    let e = c
        .execute("INSERT INTO t (id) VALUES (1)", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "23505");
    assert_eq!(
        c.query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        50
    );

    // Transactions.
    let mut c2 = f.connect().await;
    let tx = c2.transaction().await.unwrap();
    tx.execute("DELETE FROM t WHERE id < 10", &[])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        c2.query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        50
    );

    // COPY FROM STDIN and TO STDOUT.
    let sink = c.copy_in("COPY t (id, name) FROM STDIN").await.unwrap();
    futures_util::pin_mut!(sink);
    let mut data = String::new();
    for i in 1000..3000 {
        data.push_str(&format!("{i}\tcopied {i}\n"));
    }
    sink.send(bytes::Bytes::from(data)).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2000);
    let out = c
        .copy_out("COPY (SELECT id, name FROM t WHERE id >= 1000 ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    let chunks: Vec<bytes::Bytes> = out.try_collect().await.unwrap();
    let text: String = chunks
        .iter()
        .map(|b| String::from_utf8_lossy(b).to_string())
        .collect();
    assert_eq!(text.lines().count(), 2000);
    assert!(text.starts_with("1000\tcopied 1000\n"));

    // A large result streams through (about 40 MB in 20 000 rows).
    let big = c
        .query(
            "SELECT i, repeat('x', 2000) FROM generate_series(1, 20000) i",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(big.len(), 20000);
    assert_eq!(big[19999].get::<_, String>(1).len(), 2000);

    // LISTEN/NOTIFY: notifications arrive asynchronously through the relay.
    let (listener, mut conn) = tokio_postgres::connect(
        &f.gw.conn_str("app", "agent", &f.token),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    tokio::spawn(stream.for_each(move |m| {
        if let Ok(tokio_postgres::AsyncMessage::Notification(n)) = m {
            let _ = tx.send((n.channel().to_string(), n.payload().to_string()));
        }
        futures_util::future::ready(())
    }));
    listener.batch_execute("LISTEN jobs").await.unwrap();
    c.batch_execute("NOTIFY jobs, 'hello'").await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .expect("notification in time");
    assert_eq!(got, Some(("jobs".to_string(), "hello".to_string())));

    // The upstream sees who is behind the connection.
    let app: String = c
        .query_one("SELECT current_setting('application_name')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(app, "gatehouse:agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_gateway_and_env_slash_database() {
    // `app/other` reaches `other` because the environment lists it.
    let f = Fixture::start_with(|b| b.environment_setting("app", "databases = [\"other\"]")).await;
    f.cluster
        .exec("postgres", "CREATE DATABASE other OWNER app_owner;")
        .await;
    // psql with sslmode=require: the gateway answers the SSLRequest with TLS.
    let out = f.gw.psql(
        "app/other",
        "agent",
        &f.token,
        &["-At", "-c", "SELECT current_database()"],
    );
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.stdout.trim(), "other");
    let out = gatehouse_tests::run_cmd(
        std::process::Command::new("psql")
            .arg(format!(
                "{} sslmode=require",
                f.gw.conn_str("app", "agent", &f.token)
            ))
            .args(["-X", "-At", "-c", "SELECT 42"]),
        std::time::Duration::from_secs(30),
    );
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.stdout.trim(), "42");
    assert!(f.gw.log().contains("tls=true"), "{}", f.gw.log());
}
