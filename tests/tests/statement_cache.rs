//! The session's statement cache never outlives what its verdicts depended on (issue 22).
//!
//! A session keeps, per statement text (and on a prepared statement), what the statement path
//! derived from it: the decision, the catalog check before reading, the masking plan of each
//! result. Each test runs a statement until it is cached on an open connection, changes one
//! thing the cached verdict depended on — a rule, a column's tag, an exemption, the session's
//! `standard_conforming_strings` or `search_path` — and checks that the very same text on the
//! very same connection now gets the new answer, in all three ways a client sends it: a simple
//! Query, a prepared statement made before the change, and an unnamed Parse/Bind/Execute.

use gatehouse_tests::{Api, Fixture, ADMIN, ADMIN_PASSWORD, ENV};
use serde_json::json;
use tokio_postgres::{Client, SimpleQueryMessage, Statement};

/// The three ways a client sends the same text.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Simple,
    Prepared,
    Unnamed,
}

const MODES: [Mode; 3] = [Mode::Simple, Mode::Prepared, Mode::Unnamed];

fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// The first column of every row `sql` returns when sent as `mode`, or the error.
async fn run(
    c: &Client,
    mode: Mode,
    prepared: &Statement,
    sql: &str,
) -> Result<Vec<Option<String>>, String> {
    match mode {
        Mode::Simple => {
            let msgs = c.simple_query(sql).await.map_err(|e| error_text(&e))?;
            Ok(msgs
                .into_iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
                    _ => None,
                })
                .collect())
        }
        Mode::Prepared => {
            let rows = c.query(prepared, &[]).await.map_err(|e| error_text(&e))?;
            Ok(rows.iter().map(|r| r.get::<_, Option<String>>(0)).collect())
        }
        Mode::Unnamed => {
            let rows = c.query_typed(sql, &[]).await.map_err(|e| error_text(&e))?;
            Ok(rows.iter().map(|r| r.get::<_, Option<String>>(0)).collect())
        }
    }
}

/// Runs `sql` three times in each mode (so whatever the session caches is cached) and returns
/// the last answer of each.
async fn settled(
    c: &Client,
    prepared: &Statement,
    sql: &str,
) -> Vec<Result<Vec<Option<String>>, String>> {
    let mut out = Vec::new();
    for mode in MODES {
        let mut last = Err(String::new());
        for _ in 0..3 {
            last = run(c, mode, prepared, sql).await;
        }
        out.push(last);
    }
    out
}

fn denied(r: &Result<Vec<Option<String>>, String>) -> bool {
    matches!(r, Err(e) if e.contains("denied by Gatehouse"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_change_reaches_statements_the_session_has_seen() {
    let f = Fixture::start_with(|b| b.user(ADMIN, ADMIN_PASSWORD, &["admins"])).await;
    f.cluster
        .exec(
            "appdb",
            "SET ROLE app_owner; CREATE TABLE widgets (id int, label text); \
             INSERT INTO widgets VALUES (1, 'bolt'), (2, 'nut'); RESET ROLE;",
        )
        .await;
    let c = f.connect().await;
    let sql = "SELECT label FROM widgets ORDER BY id";
    let prepared = c.prepare(sql).await.expect("prepare");
    for r in settled(&c, &prepared, sql).await {
        assert_eq!(r, Ok(vec![Some("bolt".into()), Some("nut".into())]));
    }

    // The same shape with other literals: what holds for the shape is kept per shape.
    for id in 1..=3 {
        let sql = format!("SELECT label FROM widgets WHERE id = {id}");
        c.simple_query(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {}", error_text(&e)));
    }

    let api = Api::new(f.gw.http());
    let admin = f.gw.login(ADMIN, ADMIN_PASSWORD).await;
    let rule = json!({"id": "no-widgets", "action": "deny", "tables": ["widgets"],
                      "description": "widgets are off limits"});
    let (s, body) = api.post("/api/v1/rules", &admin, rule).await;
    assert_eq!(s, 201, "{body}");
    for (mode, r) in MODES.iter().zip(settled(&c, &prepared, sql).await) {
        assert!(denied(&r), "{mode:?} after the rule was added: {r:?}");
    }
    let e = c
        .simple_query("SELECT label FROM widgets WHERE id = 9")
        .await
        .expect_err("a new literal of a kept shape is decided under the new rule");
    assert!(
        error_text(&e).contains("denied by Gatehouse"),
        "{}",
        error_text(&e)
    );

    let (s, body) = api.delete("/api/v1/rules/no-widgets", &admin).await;
    assert_eq!(s, 204, "{body}");
    for (mode, r) in MODES.iter().zip(settled(&c, &prepared, sql).await) {
        assert_eq!(
            r,
            Ok(vec![Some("bolt".into()), Some("nut".into())]),
            "{mode:?} after the rule was removed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_or_exemption_change_reaches_results_the_session_has_planned() {
    let f = Fixture::start_with(|b| b.user(ADMIN, ADMIN_PASSWORD, &["admins"])).await;
    // `display` holds names under a column name that says nothing, and no detector finds a
    // bare name: only a catalog tag masks it.
    f.cluster
        .exec(
            "appdb",
            "SET ROLE app_owner; CREATE TABLE contacts (id int, display text); \
             INSERT INTO contacts VALUES (1, 'Mirela Vasquez'), (2, 'Tobias Lindqvist'); \
             RESET ROLE;",
        )
        .await;
    let clear = vec![
        Some("Mirela Vasquez".to_string()),
        Some("Tobias Lindqvist".to_string()),
    ];
    let c = f.connect().await;
    let sql = "SELECT display FROM contacts ORDER BY id";
    let prepared = c.prepare(sql).await.expect("prepare");
    for r in settled(&c, &prepared, sql).await {
        assert_eq!(r, Ok(clear.clone()), "untagged, nothing to mask");
    }
    // Other texts of the same result description: plans of table columns are kept for all.
    let by_id = |id: usize| format!("SELECT display FROM contacts WHERE id = {id}");
    for id in 1..=2 {
        let rows = run(&c, Mode::Simple, &prepared, &by_id(id)).await;
        assert_eq!(rows, Ok(vec![clear[id - 1].clone()]));
    }

    let http = reqwest::Client::new();
    let admin = f.gw.login(ADMIN, ADMIN_PASSWORD).await;
    let column = format!(
        "{}/api/v1/environments/{ENV}/catalog/columns/public/contacts/display",
        f.gw.http()
    );
    let r = http
        .put(&column)
        .bearer_auth(&admin)
        .json(&json!({"category": "person_name"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let masked = |what: &str, results: Vec<Result<Vec<Option<String>>, String>>| {
        for (mode, r) in MODES.iter().zip(results) {
            let rows = r.unwrap_or_else(|e| panic!("{what}, {mode:?}: {e}"));
            assert_eq!(rows.len(), 2, "{what}, {mode:?}");
            for (row, name) in rows.iter().zip(&clear) {
                assert_ne!(
                    row, name,
                    "{what}, {mode:?}: a tagged name came back in clear"
                );
                let row = row.as_deref().unwrap_or_default();
                assert!(
                    !row.contains("Vasquez") && !row.contains("Lindqvist"),
                    "{what}, {mode:?}: {row}"
                );
            }
        }
    };
    masked("after the tag", settled(&c, &prepared, sql).await);
    let rows = run(&c, Mode::Simple, &prepared, &by_id(1)).await;
    assert!(
        matches!(&rows, Ok(r) if r.len() == 1 && r[0] != clear[0]),
        "a new text of a kept description after the tag: {rows:?}"
    );

    // An exemption for the agent's group lets the names through; its removal masks them again.
    let r = http
        .post(format!("{}/api/v1/exemptions", f.gw.http()))
        .bearer_auth(&admin)
        .json(&json!({"group": "agents", "environment": ENV, "category": "person_name"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let ex: serde_json::Value = r.json().await.unwrap();
    for (mode, r) in MODES.iter().zip(settled(&c, &prepared, sql).await) {
        assert_eq!(r, Ok(clear.clone()), "{mode:?} under the exemption");
    }
    let path = format!("/api/v1/exemptions/{}", ex["id"].as_str().unwrap());
    assert_eq!(
        gatehouse_tests::Api::new(f.gw.http())
            .delete(&path, &admin)
            .await
            .0,
        204
    );
    masked(
        "after the exemption ended",
        settled(&c, &prepared, sql).await,
    );

    // The tag removed: clear again.
    let r = http
        .delete(&column)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    for (mode, r) in MODES.iter().zip(settled(&c, &prepared, sql).await) {
        assert_eq!(r, Ok(clear.clone()), "{mode:?} after the tag was removed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_setting_that_changes_how_text_reads_is_never_read_past() {
    let f = Fixture::start_with_tier("production", |b| b.user(ADMIN, ADMIN_PASSWORD, &["admins"]))
        .await;
    f.cluster
        .exec(
            "appdb",
            "SET ROLE app_owner; CREATE TABLE victims (id int); INSERT INTO victims VALUES (1); \
             CREATE SCHEMA hidden; CREATE TABLE things (id int); INSERT INTO things VALUES (7); \
             CREATE TABLE hidden.things (id int); RESET ROLE;",
        )
        .await;
    let c = f.connect().await;

    // With standard strings, two harmless SELECTs; with backslash escapes, the second string
    // starts inside the first and a DROP TABLE runs. The session reads it as the server will.
    let tricky = r"SELECT 'a\'; SELECT ' ; DROP TABLE victims; --'";
    for _ in 0..3 {
        c.simple_query(tricky)
            .await
            .unwrap_or_else(|e| panic!("standard strings: {}", error_text(&e)));
    }
    c.simple_query("SET standard_conforming_strings = off")
        .await
        .expect("set");
    let e = c
        .simple_query(tricky)
        .await
        .expect_err("the DROP reading must be refused");
    assert!(
        error_text(&e).contains("denied by Gatehouse"),
        "{}",
        error_text(&e)
    );
    let n = f
        .cluster
        .client("appdb")
        .await
        .query_one("SELECT count(*) FROM victims", &[])
        .await
        .expect("the victim table is still there")
        .get::<_, i64>(0);
    assert_eq!(n, 1);

    // A rule on a schema the default search_path never reaches: bare names are not in it,
    // until the session moves its search_path.
    let api = Api::new(f.gw.http());
    let admin = f.gw.login(ADMIN, ADMIN_PASSWORD).await;
    let rule = json!({"id": "hidden-stays-hidden", "action": "deny", "tables": ["hidden.*"]});
    let (s, body) = api.post("/api/v1/rules", &admin, rule).await;
    assert_eq!(s, 201, "{body}");
    let c = f.connect().await;
    let sql = "SELECT id::text FROM things";
    let prepared = c.prepare(sql).await.expect("prepare");
    for (mode, r) in MODES.iter().zip(settled(&c, &prepared, sql).await) {
        assert_eq!(
            r,
            Ok(vec![Some("7".into())]),
            "{mode:?} on the default search_path"
        );
    }
    c.simple_query("SET search_path = hidden, public")
        .await
        .expect("set search_path");
    // The prepared statement was planned against public.things at its Parse; a new Bind of it
    // is still decided under the session's new reading, which is the strict side.
    for (mode, r) in MODES.iter().zip(settled(&c, &prepared, sql).await) {
        assert!(denied(&r), "{mode:?} after SET search_path: {r:?}");
    }
}
