//! The masking catalog outlives the gateway process: read from the upstream when a session
//! first reaches a database, kept in the store, and shown (and used) after a restart even while
//! the upstream is down; sampled values are never what is kept.

use gatehouse_tests::{Api, Fixture, ENV};
use serde_json::Value;

fn column<'a>(catalog: &'a Value, table: &str, column: &str) -> &'a Value {
    catalog["databases"][0]["tables"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == table))
        .and_then(|t| t["columns"].as_array())
        .and_then(|cs| cs.iter().find(|c| c["name"] == column))
        .unwrap_or_else(|| panic!("{table}.{column} in {catalog}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_is_stored_and_serves_after_a_restart_without_the_upstream() {
    let mut f = Fixture::start_with(|b| b.user("root", "root-pw", &["admins"])).await;
    f.cluster
        .exec(
            "appdb",
            "CREATE TABLE contacts (id int PRIMARY KEY, reach text, note text);
             INSERT INTO contacts VALUES (1, 'ana@example.com', 'shipped'), (2, 'bo@example.org', 'pending');
             GRANT SELECT ON contacts TO app_owner;",
        )
        .await;
    // The first session reads the catalog (the agent's connection waits for it).
    let c = f.connect().await;
    c.simple_query("SELECT 1").await.unwrap();
    drop(c);

    let api = Api::new(f.gw.http());
    let root = f.gw.login("root", "root-pw").await;
    let path = format!("/api/v1/environments/{ENV}/catalog");
    let (status, before) = api.get(&path, &root).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(column(&before, "contacts", "reach")["category"], "email");
    assert_eq!(column(&before, "contacts", "note")["category"], Value::Null);

    // The store is in WAL mode: a fresh write may still be in the -wal file.
    let mut store = Vec::new();
    for name in ["gatehouse.db", "gatehouse.db-wal"] {
        store.extend(std::fs::read(f.gw.data_dir().join(name)).unwrap_or_default());
    }
    let haystack = String::from_utf8_lossy(&store);
    assert!(haystack.contains("contacts"), "the catalog is in the store");
    assert!(
        !haystack.contains("ana@example.com"),
        "sampled values are never stored"
    );

    // With the upstream gone, a restarted gateway still has the catalog it read before.
    f.cluster.stop();
    f.gw.restart();
    let root = f.gw.login("root", "root-pw").await;
    let (status, after) = api.get(&path, &root).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(column(&after, "contacts", "reach")["category"], "email");
    assert_eq!(column(&after, "contacts", "reach")["source"], "values");
    assert_eq!(
        after["databases"][0]["loaded_at"], before["databases"][0]["loaded_at"],
        "the kept catalog, not a new read"
    );
}
