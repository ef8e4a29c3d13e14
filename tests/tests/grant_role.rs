//! A grant that pins the upstream role: the connection runs as that role (e.g. read-only for
//! agents), and statements that would leave it are refused in every tier.

use gatehouse_tests::{message, random_token, sqlstate, Fixture, ENV};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_role_is_used_and_cannot_be_left() {
    let reader = random_token("gha_");
    let token = reader.clone();
    let f = Fixture::start_with(move |b| {
        b.service_account("reader-bot", &token, &["readers"]).toml(&format!(
            "[[grants]]\ngroups = [\"readers\"]\nenvironments = [{ENV:?}]\nupstream_role = \"app_reader\"\n"
        ))
    })
    .await;
    f.cluster
        .exec("appdb", "CREATE ROLE app_reader NOLOGIN; GRANT app_reader TO app_owner; CREATE TABLE t (id int); INSERT INTO t VALUES (1);")
        .await;
    f.cluster
        .exec(
            "appdb",
            "ALTER TABLE t OWNER TO app_owner; GRANT SELECT ON t TO app_reader",
        )
        .await;

    let c =
        f.gw.connect(ENV, "reader-bot", &reader)
            .await
            .expect("connect");
    let who: String = c
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "app_reader");
    assert_eq!(
        c.query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        1
    );
    // The role's own privileges apply: no writes.
    let e = c
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    assert!(message(&e).contains("permission denied"), "{}", message(&e));
    // Leaving the role is refused by the gateway, in staging too.
    for sql in [
        "SET ROLE NONE",
        "RESET ROLE",
        "SET SESSION AUTHORIZATION DEFAULT",
        "DISCARD ALL",
    ] {
        let e = c.batch_execute(sql).await.unwrap_err();
        assert_eq!(sqlstate(&e), "42501", "{sql}: {e}");
        assert!(
            message(&e).contains("runs this connection as role \"app_reader\""),
            "{sql}: {}",
            message(&e)
        );
    }
    let who: String = c
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "app_reader");
    // Without the pinned grant, the agent is the gateway's own upstream user.
    let plain = f.connect().await;
    let who: String = plain
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "app_owner");
}
