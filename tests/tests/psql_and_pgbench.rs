//! The command-line tools people use every day, through the gateway: psql (catalog describe,
//! also of a production environment without holds, transactions, `\copy` both ways) and
//! pgbench in all three query modes.

use std::process::Command;
use std::time::Duration;

use gatehouse_tests::{run_cmd, Fixture, AGENT, ENV};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describe_transactions_and_copy() {
    let f = Fixture::start().await;
    let out = f.psql(&[
        "-c",
        "CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, email text)",
    ]);
    assert!(out.ok(), "{out:?}");

    // \d runs catalog queries through the extended... and simple protocol.
    let out = f.psql(&["-c", "\\d people"]);
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stdout.contains("Table \"public.people\"") && out.stdout.contains("email"),
        "{}",
        out.stdout
    );
    let out = f.psql(&["-c", "\\dt"]);
    assert!(out.stdout.contains("people"), "{out:?}");

    // A transaction block with a rollback and a commit, in one session.
    let script = "BEGIN;\nINSERT INTO people (name) VALUES ('rolled back');\nROLLBACK;\nBEGIN;\nINSERT INTO people (name, email) VALUES ('Ada', 'ada@example.com');\nCOMMIT;\nSELECT count(*) FROM people;\n";
    let out = f.psql(&["-At", "-c", script]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.stdout.trim().lines().last(), Some("1"));

    // An error inside a transaction aborts it, as PostgreSQL does, until ROLLBACK.
    let out = f.psql(&[
        "-v",
        "ON_ERROR_STOP=0",
        "-At",
        "-c",
        "BEGIN; SELECT 1/0;",
        "-c",
        "SELECT 2",
        "-c",
        "ROLLBACK",
        "-c",
        "SELECT count(*) FROM people",
    ]);
    assert!(out.stderr.contains("division by zero"), "{out:?}");
    assert!(
        out.stderr.contains("current transaction is aborted"),
        "{out:?}"
    );
    assert_eq!(out.stdout.trim().lines().last(), Some("1"), "{out:?}");

    // Notices and parameter changes are relayed as they happen.
    let out = f.psql(&[
        "-c",
        "DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; END $$",
        "-c",
        "SET TimeZone = 'Asia/Tokyo'",
        "-c",
        "SHOW TimeZone",
    ]);
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stderr.contains("NOTICE:  hello from plpgsql"),
        "{out:?}"
    );
    assert!(out.stdout.contains("Asia/Tokyo"), "{out:?}");

    // \copy from a local file and back out.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let mut csv = String::new();
    for i in 0..1000 {
        csv.push_str(&format!("Person {i},p{i}@example.com\n"));
    }
    std::fs::write(&input, csv).unwrap();
    let out = f.psql(&[
        "-c",
        &format!(
            "\\copy people (name, email) FROM '{}' WITH (FORMAT csv)",
            input.display()
        ),
    ]);
    assert!(out.ok(), "{out:?}");
    assert!(out.stdout.contains("COPY 1000"), "{out:?}");
    let output = dir.path().join("out.csv");
    let out = f.psql(&[
        "-c",
        &format!(
            "\\copy (SELECT name, email FROM people ORDER BY id) TO '{}' WITH (FORMAT csv)",
            output.display()
        ),
    ]);
    assert!(out.ok(), "{out:?}");
    let back = std::fs::read_to_string(&output).unwrap();
    assert_eq!(back.lines().count(), 1001);
    // Emails are personal data: the gateway masks them on the way out (see tests/masking.rs).
    assert_eq!(back.lines().nth(1), Some("Person 0,p***@example.com"));
}

/// psql's describe commands on a production environment are never held for review nor
/// refused: their catalog queries are reads the classifier understands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describes_production_without_holds() {
    let f = Fixture::production_without_long_holds().await;
    f.cluster
        .exec(
            "appdb",
            "SET ROLE app_owner; CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, email text);
             CREATE VIEW people_names AS SELECT name FROM people;
             CREATE FUNCTION people_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM people'",
        )
        .await;
    for command in [
        "\\l",
        "\\dn",
        "\\dt",
        "\\d people",
        "\\d+ people",
        "\\dv",
        "\\di",
        "\\ds",
        "\\df",
        "\\du",
        "\\dx",
        "\\dp people",
        "\\dT",
        "\\sf people_count",
        "\\sv people_names",
    ] {
        let out = f.psql(&["-X", "-c", command]);
        assert!(out.ok(), "{command}: {out:?}\n{}", f.gw.log());
    }
    let items = f.agent_statements(None).await;
    assert!(items.len() >= 15, "{items:?}");
    for r in &items {
        assert_eq!(r["decision"], "allow", "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_in_every_query_mode() {
    let f = Fixture::start().await;
    let conn = f.gw.conn_str(ENV, AGENT, &f.token);
    let out = run_cmd(
        Command::new("pgbench")
            .args(["-i", "-s", "1", "-q"])
            .arg(&conn),
        Duration::from_secs(120),
    );
    assert!(out.ok(), "pgbench -i: {out:?}");
    for mode in ["simple", "extended", "prepared"] {
        for args in [vec!["-S"], vec![]] {
            let out = run_cmd(
                Command::new("pgbench")
                    .args(["-M", mode, "-c", "4", "-j", "2", "-t", "200", "-n"])
                    .args(&args)
                    .arg(&conn),
                Duration::from_secs(120),
            );
            assert!(out.ok(), "pgbench -M {mode} {args:?}: {out:?}");
            assert!(
                out.stdout
                    .contains("number of transactions actually processed: 800/800"),
                "-M {mode} {args:?}: {}",
                out.stdout
            );
            assert!(
                !out.stdout.contains("number of failed transactions: 1"),
                "{}",
                out.stdout
            );
        }
    }
    // The session workers that relayed them run as SCHED_BATCH (3), at the process's own nice
    // value; the other threads keep the default policy.
    let pid = f.gw.pid().expect("the gateway runs");
    let threads = thread_policies(pid);
    let main = threads
        .iter()
        .find(|t| t.0 == pid)
        .expect("main thread")
        .clone();
    assert_eq!(main.2, 0, "{threads:?}");
    let workers: Vec<_> = threads
        .iter()
        .filter(|t| t.1.starts_with("gatehouse-worke"))
        .collect();
    assert!(!workers.is_empty(), "{threads:?}");
    for w in &workers {
        assert_eq!((w.2, w.3), (3, main.3), "{threads:?}");
    }
    // Every transaction of the read-write runs reached the upstream.
    let c = f.cluster.client("appdb").await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM pgbench_history", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3 * 800);
}

/// (thread id, name, scheduling policy, nice) of each thread of `pid`, from `/proc`.
fn thread_policies(pid: u32) -> Vec<(u32, String, i64, i64)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (open, close) = (stat.find('(').unwrap(), stat.rfind(')').unwrap());
        // Fields after the name are numbered from 3: nice is 19, policy 41.
        let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
        out.push((
            stat[..open].trim().parse().unwrap(),
            stat[open + 1..close].to_string(),
            rest[41 - 3].parse().unwrap(),
            rest[19 - 3].parse().unwrap(),
        ));
    }
    out
}
