//! Guardrails that hold against an adversary (issue 17), judged against a real PostgreSQL:
//!
//! - the gateway splits and names the statements of a string as the server runs them
//!   (a differential test over a corpus of tricky text, with `standard_conforming_strings`
//!   on and off);
//! - the checked-in table of built-in functions is the server's own `pg_proc`;
//! - in a production environment, attacks seen to pass upstream are refused, and judged by
//!   their effect: the victim table keeps its rows, `current_user` stays the grant's role,
//!   no large object appears.

use gatehouse_tests::raw::{message, startup_packet, Msg, RawConn};
use gatehouse_tests::{Api, Cluster, Fixture, ENV};
use serde_json::{json, Value};

/// What PostgreSQL answered to one simple Query: the command tags (`EMPTY` for an
/// EmptyQueryResponse), or the SQLSTATE of the error that stopped it.
async fn server_runs(c: &mut RawConn, sql: &str) -> Result<Vec<String>, String> {
    let mut q = sql.as_bytes().to_vec();
    q.push(0);
    c.send(&message(b'Q', &q)).await;
    let mut tags = Vec::new();
    let mut err = None;
    while let Some(m) = c.read().await {
        match m.tag {
            b'C' => {
                let tag = String::from_utf8_lossy(&m.body[..m.body.len().saturating_sub(1)]);
                tags.push(tag.split(' ').next().unwrap_or_default().to_string());
            }
            b'I' => tags.push("EMPTY".into()),
            b'E' => err = m.field(b'C'),
            b'Z' => break,
            _ => {}
        }
    }
    match err {
        Some(code) => Err(code),
        None => Ok(tags),
    }
}

/// A direct connection to the cluster as a role that needs no password (the test adds a
/// `trust` line for it), so the raw client sees every CommandComplete tag.
async fn direct(cluster: &Cluster) -> RawConn {
    let mut c = RawConn::connect("127.0.0.1", cluster.port).await;
    c.send(&startup_packet(&[
        ("user", "scanner"),
        ("database", "postgres"),
    ]))
    .await;
    loop {
        let m: Msg = c.read().await.expect("startup reply");
        match m.tag {
            b'Z' => return c,
            b'E' => panic!("direct login failed: {:?}", m.field(b'M')),
            _ => {}
        }
    }
}

/// The first word of each statement's command as the gateway's dry run reads `sql`.
async fn gateway_reads(api: &Api, token: &str, sql: &str, standard: bool) -> Vec<String> {
    let (status, body) = api
        .post(
            "/api/v1/policy/dry-run",
            token,
            json!({ "sql": sql, "environment": ENV, "standard_conforming_strings": standard }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let c = &body["classification"];
    let parts: Vec<&Value> = match c["each"].as_array() {
        Some(each) => each.iter().collect(),
        None => vec![c],
    };
    parts
        .iter()
        .map(|p| {
            let cmd = p["statements"][0]["command"].as_str().unwrap_or("?");
            let first = cmd.split(' ').next().unwrap_or_default().to_string();
            // PostgreSQL tags VALUES and TABLE as SELECT.
            match first.as_str() {
                "VALUES" | "TABLE" => "SELECT".into(),
                _ => first,
            }
        })
        .collect()
}

/// Strings whose statements are easy to miscount: comments, every quoting form, dollar
/// quotes, carriage returns, backslashes, Unicode escapes, nested comments, semicolons
/// inside everything. Each must run cleanly on PostgreSQL in at least one reading.
const CORPUS: &[&str] = &[
    "SELECT 1; SELECT 2",
    "SELECT 1 --c\r; SELECT 2",
    "SELECT 1 --c\r, 2",
    "SELECT 1 --c\n; SELECT 2",
    "SELECT 1 -- ; SELECT 2\n; SELECT 3",
    "SELECT 1 -- \r\n; SELECT 2",
    "SELECT/**/1;SELECT--\r2",
    "SELECT 1\r\n;\rSELECT 2",
    "SELECT 1 /* a /* b */ ; SELECT 2 */; SELECT 3",
    "SELECT 1 /* a /* b */ */; SELECT 2",
    "SELECT 1 /* ' */; SELECT 2 /* \" */",
    "SELECT 1 /*/ ; SELECT 2 */; SELECT 3",
    "SELECT 'a;b'; SELECT 2",
    "SELECT 'it''s;'; SELECT 2",
    "SELECT 'a'\n'b;'; SELECT 2",
    "SELECT 'a\\'; SELECT ' ; SELECT 3; --'",
    "SELECT N'a\\'; SELECT ' ; SELECT 3; --'",
    "SELECT 'a\\\\'; SELECT 2",
    "SELECT E'a\\'; SELECT 2'; SELECT 3",
    "SELECT E'a\\\\'; SELECT 2",
    "SELECT e'\\''; SELECT 2",
    "SELECT $$a;b$$; SELECT 2",
    "SELECT $t$a;$$;b$t$; SELECT 2",
    "SELECT $é$ ; $é$; SELECT 2",
    "SELECT $_$;$_$; SELECT 2",
    "SELECT 1 AS é; SELECT 2",
    "SELECT a$b FROM (SELECT 1 AS a$b) x; SELECT 2",
    "SELECT U&'d\\0061t\\+000061;'; SELECT 2",
    "SELECT U&'d!0061t!+000061;' UESCAPE '!'; SELECT 2",
    "SELECT U&\"d\\0061t\" FROM (SELECT 1 AS dat) x; SELECT 2",
    "SELECT \"a;\" FROM (SELECT 1 AS \"a;\") x; SELECT 2",
    "SELECT B'101'; SELECT X'ff'; SELECT 2",
    "SELECT 1;;; SELECT 2",
    "",
    ";",
    "-- only a comment\r",
    "DO $$ BEGIN PERFORM 1; END $$; SELECT 2",
    "CREATE TEMP TABLE t1 (a int); INSERT INTO t1 VALUES (1); UPDATE t1 SET a = 2 WHERE a = 1; DELETE FROM t1 WHERE a = 2; DROP TABLE t1",
    "BEGIN; SELECT 1; COMMIT",
    "PREPARE p1 AS SELECT 1; EXECUTE p1; DEALLOCATE p1",
    "VALUES (1); TABLE pg_am; SHOW search_path",
    "BEGIN; EXPLAIN SELECT 1; SET LOCAL work_mem = '1MB'; RESET work_mem; COMMIT",
    "SELECT '\\'; SELECT 2; --'",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_splits_statements_as_postgresql_runs_them() {
    let f = Fixture::start().await;
    f.cluster
        .exec("postgres", "CREATE ROLE scanner LOGIN")
        .await;
    f.cluster
        .prepend_hba("host postgres scanner 127.0.0.1/32 trust")
        .await;
    let api = Api::new(f.gw.http());
    let mut pg = direct(&f.cluster).await;
    let mut compared = 0;
    let mut failures = Vec::new();
    for standard in [true, false] {
        let setting = if standard { "on" } else { "off" };
        server_runs(
            &mut pg,
            &format!("SET standard_conforming_strings = {setting}"),
        )
        .await
        .expect("set standard_conforming_strings");
        for sql in CORPUS {
            let ours = gateway_reads(&api, &f.token, sql, standard).await;
            // PostgreSQL parses the whole string before running any of it: a syntax error
            // ran nothing, and then there is nothing to compare.
            if let Ok(theirs) = server_runs(&mut pg, sql).await {
                compared += 1;
                // EXECUTE is tagged by PostgreSQL with the prepared statement's command.
                let same = ours.len() == theirs.len()
                    && ours
                        .iter()
                        .zip(&theirs)
                        .all(|(o, t)| o == t || o == "EXECUTE");
                if !same {
                    failures.push(format!(
                        "standard_conforming_strings={setting} {sql:?}: PostgreSQL ran {theirs:?}, the gateway read {ours:?}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // A real comparison: most of the corpus runs in both readings.
    assert!(compared >= CORPUS.len() * 3 / 2, "only {compared} compared");
}

/// `server/src/policy/builtin_functions.tsv` is `pg_proc` of the installed PostgreSQL: the
/// classifier's idea of which functions are built in, and how volatile, must not drift.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_function_table_matches_the_server() {
    let cluster = Cluster::start().await;
    let c = cluster.client("postgres").await;
    let rows = c
        .query(
            "SELECT line FROM ( \
               SELECT CASE WHEN n.nspname = 'pg_catalog' THEN p.proname::text \
                           ELSE n.nspname || '.' || p.proname END || E'\\t' || \
                      CASE WHEN bool_or(p.provolatile = 'v') THEN 'v' \
                           WHEN bool_or(p.provolatile = 's') THEN 's' ELSE 'i' END AS line \
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
               WHERE n.nspname IN ('pg_catalog', 'information_schema') \
               GROUP BY n.nspname, p.proname) f \
             ORDER BY line COLLATE \"C\"",
            &[],
        )
        .await
        .unwrap();
    let live: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../server/src/policy/builtin_functions.tsv");
    let table = std::fs::read_to_string(&path).expect("builtin_functions.tsv");
    let checked_in: Vec<&str> = table.lines().collect();
    let missing: Vec<&String> = live
        .iter()
        .filter(|l| !checked_in.contains(&l.as_str()))
        .collect();
    let extra: Vec<&&str> = checked_in
        .iter()
        .filter(|l| !live.iter().any(|x| x == *l))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "builtin_functions.tsv drifted from pg_proc (regenerate it with the query in policy/functions.rs):\nmissing {missing:?}\nextra {extra:?}"
    );
}

/// Attacks that ran upstream with no refusal, sent through the gateway to a production
/// environment as a person (the least restricted caller: agents get every write reviewed
/// anyway), each on a fresh connection against a fresh victim. Each must leave no trace:
/// the victim table keeps its rows and column types, no large object appears, the sequence
/// stays put, and `current_user` is still the grant's role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_on_production_are_refused_by_their_effect() {
    let f = Fixture::start_with_tier("production", |b| {
        b.server("approval_window_seconds = 2")
            .user("erin", "erin-pw", &["engineers"])
            .grant(&["engineers"], &[ENV])
            .toml(
                r#"
[[rules]]
id = "engineers-may-truncate-staging"
action = "allow"
kinds = ["truncate"]
tables = ["staging_*"]
groups = ["engineers"]
"#,
            )
    })
    .await;
    // A role the upstream role may become: SET ROLE to it would succeed upstream.
    f.cluster
        .exec(
            "postgres",
            "CREATE ROLE auditor NOLOGIN; GRANT auditor TO app_owner",
        )
        .await;
    let token = f.gw.login("erin", "erin-pw").await;
    let attacks = [
        // Scanner differences.
        "SELECT 1 --x\r; DROP TABLE customers",
        "SELECT 1 --x\r, lo_from_bytea(0, 'x')",
        "SELECT 1 /* /* */ */; TRUNCATE customers",
        // A backslash in a plain string is read as the session reads it (ParameterStatus):
        // see guardrails_wire.rs, backslashes_in_strings_are_read_as_the_session_reads_them.
        // Names, not facts.
        "SET \"ROLE\" = auditor",
        "SET \"role\" TO auditor",
        "SET SESSION \"role\" TO auditor",
        "SELECT * FROM set_config('role', 'auditor', false)",
        "SELECT 1 FROM customers, LATERAL set_config('role', 'auditor', false) s LIMIT 1",
        "SELECT set_config('ROLE', 'auditor', false)",
        "SELECT query_to_xml('DELETE FROM customers RETURNING 1', true, true, '')",
        "CREATE FUNCTION pg_temp.wipe() RETURNS int LANGUAGE sql AS $$ DELETE FROM customers RETURNING 1 $$; SELECT pg_temp.wipe()",
        "SELECT lo_from_bytea(0, 'x')",
        "SELECT setval('orders_id_seq', 1000000)",
        // Writes by meaning.
        "MERGE INTO customers c USING (SELECT 1) s ON true WHEN MATCHED THEN DELETE",
        "DELETE FROM customers WHERE id IS NOT NULL",
        "DELETE FROM customers WHERE true OR id = 1",
        "UPDATE customers SET name = 'x' WHERE 1 IN (1)",
        "INSERT INTO customers SELECT * FROM customers ON CONFLICT (id) DO UPDATE SET name = 'x'",
        "ALTER TABLE customers ALTER COLUMN name TYPE varchar(20)",
        "EXPLAIN (ANALYZE 1) DELETE FROM customers",
        // A string is decided statement by statement.
        "TRUNCATE staging_x; DROP TABLE customers",
        "PREPARE p AS DELETE FROM customers; EXECUTE p",
    ];
    let check = f.cluster.client("appdb").await;
    let mut failures = Vec::new();
    for sql in attacks {
        check
            .batch_execute(
                "DROP TABLE IF EXISTS customers; DROP TABLE IF EXISTS staging_x;
                 DROP SEQUENCE IF EXISTS orders_id_seq;
                 SELECT lo_unlink(oid) FROM pg_largeobject_metadata;
                 SET ROLE app_owner;
                 CREATE TABLE customers (id int PRIMARY KEY, name text);
                 INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 50) g;
                 CREATE TABLE staging_x (id int);
                 CREATE SEQUENCE orders_id_seq;
                 RESET ROLE;",
            )
            .await
            .unwrap();
        let gw =
            f.gw.connect(ENV, "erin", &token)
                .await
                .unwrap_or_else(|e| panic!("connect: {e}\n{}", f.gw.log()));
        if sql.starts_with("EXPLAIN (ANALYZE 1)") {
            // The cache must not reuse a harmless reading of this shape.
            gw.simple_query("EXPLAIN (ANALYZE 0) DELETE FROM customers")
                .await
                .expect("EXPLAIN without ANALYZE is harmless");
        }
        let refused = gw.simple_query(sql).await.is_err();
        let who = first_value(&gw, "SELECT current_user").await;
        let mut effects = Vec::new();
        let rows = check
            .query_one(
                "SELECT count(*) FROM customers WHERE name LIKE 'c%' \
                 AND pg_typeof(name) = 'text'::regtype",
                &[],
            )
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(-1);
        if rows != 50 {
            effects.push(format!("customers has {rows} intact rows"));
        }
        let objects: i64 = check
            .query_one("SELECT count(*) FROM pg_largeobject_metadata", &[])
            .await
            .unwrap()
            .get(0);
        if objects != 0 {
            effects.push("a large object was created".into());
        }
        let moved: bool = check
            .query_one("SELECT is_called FROM orders_id_seq", &[])
            .await
            .unwrap()
            .get(0);
        if moved {
            effects.push("the sequence moved".into());
        }
        if who != "app_owner" {
            effects.push(format!("current_user is {who}"));
        }
        if !refused || !effects.is_empty() {
            failures.push(format!("{sql:?}: refused={refused} {effects:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));

    // What tools and people do every day still runs without a hold.
    let gw = f.gw.connect(ENV, "erin", &token).await.unwrap();
    for sql in [
        "SELECT * FROM customers WHERE id = 1",
        "SELECT lower(name), now(), pg_catalog.pg_table_size('customers') FROM customers LIMIT 1",
        "SELECT set_config('search_path', 'public', false)",
        "BEGIN; DECLARE c CURSOR FOR SELECT * FROM customers; FETCH ALL c; MOVE ABSOLUTE 0 IN c; FETCH ALL FROM c; CLOSE c; COMMIT",
        "PREPARE q AS SELECT * FROM customers WHERE id = $1; EXECUTE q(1); DEALLOCATE q",
        "BEGIN; LOCK TABLE customers IN ACCESS SHARE MODE; COMMIT",
        "SELECT xmlelement(name c, xmlattributes(id AS \"id\"), xmlforest(name AS n)) FROM customers LIMIT 1",
        "DELETE FROM customers WHERE id = 1",
        "TRUNCATE staging_x; SELECT 1",
    ] {
        if let Err(e) = gw.simple_query(sql).await {
            panic!("{sql}: {}", gatehouse_tests::message(&e));
        }
    }
}

async fn first_value(c: &tokio_postgres::Client, sql: &str) -> String {
    c.simple_query(sql)
        .await
        .ok()
        .and_then(|msgs| {
            msgs.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
        })
        .unwrap_or_default()
}
