//! The audit trail end to end: the exact records of a scripted session, tamper evidence that
//! names the broken record, no lost record of a data-changing statement when the gateway is
//! killed, and fail-closed refusal while the disk is full.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_tests::{message, run_cmd, sqlstate, Api, Fixture, Gateway, AGENT, ENV};
use reqwest::Method;
use serde_json::Value;

const ADMIN: &str = "auditor";
const ADMIN_PW: &str = "audit-pw";

async fn fixture() -> Fixture {
    Fixture::start_with(|b| b.user(ADMIN, ADMIN_PW, &["admins"])).await
}

/// Waits until the trail holds a record matching `pred`, then returns the matching query's records.
async fn wait_for(
    gw: &Gateway,
    token: &str,
    query: &str,
    pred: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records = gw.audit(token, query).await;
        if pred(&records) {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "audit records never matched; last: {records:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_session_leaves_the_exact_trail() {
    let f = fixture().await;
    let admin = f.gw.login(ADMIN, ADMIN_PW).await;
    {
        let c = f.connect().await;
        c.batch_execute("CREATE TABLE people (id int PRIMARY KEY, email text)")
            .await
            .unwrap();
        c.execute(
            "INSERT INTO people VALUES (1, 'ana@example.com'), (2, 'bo@example.org')",
            &[],
        )
        .await
        .unwrap();
        let rows = c
            .query("SELECT id, email FROM people WHERE id = $1", &[&1i32])
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let e = c.batch_execute("SELECT 1/0").await.unwrap_err();
        assert_eq!(sqlstate(&e), "22012");
        c.batch_execute("DELETE FROM people WHERE id = 2")
            .await
            .unwrap();
    }
    let records = wait_for(&f.gw, &admin, "identity=agent", |r| {
        r.iter().any(|x| s(x, "event") == "connection.close")
    })
    .await;
    let trail: Vec<(String, String, Option<i64>, String)> = records
        .iter()
        .map(|r| {
            (
                s(r, "event"),
                s(r, "statement"),
                r["rows"].as_i64(),
                s(r, "sqlstate"),
            )
        })
        .collect();
    let expected: Vec<(&str, &str, Option<i64>, &str)> = vec![
        ("connection.open", "", None, ""),
        (
            "statement.start",
            "CREATE TABLE people (id int PRIMARY KEY, email text)",
            None,
            "",
        ),
        (
            "statement",
            "CREATE TABLE people (id int PRIMARY KEY, email text)",
            None,
            "",
        ),
        (
            "statement.start",
            "INSERT INTO people VALUES (1, '<redacted:email>'), (2, '<redacted:email>')",
            None,
            "",
        ),
        (
            "statement",
            "INSERT INTO people VALUES (1, '<redacted:email>'), (2, '<redacted:email>')",
            Some(2),
            "",
        ),
        (
            "statement",
            "SELECT id, email FROM people WHERE id = $1",
            Some(1),
            "",
        ),
        ("statement", "SELECT 1/0", None, "22012"),
        (
            "statement.start",
            "DELETE FROM people WHERE id = 2",
            None,
            "",
        ),
        ("statement", "DELETE FROM people WHERE id = 2", Some(1), ""),
        ("connection.close", "", None, ""),
    ];
    let expected: Vec<(String, String, Option<i64>, String)> = expected
        .into_iter()
        .map(|(a, b, c, d)| (a.into(), b.into(), c, d.into()))
        .collect();
    assert_eq!(trail, expected);

    // Every record carries who, from where, to what, through which connection.
    let conn_id = s(&records[0], "connection_id");
    assert!(!conn_id.is_empty());
    for r in &records {
        assert_eq!(s(r, "identity"), AGENT);
        assert_eq!(s(r, "identity_kind"), "agent");
        assert_eq!(s(r, "environment"), ENV);
        assert_eq!(s(r, "database"), "appdb");
        assert_eq!(s(r, "connection_id"), conn_id);
        assert!(s(r, "client_addr").starts_with("127.0.0.1:"));
        assert_eq!(s(r, "via"), "direct");
    }
    let insert = &records[4];
    assert_eq!(s(insert, "decision"), "allow");
    assert_eq!(insert["statement_kinds"], serde_json::json!(["INSERT"]));
    assert_eq!(s(insert, "fingerprint").len(), 16);
    assert!(insert["duration_ms"].as_f64().is_some());
    let close = records.last().unwrap();
    assert_eq!(close["details"]["statements"], 5);
    assert!(close["details"]["client_bytes"].as_u64().unwrap() > 0);

    // Search: by text, by kind, by connection; and the login is there too.
    let found =
        f.gw.audit(&admin, "q=people&event=statement&kind=DELETE")
            .await;
    assert_eq!(found.len(), 1);
    let by_connection = f.gw.audit(&admin, &format!("connection={conn_id}")).await;
    let seqs = |rs: &[Value]| rs.iter().map(|r| r["seq"].as_i64()).collect::<Vec<_>>();
    let mut expected_seqs = seqs(&records);
    expected_seqs.sort();
    let mut got_seqs = seqs(&by_connection);
    got_seqs.sort();
    assert_eq!(got_seqs, expected_seqs);
    let logins = f.gw.audit(&admin, "event=auth.login").await;
    assert!(
        logins.iter().any(|r| s(r, "identity") == ADMIN),
        "{logins:#?}"
    );

    // The personal data written never reached the trail, in any form, export included.
    let export = f.gw.audit_export(&admin, "format=jsonl").await;
    assert!(export.lines().count() >= records.len());
    assert!(!export.contains("ana@example.com") && !export.contains("bo@example.org"));
    let csv = f.gw.audit_export(&admin, "format=csv&identity=agent").await;
    assert!(csv.starts_with("id,ts,event,identity"));
    assert_eq!(csv.lines().count(), records.len() + 1);

    // Not for everyone.
    let api = Api::new(f.gw.http());
    assert_eq!(api.get("/api/v1/audit", &f.token).await.0, 403);

    let out = f.gw.verify_audit();
    assert!(
        out.ok() && out.stdout.contains("audit trail intact"),
        "{out:?}"
    );
}

/// Copies a stopped gateway's data dir and writes a config that points at the copy.
fn copy_trail(from: &Path, to: &Path) -> std::path::PathBuf {
    copy_dir(from, to);
    let config = to.join("verify.toml");
    std::fs::write(
        &config,
        format!("[server]\ndata_dir = {:?}\n", to.display().to_string()),
    )
    .unwrap();
    config
}

/// `from`'s files and directories (the trail's segments are in `audit-segments/`).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        } else if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        }
    }
}

fn verify(config: &Path) -> gatehouse_tests::CmdOutput {
    run_cmd(
        Command::new(gatehouse_tests::server_bin())
            .args(["audit", "verify", "--config"])
            .arg(config),
        Duration::from_secs(60),
    )
}

fn tamper(config: &Path, sql: &str) {
    let db = config.parent().unwrap().join("audit.db");
    let c = rusqlite::Connection::open(db).unwrap();
    c.execute_batch(sql).unwrap();
}

/// Rewrites the trail's records as someone with the files would: every block's lines (one per
/// record, its seq first, tab-separated; in a segment file or in its row) edited as one list,
/// then put back as a single block kept in its row.
fn tamper_lines(config: &Path, edit: impl FnOnce(&mut Vec<String>)) {
    let dir = config.parent().unwrap();
    let c = rusqlite::Connection::open(dir.join("audit.db")).unwrap();
    let blocks: Vec<String> = c
        .prepare(
            "SELECT records, segment, seg_offset, seg_length FROM audit_blocks ORDER BY first_seq",
        )
        .unwrap()
        .query_map([], |r| {
            let segment: Option<i64> = r.get(1)?;
            Ok(match segment {
                Some(s) => {
                    let (at, len): (usize, usize) = (r.get(2)?, r.get(3)?);
                    let bytes =
                        std::fs::read(dir.join(format!("audit-segments/{s:020}.seg"))).unwrap();
                    String::from_utf8(bytes[at..at + len].to_vec()).unwrap()
                }
                None => r.get(0)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut lines: Vec<String> = blocks
        .iter()
        .flat_map(|b| b.lines().map(str::to_string))
        .collect();
    edit(&mut lines);
    let seq = |l: &String| l.split('\t').next().unwrap().parse::<i64>().unwrap();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    c.execute("DELETE FROM audit_blocks", []).unwrap();
    std::fs::remove_dir_all(dir.join("audit-segments")).unwrap();
    c.execute(
        "INSERT INTO audit_blocks (first_seq, last_seq, min_ts, max_ts, records) VALUES (?1, ?2, '0', '9', ?3)",
        rusqlite::params![seq(&lines[0]), seq(lines.last().unwrap()), text],
    )
    .unwrap();
}

/// Edits the trail's segment files in place, each byte for byte (same length), as someone with
/// the files would without touching the index.
fn tamper_segments(config: &Path, edit: impl Fn(&str) -> String) {
    let dir = config.parent().unwrap().join("audit-segments");
    let mut edited = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap();
        let new = edit(&text);
        assert_eq!(new.len(), text.len(), "an edit in place keeps the length");
        edited += usize::from(new != text);
        std::fs::write(e.path(), new).unwrap();
    }
    assert!(edited > 0, "the edit changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_is_detected_and_named() {
    if gatehouse_tests::on_shared_store() {
        // Edits of a shared store's chains: replicas::every_replica_writes_its_own_chain_….
        eprintln!("skipped: this edits a gateway's own audit.db");
        return;
    }
    let mut f = fixture().await;
    for i in 0..3 {
        let c = f.connect().await;
        c.batch_execute(&format!("SELECT {i}")).await.unwrap();
    }
    // Past the checkpoint interval, one more connection: its batch carries a signed checkpoint.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    f.connect()
        .await
        .batch_execute("SELECT 'last'")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    f.gw.restart();
    let out = f.gw.verify_audit();
    assert!(out.ok(), "{out:?}");
    let data = f.gw.data_dir();
    let work = tempfile::tempdir().unwrap();

    let cfg = copy_trail(&data, &work.path().join("edit"));
    tamper_segments(&cfg, |t| t.replace("SELECT 1", "SELECT 9"));
    let out = verify(&cfg);
    assert_eq!(out.status, 1, "{out:?}");
    assert!(
        out.stdout.contains("BROKEN at record") && out.stdout.contains("does not match its hash"),
        "{out:?}"
    );

    let cfg = copy_trail(&data, &work.path().join("delete"));
    tamper_lines(&cfg, |lines| lines.retain(|l| !l.starts_with("4\t")));
    let out = verify(&cfg);
    assert_eq!(out.status, 1);
    assert!(
        out.stdout
            .contains("BROKEN at record 4: record 4 is missing"),
        "{out:?}"
    );

    let cfg = copy_trail(&data, &work.path().join("reorder"));
    // Records 5 and 6 trade places, each keeping its own hash.
    tamper_lines(&cfg, |lines| {
        let at = |seq: &str| {
            lines
                .iter()
                .position(|l| l.starts_with(&format!("{seq}\t")))
                .unwrap()
        };
        let (five, six) = (at("5"), at("6"));
        let rest = |l: &String| l.split_once('\t').unwrap().1.to_string();
        let (r5, r6) = (rest(&lines[five]), rest(&lines[six]));
        lines[five] = format!("5\t{r6}");
        lines[six] = format!("6\t{r5}");
    });
    let out = verify(&cfg);
    assert_eq!(out.status, 1);
    assert!(
        out.stdout.contains("BROKEN at record 5") && out.stdout.contains("reordered"),
        "{out:?}"
    );

    // Lines that are no longer records at all are named, not skipped.
    let cfg = copy_trail(&data, &work.path().join("mangle"));
    tamper_segments(&cfg, |t| t.replace('\t', " "));
    let out = verify(&cfg);
    assert_eq!(out.status, 1, "{out:?}");
    assert!(
        out.stdout.contains("BROKEN at record 1") && out.stdout.contains("edited"),
        "{out:?}"
    );

    // Rewriting the whole chain consistently is caught by the signed checkpoints.
    let cfg = copy_trail(&data, &work.path().join("truncate"));
    tamper(
        &cfg,
        "DELETE FROM audit_blocks WHERE last_seq >= (SELECT max(seq) FROM audit_checkpoints)",
    );
    let out = verify(&cfg);
    assert_eq!(out.status, 1);
    assert!(out.stdout.contains("truncated"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_write_load_loses_no_record_of_a_write() {
    let mut f = fixture().await;
    f.connect()
        .await
        .batch_execute("CREATE TABLE k (id int PRIMARY KEY)")
        .await
        .unwrap();
    let mut writers = Vec::new();
    for w in 0..4 {
        let c = f.connect().await;
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                if c.batch_execute(&format!("INSERT INTO k VALUES ({})", w * 1_000_000 + i))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    f.gw.kill9();
    for w in writers {
        let _ = w.await;
    }
    // The upstream is the truth: every row that exists was written by a statement that must be
    // in the trail.
    let direct = f.cluster.client("appdb").await;
    let ids: Vec<i32> = direct
        .query("SELECT id FROM k", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(ids.len() > 50, "the load wrote only {} rows", ids.len());
    f.gw.restart();
    let admin = f.gw.login(ADMIN, ADMIN_PW).await;
    let starts =
        f.gw.audit(&admin, "event=statement.start&q=INSERT%20INTO%20k")
            .await;
    let recorded: std::collections::HashSet<String> =
        starts.iter().map(|r| s(r, "statement")).collect();
    gatehouse_tests::assert_all_recorded(
        &recorded,
        ids.iter().map(|id| format!("INSERT INTO k VALUES ({id})")),
        "written rows",
    );
    let out = f.gw.verify_audit();
    assert!(out.ok(), "the chain survived the crash: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_statements_until_space_returns() {
    if gatehouse_tests::on_shared_store() {
        // The trail is not on this disk; its store's outage: replicas::the_store_restarted_….
        eprintln!("skipped: this fills the disk of a gateway's own audit.db");
        return;
    }
    let mnt = tempfile::Builder::new()
        .prefix("gatehouse-tmpfs-")
        .tempdir()
        .unwrap();
    let out = run_cmd(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
            .arg(mnt.path()),
        Duration::from_secs(10),
    );
    assert!(out.ok(), "mount a small tmpfs (tests run as root): {out:?}");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
    let _unmount = Unmount(mnt.path());
    let data = mnt.path().join("data");
    let f = Fixture::start_with(|b| b.data_dir(&data)).await;
    let c = f.connect().await;
    c.batch_execute("CREATE TABLE d (id int)").await.unwrap();

    // Fill the disk.
    let filler = mnt.path().join("filler");
    let _ = run_cmd(
        Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", filler.display())),
        Duration::from_secs(30),
    );
    let mut refused = None;
    for i in 0..50 {
        match c
            .batch_execute(&format!("INSERT INTO d VALUES ({i})"))
            .await
        {
            Ok(()) => continue,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("a write is refused once the audit cannot be written");
    assert_eq!(sqlstate(&e), "53100", "{e}");
    assert!(
        message(&e).contains("audit trail") && message(&e).contains("disk is full"),
        "{}",
        message(&e)
    );
    // Reads are refused too while the trail is down, and the session stays usable.
    let e = c.batch_execute("SELECT 1").await.unwrap_err();
    assert!(["53100", "58030"].contains(&sqlstate(&e).as_str()), "{e}");
    // A load balancer's health check says so.
    let (status, health) = Api::new(f.gw.http()).get_anonymous("/healthz").await;
    assert_eq!(status, 503, "{health}");
    assert!(
        health["audit"].as_str().unwrap().contains("disk is full"),
        "{health}"
    );
    // Nothing refused reached the upstream.
    let direct = f.cluster.client("appdb").await;
    let before: i64 = direct
        .query_one("SELECT count(*) FROM d", &[])
        .await
        .unwrap()
        .get(0);

    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match c.batch_execute("INSERT INTO d VALUES (1000)").await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("statements did not resume: {e}"),
        }
    }
    let after: i64 = direct
        .query_one("SELECT count(*) FROM d", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, before + 1);
    assert_eq!(Api::new(f.gw.http()).get_anonymous("/healthz").await.0, 200);
    drop(c);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = f.gw.verify_audit();
    assert!(out.ok(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_connections_terminate_and_metrics() {
    let f = fixture().await;
    let admin = f.gw.login(ADMIN, ADMIN_PW).await;
    let http = reqwest::Client::new();
    let api = Api::new(f.gw.http());
    let mut raw =
        gatehouse_tests::raw::RawConn::login("127.0.0.1", f.gw.pg_port, AGENT, ENV, &f.token).await;
    assert_eq!(
        raw.simple_query("SELECT 1").await.unwrap(),
        vec!["1".to_string()]
    );
    let other = f.connect().await;

    // A connection is listed once its session is set up, just after its client is told it
    // may start: under load that can be a moment later.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let list = loop {
        let (_, list) = api.get("/api/v1/connections", &admin).await;
        if list["items"].as_array().map(Vec::len) == Some(2) || std::time::Instant::now() > until {
            break list;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list:#}");
    assert!(items
        .iter()
        .all(|c| c["identity"] == AGENT && c["environment"] == ENV));
    // A non-admin sees only its own connections (here: the same two).
    let (_, mine) = api.get("/api/v1/connections", &f.token).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 2);
    let (status, _) = api
        .send(
            Method::POST,
            "/api/v1/connections/x/terminate",
            Some(&f.token),
            None,
        )
        .await;
    assert_eq!(status, 403);

    // Terminate the raw connection, found by its client address.
    let raw_addr = raw.stream.local_addr().unwrap().to_string();
    let id = items
        .iter()
        .find(|c| c["client_addr"] == raw_addr.as_str())
        .expect("the raw connection is listed")["id"]
        .as_str()
        .unwrap();
    let (status, _) = api
        .post(
            &format!("/api/v1/connections/{id}/terminate"),
            &admin,
            serde_json::json!({"reason": "maintenance"}),
        )
        .await;
    assert_eq!(status, 204);
    let e = raw
        .read_error()
        .await
        .expect("the terminated client is told why");
    assert_eq!(e.field(b'C').as_deref(), Some("57P01"));
    assert_eq!(
        e.field(b'M').as_deref(),
        Some("connection terminated by administrator auditor: maintenance")
    );
    assert!(raw.read().await.is_none());
    assert_eq!(
        other
            .query_one("SELECT 2", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
    let acts = wait_for(&f.gw, &admin, "event=admin.connection.terminate", |r| {
        !r.is_empty()
    })
    .await;
    assert_eq!(s(&acts[0], "identity"), ADMIN);
    assert_eq!(acts[0]["details"]["reason"], "maintenance");

    let metrics = http
        .get(format!("{}/metrics", f.gw.http()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "gatehouse_statements_total",
        "gatehouse_connections_open",
        "gatehouse_audit_queue_depth",
        "gatehouse_statement_duration_seconds",
        "gatehouse_approvals_pending",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_keeps_the_first_rows_as_the_client_saw_them() {
    let f = Fixture::start_with(|b| {
        b.user(ADMIN, ADMIN_PW, &["admins"])
            .environment_setting(ENV, "replay_rows = 2")
    })
    .await;
    let admin = f.gw.login(ADMIN, ADMIN_PW).await;
    let c = f.connect().await;
    c.batch_execute(
        "CREATE TABLE people (id int PRIMARY KEY, email text);
         INSERT INTO people VALUES (1, 'ana@example.com'), (2, 'bo@example.org'), (3, 'cy@example.net');
         SELECT id, email FROM people ORDER BY id",
    )
    .await
    .unwrap();
    // The extended protocol, binary results (tokio-postgres asks for them).
    let rows = c
        .query("SELECT email, id FROM people ORDER BY id DESC", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);

    let records = wait_for(&f.gw, &admin, "event=statement&q=FROM+people+ORDER", |r| {
        r.len() >= 2
    })
    .await;
    let result_of = |needle: &str| -> Value {
        records
            .iter()
            .find(|r| s(r, "statement").contains(needle))
            .unwrap_or_else(|| panic!("no record for {needle}: {records:#?}"))["details"]["result"]
            .clone()
    };
    let simple = result_of("SELECT id, email FROM people ORDER BY id");
    assert_eq!(
        simple["columns"],
        serde_json::json!(["id", "email"]),
        "{simple}"
    );
    let kept = simple["rows"].as_array().expect("rows");
    assert_eq!(kept.len(), 2, "only replay_rows rows: {simple}");
    assert_eq!(kept[0][0], "1");
    let email = kept[0][1].as_str().unwrap_or_default();
    assert!(
        !email.is_empty() && !email.contains("ana"),
        "the email as the client saw it, masked: {simple}"
    );

    let extended = result_of("ORDER BY id DESC");
    assert_eq!(
        extended["columns"],
        serde_json::json!(["email", "id"]),
        "{extended}"
    );
    let kept = extended["rows"].as_array().expect("rows");
    assert_eq!(kept.len(), 2, "{extended}");
    let email = kept[0][0].as_str().unwrap_or_default();
    assert!(!email.is_empty() && !email.contains("cy"), "{extended}");
    // A binary integer is kept as its bytes in hex.
    assert_eq!(kept[0][1], "\\x00000003", "{extended}");

    // Nothing is kept where the environment does not ask.
    let plain = fixture().await;
    let admin = plain.gw.login(ADMIN, ADMIN_PW).await;
    plain
        .connect()
        .await
        .batch_execute("SELECT 1 AS one")
        .await
        .unwrap();
    let records = wait_for(&plain.gw, &admin, "event=statement&q=one", |r| {
        !r.is_empty()
    })
    .await;
    assert!(
        records[0]["details"]["result"].is_null(),
        "{:#?}",
        records[0]
    );
}
