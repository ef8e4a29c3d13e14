//! Guardrails on the wire: what an adversary can do with the protocol itself rather than with
//! SQL. Every test is judged by effect on the real database (the victim table still exists,
//! `current_user` unchanged, the other backend alive), not by the gateway's words alone.

use gatehouse_tests::raw::{ext, message, Msg, RawConn};
use gatehouse_tests::{Fixture, AGENT, ENV};

/// The fixture's cluster gets a table `victim` owned by the upstream role (so a DROP would
/// succeed if the gateway let it through) and a role the upstream role may switch to.
async fn victim(f: &Fixture) {
    f.cluster
        .exec(
            "appdb",
            "CREATE TABLE victim (id int); INSERT INTO victim VALUES (1), (2);
             ALTER TABLE victim OWNER TO app_owner;
             DO $$BEGIN CREATE ROLE other_role; EXCEPTION WHEN duplicate_object THEN NULL; END$$;
             GRANT other_role TO app_owner;",
        )
        .await;
}

/// The victim's rows, or -1 when the table is gone.
async fn victim_rows(f: &Fixture) -> i64 {
    let c = f.cluster.client("appdb").await;
    let exists: bool = c
        .query_one("SELECT to_regclass('public.victim') IS NOT NULL", &[])
        .await
        .expect("look for the victim")
        .get(0);
    if !exists {
        return -1;
    }
    c.query_one("SELECT count(*) FROM victim", &[])
        .await
        .expect("count victim rows")
        .get(0)
}

/// Reads what `c` gets up to a ReadyForQuery or the end, closes it, and waits until the
/// gateway's upstream backends are gone: whatever reached the server has then run.
async fn settle(f: &Fixture, mut c: RawConn) -> Vec<Msg> {
    let seen = c.read_until_ready().await;
    drop(c);
    let db = f.cluster.client("appdb").await;
    for _ in 0..100 {
        let left: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app_owner'",
                &[],
            )
            .await
            .expect("list backends")
            .get(0);
        if left == 0 {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the gateway's upstream backends did not end");
}

/// A staging fixture with [`victim`] and a rule `id` denying the tables `pattern` names.
async fn denying_tables(id: &str, pattern: &str) -> Fixture {
    let rule = format!("[[rules]]\nid = {id:?}\naction = \"deny\"\ntables = [{pattern:?}]\n");
    let f = Fixture::start_with(|b| b.toml(&rule)).await;
    victim(&f).await;
    f
}

async fn login(f: &Fixture, extra: &[(&str, &str)]) -> Result<RawConn, Msg> {
    let mut params = vec![("user", AGENT), ("database", ENV)];
    params.extend_from_slice(extra);
    RawConn::login_with("127.0.0.1", f.gw.pg_port, &params, &f.token).await
}

fn error_of(msgs: &[Msg]) -> Option<&Msg> {
    msgs.iter().find(|m| m.tag == b'E')
}

fn code(m: Option<&Msg>) -> Option<String> {
    m.and_then(|m| m.field(b'C'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_are_read_in_the_sessions_encoding() {
    let f = Fixture::production_without_long_holds().await;
    victim(&f).await;

    // LATIN1: 0xE9 is 'é'. The server runs every statement; the gateway must see them too.
    let mut c = login(&f, &[("client_encoding", "LATIN1")]).await.unwrap();
    c.send(&ext::query(b"DROP TABLE victim; SELECT 1 /* \xe9 */"))
        .await;
    let reply = c.read_until_ready().await;
    assert_eq!(
        code(error_of(&reply)).as_deref(),
        Some("42501"),
        "{reply:?}"
    );
    assert_eq!(victim_rows(&f).await, 2);

    // UTF8: an invalid byte is refused as such (never read as an empty statement), and the
    // connection stays usable.
    let mut c = login(&f, &[("client_encoding", "UTF8")]).await.unwrap();
    c.send(&ext::query(b"DROP TABLE victim; SELECT 1 /* \xff */"))
        .await;
    let reply = c.read_until_ready().await;
    assert_eq!(
        code(error_of(&reply)).as_deref(),
        Some("22021"),
        "{reply:?}"
    );
    assert_eq!(c.simple_query("SELECT 41 + 1").await.unwrap(), ["42"]);
    assert_eq!(victim_rows(&f).await, 2);

    // The same through the extended protocol: the Parse text is read in the encoding too.
    let mut c = login(&f, &[("client_encoding", "LATIN1")]).await.unwrap();
    let mut batch = ext::parse("", b"DROP TABLE victim /* \xe9 */");
    batch.extend(ext::bind("", ""));
    batch.extend(ext::execute(""));
    batch.extend(ext::sync());
    c.send(&batch).await;
    let reply = c.read_until_ready().await;
    assert_eq!(
        code(error_of(&reply)).as_deref(),
        Some("42501"),
        "{reply:?}"
    );
    assert_eq!(victim_rows(&f).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encodings_that_hide_quotes_are_refused_everywhere() {
    let f = Fixture::start().await;
    victim(&f).await;

    for params in [
        vec![("client_encoding", "SJIS")],
        vec![("client_encoding", "big5")],
        vec![("options", "-c client_encoding=GBK")],
        vec![("options", r"--client-encoding=UHC")],
    ] {
        let e = login(&f, &params).await.err().expect("refused");
        assert_eq!(e.field(b'C').as_deref(), Some("0A000"), "{params:?}: {e:?}");
        let m = e.field(b'M').unwrap_or_default();
        assert!(m.contains("client_encoding"), "{m}");
    }

    // Switching in the session is refused before the server switches.
    let mut c = login(&f, &[]).await.unwrap();
    for sql in [
        "SET client_encoding TO 'SJIS'",
        "SET NAMES 'big5'",
        "SELECT set_config('client_encoding', 'GBK', false)",
    ] {
        let e = c.simple_query(sql).await.expect_err(sql);
        assert_eq!(e.field(b'C').as_deref(), Some("0A000"), "{sql}: {e:?}");
    }
    assert_eq!(
        c.simple_query("SHOW client_encoding").await.unwrap(),
        ["UTF8"]
    );

    // A switch the text does not spell out is caught when the server reports it: the session
    // ends before anything else is read in that encoding.
    c.send(&ext::query(
        b"DO $$BEGIN PERFORM set_config('client_encoding', 'S' || 'JIS', false); END$$",
    ))
    .await;
    let mut fatal = None;
    while let Some(m) = c.read().await {
        if m.tag == b'E' {
            fatal = Some(m);
            break;
        }
    }
    let fatal = fatal.expect("the session ends with an error");
    assert_eq!(fatal.field(b'S').as_deref(), Some("FATAL"), "{fatal:?}");
    assert_eq!(fatal.field(b'C').as_deref(), Some("0A000"));
    assert!(c.read().await.is_none(), "the connection is closed");

    // A role default the gateway cannot read refuses the connection before any statement.
    f.cluster
        .exec("appdb", "ALTER ROLE app_owner SET client_encoding = 'SJIS'")
        .await;
    let e = login(&f, &[]).await.err().expect("refused");
    assert_eq!(e.field(b'C').as_deref(), Some("0A000"), "{e:?}");
    f.cluster
        .exec("appdb", "ALTER ROLE app_owner RESET client_encoding")
        .await;
    assert!(login(&f, &[]).await.is_ok());
}

/// A switch to a client-only encoding that the text does not spell out ends the session when
/// the server reports it, but a statement pipelined behind it is already on its way: the
/// server reads it in the new encoding. In UTF-8, `Á\'` is a letter and an escaped quote, so
/// the gateway sees one string to the end of the text; in SJIS the bytes 0x81 0x5C are one
/// character, the string ends at the next quote and the DROP runs. Judged by effect: the
/// table is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_pipelined_behind_an_encoding_switch_is_not_read_two_ways() {
    let f = denying_tables("no-victim", "victim").await;
    let switch: &[u8] =
        b"DO $$BEGIN PERFORM set_config('client_encoding', 'S' || 'JIS', false); END$$";
    let hidden = "SELECT E'\u{c1}\\'; DROP TABLE victim; --'";
    // Alone, the hidden statement is a harmless SELECT to the gateway (and to the server).
    let mut c = login(&f, &[]).await.unwrap();
    c.send(&ext::query(hidden.as_bytes())).await;
    let reply = c.read_until_ready().await;
    assert!(error_of(&reply).is_none(), "{reply:?}");
    drop(c);

    // Pipelined behind the switch, in one Query each and through the extended protocol.
    let mut simple = ext::query(switch);
    simple.extend(ext::query(hidden.as_bytes()));
    let mut extended = ext::parse("", switch);
    extended.extend(ext::bind("", ""));
    extended.extend(ext::execute(""));
    extended.extend(ext::parse("", hidden.as_bytes()));
    extended.extend(ext::bind("", ""));
    extended.extend(ext::execute(""));
    extended.extend(ext::sync());
    for batch in [simple, extended] {
        let mut c = login(&f, &[]).await.unwrap();
        c.send(&batch).await;
        let seen = settle(&f, c).await;
        assert_eq!(victim_rows(&f).await, 2, "{seen:?}");
    }
}

/// The same window for names: after the switch the server reads a Bind's statement name in
/// SJIS, so the bytes of `Á\` name a harmless statement to the gateway and, to the server, the
/// statement whose UTF-8 name is their SJIS reading: here a DROP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_pipelined_behind_an_encoding_switch_is_not_read_two_ways() {
    let f = denying_tables("no-victim", "victim").await;
    let confusable = "\u{c1}\\";
    let as_sjis: String = f
        .cluster
        .client("appdb")
        .await
        .query_one(
            "SELECT convert_from(convert_to($1, 'UTF8'), 'SJIS')",
            &[&confusable],
        )
        .await
        .expect("the SJIS reading of the name")
        .get(0);
    assert_ne!(as_sjis, confusable);

    let mut c = login(&f, &[]).await.unwrap();
    let mut define = ext::parse(&as_sjis, b"DROP TABLE victim");
    define.extend(ext::parse(confusable, b"SELECT 1"));
    define.extend(ext::sync());
    c.send(&define).await;
    let reply = c.read_until_ready().await;
    assert!(error_of(&reply).is_none(), "{reply:?}");

    let mut run = ext::parse(
        "",
        b"DO $$BEGIN PERFORM set_config('client_encoding', 'S' || 'JIS', false); END$$",
    );
    run.extend(ext::bind("", ""));
    run.extend(ext::execute(""));
    run.extend(ext::bind("", confusable));
    run.extend(ext::execute(""));
    run.extend(ext::sync());
    c.send(&run).await;
    let seen = settle(&f, c).await;
    assert_eq!(victim_rows(&f).await, 2, "{seen:?}");
    // The client is told why, in words the server could read whatever the encoding.
    assert_eq!(code(error_of(&seen)).as_deref(), Some("0A000"), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_options_are_read_with_the_servers_escapes() {
    let f = Fixture::start().await;
    victim(&f).await;
    for options in [
        r"-\c role=other_role",
        r"-c r\ole=other_role",
        "-c ROLE=other_role",
        "--Role=other_role",
        "-c session-authorization=other_role",
        "-crole=other_role",
        "-ec role=other_role",
    ] {
        match login(&f, &[("options", options)]).await {
            Err(e) => {
                let code = e.field(b'C').unwrap_or_default();
                assert!(code == "28000" || code == "08P01", "{options}: {e:?}");
            }
            Ok(mut c) => panic!(
                "{options}: connected as {:?}",
                c.simple_query("SELECT current_user").await
            ),
        }
    }
    // Settings still pass, escapes and all.
    let mut c = login(&f, &[("options", r#"-c search_path="a\ b",public"#)])
        .await
        .unwrap();
    assert_eq!(
        c.simple_query("SELECT current_user").await.unwrap(),
        ["app_owner"]
    );
    assert_eq!(
        c.simple_query("SHOW search_path").await.unwrap(),
        [r#""a b",public"#]
    );
}

/// OIDs of built-in functions, fixed in PostgreSQL's catalog.
const SET_CONFIG: u32 = 2078;
const PG_TERMINATE_BACKEND: u32 = 2096;
const PG_READ_FILE: u32 = 3826;
const LO_OPEN: u32 = 952;
const LOREAD: u32 = 954;

/// Stores `content` in a new large object, then reads it back through fast-path calls
/// (lo_open, loread), as PgJDBC's large-object API does.
async fn read_large_object(c: &mut RawConn, content: &str) -> Vec<u8> {
    let oid: u32 = c
        .simple_query(&format!("SELECT lo_from_bytea(0, '{content}')"))
        .await
        .unwrap()[0]
        .parse()
        .unwrap();
    c.simple_query("BEGIN").await.unwrap();
    c.send(&ext::function_call(
        LO_OPEN,
        &[&oid.to_be_bytes(), &0x40000i32.to_be_bytes()],
    ))
    .await;
    let reply = c.read_until_ready().await;
    let v = reply
        .iter()
        .find(|m| m.tag == b'V')
        .expect("lo_open result");
    let fd = v.body[4..8].to_vec();
    let len = i32::try_from(content.len()).unwrap();
    c.send(&ext::function_call(LOREAD, &[&fd, &len.to_be_bytes()]))
        .await;
    let reply = c.read_until_ready().await;
    let v = reply.iter().find(|m| m.tag == b'V').expect("loread result");
    let data = v.body[4..].to_vec();
    c.simple_query("COMMIT").await.unwrap();
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_calls_are_decided_like_the_select_they_stand_for() {
    let f = Fixture::start().await;
    victim(&f).await;
    let mut c = login(&f, &[]).await.unwrap();

    // set_config('role', …) by OID: refused; the role is unchanged.
    c.send(&ext::function_call(
        SET_CONFIG,
        &[b"role", b"other_role", &[0]],
    ))
    .await;
    let reply = c.read_until_ready().await;
    assert_eq!(
        code(error_of(&reply)).as_deref(),
        Some("42501"),
        "{reply:?}"
    );
    assert_eq!(
        c.simple_query("SELECT current_user").await.unwrap(),
        ["app_owner"]
    );

    // Another backend of the same role survives pg_terminate_backend by OID.
    let mut other = login(&f, &[]).await.unwrap();
    let pid: i32 = other.simple_query("SELECT pg_backend_pid()").await.unwrap()[0]
        .parse()
        .unwrap();
    c.send(&ext::function_call(
        PG_TERMINATE_BACKEND,
        &[&pid.to_be_bytes(), &0i64.to_be_bytes()],
    ))
    .await;
    let reply = c.read_until_ready().await;
    assert_eq!(
        code(error_of(&reply)).as_deref(),
        Some("42501"),
        "{reply:?}"
    );
    assert_eq!(other.simple_query("SELECT 1").await.unwrap(), ["1"]);

    // pg_read_file by OID: refused, the file's content never arrives.
    c.send(&ext::function_call(PG_READ_FILE, &[b"postgresql.conf"]))
        .await;
    let reply = c.read_until_ready().await;
    assert_eq!(
        code(error_of(&reply)).as_deref(),
        Some("42501"),
        "{reply:?}"
    );
    assert!(!reply.iter().any(|m| m.tag == b'V'));

    // The large-object API (PgJDBC uses it) still works.
    assert_eq!(read_large_object(&mut c, "hello").await, b"hello");

    // What a fast-path call returns is masked like any value of unknown lineage.
    let email = "ana.lopez@example.com";
    let read = read_large_object(&mut c, &format!("mail: {email}")).await;
    let text = String::from_utf8_lossy(&read);
    assert!(
        text.starts_with("mail: ") && !text.contains(email),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_frontend_messages_end_the_session() {
    let f = Fixture::start().await;
    let mut c = login(&f, &[]).await.unwrap();
    c.send(&message(b'?', b"anything")).await;
    let e = c.read_error().await.expect("an error");
    assert_eq!(e.field(b'S').as_deref(), Some("FATAL"));
    assert_eq!(e.field(b'C').as_deref(), Some("08P01"));
    assert!(c.read().await.is_none());
    // Everyone else carries on.
    let mut other = login(&f, &[]).await.unwrap();
    assert_eq!(other.simple_query("SELECT 1").await.unwrap(), ["1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_name_means_what_the_server_accepted() {
    let f = Fixture::production_without_long_holds().await;
    victim(&f).await;
    let mut c = login(&f, &[]).await.unwrap();

    // s1 is the DROP (parsed, never executed).
    let mut b = ext::parse("s1", b"DROP TABLE victim");
    b.extend(ext::sync());
    c.send(&b).await;
    assert!(error_of(&c.read_until_ready().await).is_none());

    // A second Parse of s1 is rejected by the server (the name is taken); a Bind after the
    // Sync binds the DROP. The gateway must not decide on "SELECT 1".
    let mut b = ext::parse("s1", b"SELECT 1");
    b.extend(ext::sync());
    b.extend(ext::bind("", "s1"));
    b.extend(ext::execute(""));
    b.extend(ext::sync());
    c.send(&b).await;
    let first = c.read_until_ready().await;
    assert_eq!(
        code(error_of(&first)).as_deref(),
        Some("42P05"),
        "{first:?}"
    );
    let second = c.read_until_ready().await;
    assert!(error_of(&second).is_some(), "{second:?}");
    assert_eq!(victim_rows(&f).await, 2);

    // A Close skipped after an error leaves s1 in place: the same must hold.
    let mut b = ext::parse("bad", b"SELEC nonsense");
    b.extend(ext::close(b'S', "s1"));
    b.extend(ext::sync());
    b.extend(ext::parse("s1", b"SELECT 1"));
    b.extend(ext::sync());
    b.extend(ext::bind("", "s1"));
    b.extend(ext::execute(""));
    b.extend(ext::sync());
    c.send(&b).await;
    for _ in 0..3 {
        c.read_until_ready().await;
    }
    assert_eq!(victim_rows(&f).await, 2);

    // Ordinary pipelining still works: Parse, Bind, Execute, Sync in one write.
    let mut b = ext::parse("s2", b"SELECT count(*) FROM victim");
    b.extend(ext::bind("", "s2"));
    b.extend(ext::execute(""));
    b.extend(ext::sync());
    c.send(&b).await;
    let reply = c.read_until_ready().await;
    assert!(error_of(&reply).is_none(), "{reply:?}");
    assert!(reply.iter().any(|m| m.tag == b'D'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_runs_nothing_of_what_it_quotes() {
    // The refusal is raised by the upstream, in a statement of the gateway's own that quotes
    // the reason, which names the table the client wrote. With standard_conforming_strings off
    // a backslash in that name must not end the quoted text early.
    let f = denying_tables("no-secrets", "secret*").await;
    let mut other = login(&f, &[]).await.unwrap();
    let pid = other.simple_query("SELECT pg_backend_pid()").await.unwrap()[0].clone();
    let mut c = login(&f, &[]).await.unwrap();
    c.simple_query("SET standard_conforming_strings = off")
        .await
        .unwrap();
    let name = format!(r"secret\' || (SELECT pg_terminate_backend({pid}))::text; END; --");
    let sql = format!(r#"SELECT * FROM "{name}""#);
    let e = c.simple_query(&sql).await.expect_err("denied");
    assert_eq!(e.field(b'C').as_deref(), Some("42501"), "{e:?}");
    assert!(
        e.field(b'M').unwrap_or_default().contains("no-secrets"),
        "{e:?}"
    );
    assert_eq!(other.simple_query("SELECT 1").await.unwrap(), ["1"]);
    // The same with the dollar quote the refusal statement uses.
    let name = r"secret\'; END; -- $gh$gh$";
    let e = c
        .simple_query(&format!(r#"SELECT * FROM "{name}""#))
        .await
        .expect_err("denied");
    assert_eq!(e.field(b'C').as_deref(), Some("42501"), "{e:?}");
    assert_eq!(victim_rows(&f).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_settings_and_server_files_are_refused_in_every_tier() {
    // Staging: none of the production review rules apply, but switching role, reading the
    // server's files and changing the server's configuration still must not pass.
    let f = Fixture::start().await;
    victim(&f).await;
    let mut c = login(&f, &[]).await.unwrap();
    for sql in [
        "SET ROLE other_role",
        "SET \"role\" = other_role",
        "SELECT set_config('role', 'other_role', false)",
        "SET SESSION AUTHORIZATION other_role",
    ] {
        let e = c.simple_query(sql).await.expect_err(sql);
        assert_eq!(e.field(b'C').as_deref(), Some("42501"), "{sql}: {e:?}");
        assert!(
            e.field(b'M').unwrap_or_default().contains("no-role-change"),
            "{sql}: {e:?}"
        );
    }
    assert_eq!(
        c.simple_query("SELECT current_user").await.unwrap(),
        ["app_owner"]
    );
    for (sql, rule) in [
        ("SELECT pg_read_file('/etc/hostname')", "no-server-access"),
        (
            "COPY victim TO '/tmp/gatehouse-victim.csv'",
            "no-server-access",
        ),
        ("ALTER SYSTEM SET work_mem = '1GB'", "no-alter-system"),
    ] {
        let e = c.simple_query(sql).await.expect_err(sql);
        assert_eq!(e.field(b'C').as_deref(), Some("42501"), "{sql}: {e:?}");
        let message = e.field(b'M').unwrap_or_default();
        assert!(
            message.contains("Gatehouse") && message.contains(rule),
            "{sql}: {e:?}"
        );
    }
    // Ordinary work in staging is untouched.
    assert_eq!(
        c.simple_query("SELECT count(*) FROM victim").await.unwrap(),
        ["2"]
    );
    assert_eq!(victim_rows(&f).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_path_set_earlier_does_not_dodge_a_schema_rule() {
    let f = denying_tables("no-payroll", "payroll.*").await;
    f.cluster
        .exec(
            "appdb",
            "CREATE SCHEMA payroll AUTHORIZATION app_owner;
             CREATE TABLE payroll.salaries (who text, amount int);
             INSERT INTO payroll.salaries VALUES ('ceo', 1000000);
             ALTER TABLE payroll.salaries OWNER TO app_owner;",
        )
        .await;
    let denied = |reply: &[Msg], how: &str| {
        assert_eq!(
            code(error_of(reply)).as_deref(),
            Some("42501"),
            "{how}: {reply:?}"
        );
        assert!(
            !reply.iter().any(|m| m.tag == b'D'),
            "{how}: a salary reached the client: {reply:?}"
        );
    };

    // A SET in an earlier message, then the bare name.
    let mut c = login(&f, &[]).await.unwrap();
    c.simple_query("SET search_path = payroll, public")
        .await
        .unwrap();
    c.send(&ext::query(b"SELECT * FROM salaries")).await;
    denied(&c.read_until_ready().await, "after SET");
    // The same through the extended protocol.
    let mut b = ext::parse("", b"SELECT amount FROM salaries");
    b.extend(ext::bind("", ""));
    b.extend(ext::execute(""));
    b.extend(ext::sync());
    c.send(&b).await;
    denied(&c.read_until_ready().await, "extended, after SET");

    // set_config with a constant name, in an earlier message.
    let mut c = login(&f, &[]).await.unwrap();
    c.simple_query("SELECT set_config('search_path', 'payroll', false)")
        .await
        .unwrap();
    c.send(&ext::query(b"SELECT * FROM salaries")).await;
    denied(&c.read_until_ready().await, "after set_config");

    // At startup, in `options`.
    let mut c = login(&f, &[("options", "-c search_path=payroll")])
        .await
        .unwrap();
    c.send(&ext::query(b"SELECT * FROM salaries")).await;
    denied(&c.read_until_ready().await, "from options");

    // A session that never moved its search_path reads its own tables by their bare names.
    let mut c = login(&f, &[]).await.unwrap();
    assert_eq!(
        c.simple_query("SELECT count(*) FROM victim").await.unwrap(),
        ["2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backslashes_in_strings_are_read_as_the_session_reads_them() {
    // With standard_conforming_strings on, `'\'` is a string of one backslash, so this is two
    // harmless strings; with it off the first string runs to the next quote and the DROP is a
    // statement. The gateway follows the session's setting from the server's ParameterStatus.
    let f = Fixture::production_without_long_holds().await;
    victim(&f).await;
    let sql = r"SELECT '\' AS a, '; DROP TABLE victim; --' AS b";
    let mut c = login(&f, &[]).await.unwrap();
    let rows = c.simple_query(sql).await.unwrap_or_else(|e| {
        panic!("with standard_conforming_strings on this is two strings: {e:?}")
    });
    assert_eq!(rows, [r"\"]);
    c.simple_query("SET standard_conforming_strings = off")
        .await
        .unwrap();
    let e = c.simple_query(sql).await.expect_err("read as a DROP");
    assert_eq!(e.field(b'C').as_deref(), Some("42501"), "{e:?}");
    assert_eq!(victim_rows(&f).await, 2);

    // Changed and used in one string: the gateway cannot know which reading the second
    // statement gets, so it takes the strictest.
    let mut c = login(&f, &[]).await.unwrap();
    let e = c
        .simple_query(&format!("SET standard_conforming_strings = off; {sql}"))
        .await
        .expect_err("strictest reading");
    assert_eq!(e.field(b'C').as_deref(), Some("42501"), "{e:?}");
    // And from the startup options.
    let mut c = login(&f, &[("options", "-c standard_conforming_strings=off")])
        .await
        .unwrap();
    let e = c.simple_query(sql).await.expect_err("off from the start");
    assert_eq!(e.field(b'C').as_deref(), Some("42501"), "{e:?}");
    assert_eq!(victim_rows(&f).await, 2);
}
