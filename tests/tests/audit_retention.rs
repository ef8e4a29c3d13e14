//! The trail's copies and its retention: a JSON Lines file and an HMAC-signed HTTP collector get
//! every record; archiving moves old records into verified files without breaking `audit verify`,
//! and refuses to touch a trail that does not verify.

use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_tests::http_sink;
use gatehouse_tests::{run_cmd, server_bin, Fixture};

fn verify(config: &std::path::Path) -> gatehouse_tests::CmdOutput {
    run_cmd(
        Command::new(server_bin())
            .args(["audit", "verify", "--config"])
            .arg(config),
        Duration::from_secs(60),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_copy_the_trail_and_archiving_keeps_it_verifiable() {
    let (port, received) = http_sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let toml = format!(
        "[audit]\nfile = {:?}\nwebhook_url = \"http://127.0.0.1:{port}/ingest\"\nwebhook_secret_env = \"GH_AUDIT_SECRET\"\n",
        file.display().to_string()
    );
    let f = Fixture::start_with(move |b| {
        b.toml(&toml)
            .env("GH_AUDIT_SECRET", "s3cret")
            .user("root", "pw", &["admins"])
    })
    .await;
    for i in 0..5 {
        f.connect()
            .await
            .batch_execute(&format!("SELECT {i}"))
            .await
            .unwrap();
    }
    let admin = f.gw.login("root", "pw").await;
    let all = f.gw.audit(&admin, "").await;
    let wanted = all.len();

    // Both sinks catch up with every committed record, in order.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let lines = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .count();
        let posted: usize = received
            .lock()
            .unwrap()
            .iter()
            .map(|p| {
                p.body
                    .split(|c| *c == b'\n')
                    .filter(|l| !l.is_empty())
                    .count()
            })
            .sum();
        if lines >= wanted && posted >= wanted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sinks did not catch up: file {lines}, webhook {posted}, trail {wanted}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = std::fs::read_to_string(&file).unwrap();
    let ids: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(&ids[..wanted], &(1..=wanted as i64).collect::<Vec<_>>()[..]);
    for p in received.lock().unwrap().iter() {
        assert_eq!(p.signature, http_sink::signature(b"s3cret", &p.body));
    }

    // Archive everything so far; the trail still verifies from record 1, through the archive.
    let before = chrono_now();
    let out = run_cmd(
        Command::new(server_bin())
            .args(["audit", "archive", "--config"])
            .arg(&f.gw.config)
            .args(["--before", &before]),
        Duration::from_secs(60),
    );
    assert!(
        out.ok() && out.stdout.contains("archived records 1..="),
        "{out:?}"
    );
    let archived = std::fs::read_dir(f.gw.data_dir().join("archive"))
        .unwrap()
        .count();
    assert_eq!(archived, 1);
    let out = verify(&f.gw.config);
    assert!(out.ok(), "{out:?}");
    // New records continue the same chain.
    f.connect()
        .await
        .batch_execute("SELECT 'after'")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = verify(&f.gw.config);
    assert!(out.ok(), "{out:?}");
    let live = f.gw.audit(&admin, "").await;
    assert!(
        live.iter()
            .all(|r| r["id"].as_i64().unwrap() > wanted as i64),
        "archived records left the live trail"
    );

    // Altering the archive is caught; a trail that does not verify is never archived.
    let archive = std::fs::read_dir(f.gw.data_dir().join("archive"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let original = std::fs::read(&archive).unwrap();
    std::fs::write(
        &archive,
        String::from_utf8_lossy(&original)
            .replacen("SELECT 1", "SELECT 7", 1)
            .as_bytes(),
    )
    .unwrap();
    let out = verify(&f.gw.config);
    assert_eq!(out.status, 1);
    assert!(out.stdout.contains("was altered"), "{out:?}");
    let out = run_cmd(
        Command::new(server_bin())
            .args(["audit", "archive", "--config"])
            .arg(&f.gw.config)
            .args(["--before", &chrono_now()]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("does not verify, so nothing was archived"),
        "{out:?}"
    );
    std::fs::write(&archive, original).unwrap();
    assert!(verify(&f.gw.config).ok());
}

fn chrono_now() -> String {
    let out = run_cmd(
        Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%S.999999Z"]),
        Duration::from_secs(5),
    );
    out.stdout.trim().to_string()
}
