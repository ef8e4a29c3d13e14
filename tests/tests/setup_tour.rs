//! The first ten minutes, as a new user has them: a fresh clone of this repository, its
//! `scripts/setup.sh` (on non-default ports, with a PostgreSQL cluster of its own), then the tour
//! the script prints, line by line as a person pastes it, each outcome checked by its effect:
//! personal data masked, the agent's production DELETE held and then run once approved with
//! `gatehouse approve`, DROP TABLE refused with its rule named, all of it in `gatehouse audit`
//! under the agent's identity; then the printed stop line stops the demo.
//!
//! The clone holds what is committed (a change to `scripts/` is tested once it is committed).
//! It reuses what this run already has instead of building and installing again:
//! `GATEHOUSE_PREBUILT_BIN_DIR` points setup.sh at the binaries next to this test (so CI
//! compiles once), and the clone's `node_modules` is a link to this checkout's, which
//! `scripts/install-deps.sh test` has filled. Needs root, as setup.sh does.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gatehouse_tests::{free_port, run_cmd, server_bin, spawn_tied, CmdOutput, PG_BIN};

const CLUSTER_PREFIX: &str = "ghtour-";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// True while the process runs (a zombie waiting for its parent to reap it has stopped).
fn pid_alive(pid: &str) -> bool {
    std::fs::read_to_string(Path::new("/proc").join(pid).join("stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_string())
        })
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

/// Names of the Debian PostgreSQL 15 clusters.
fn clusters() -> Vec<String> {
    let out = Command::new("pg_lsclusters")
        .arg("-h")
        .output()
        .expect("pg_lsclusters");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&"15")).then(|| f.get(1).map(|s| s.to_string()))?
        })
        .collect()
}

fn drop_cluster(name: &str) {
    let _ = Command::new("pg_dropcluster")
        .args(["--stop", "15", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// What setup.sh left running: the demo gateway and the cluster. Stopped however the test ends.
struct Demo {
    clone: PathBuf,
    cluster: String,
}

impl Demo {
    fn pidfile(&self) -> PathBuf {
        self.clone.join("demo/data/gateway.pid")
    }

    fn gateway_pid(&self) -> Option<String> {
        std::fs::read_to_string(self.pidfile())
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// Superuser SQL on one of the demo's databases, straight to PostgreSQL (not through the
    /// gateway): what is really there.
    fn sql(&self, db: &str, port: &str, sql: &str) -> String {
        let out = run_cmd(
            Command::new("setpriv")
                .args([
                    "--reuid=postgres",
                    "--regid=postgres",
                    "--init-groups",
                    "--",
                ])
                .arg(format!("{PG_BIN}/psql"))
                .args(["-X", "-At", "-p", port, "-d", db, "-c", sql])
                .current_dir("/"),
            Duration::from_secs(30),
        );
        assert!(out.ok(), "{sql} on {db}: {out:?}");
        out.stdout.trim().to_string()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(pid) = self.gateway_pid() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
        drop_cluster(&self.cluster);
    }
}

/// The tour as setup.sh printed it: shell assignments every command needs, and the commands
/// in order, each with the step number it belongs to (0 before the first step).
struct Tour {
    assignments: Vec<String>,
    commands: Vec<(u32, String)>,
}

impl Tour {
    fn parse(stdout: &str) -> Tour {
        let mut lines = stdout.lines().skip_while(|l| !l.starts_with("The tour:"));
        assert!(
            lines.next().is_some(),
            "setup.sh printed no tour:\n{stdout}"
        );
        let mut tour = Tour {
            assignments: vec![],
            commands: vec![],
        };
        let mut step = 0;
        for line in lines.skip_while(|l| l.trim().is_empty()) {
            if !line.is_empty() && !line.starts_with("  ") {
                break;
            }
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            if let Some(comment) = text.strip_prefix('#') {
                if let Some((n, _)) = comment.trim().split_once(". ") {
                    if let Ok(n) = n.parse() {
                        step = n;
                    }
                }
                continue;
            }
            let assignment = text.starts_with("export ")
                || text.split_once('=').is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                });
            if step == 0 && assignment {
                tour.assignments.push(text.to_string());
            } else {
                tour.commands.push((step, text.to_string()));
            }
        }
        tour
    }

    fn step(&self, n: u32) -> Vec<&str> {
        self.commands
            .iter()
            .filter(|(s, _)| *s == n)
            .map(|(_, c)| c.as_str())
            .collect()
    }

    /// `bash -c` with the tour's assignments, then `command`, from `cwd`, as a person's shell
    /// whose CLI keeps its session in `cli_home`.
    fn shell(&self, command: &str, cwd: &Path, cli_home: &Path) -> Command {
        let script = format!("set -e\n{}\n{command}\n", self.assignments.join("\n"));
        let mut c = Command::new("bash");
        c.arg("-c")
            .arg(script)
            .current_dir(cwd)
            .env("GATEHOUSE_CONFIG_DIR", cli_home)
            .env("GATEHOUSE_SESSION_STORE", "file")
            .env("GATEHOUSE_BROWSER", "none")
            .env("NO_COLOR", "1");
        c
    }

    fn run(&self, command: &str, cwd: &Path, cli_home: &Path) -> CmdOutput {
        run_cmd(
            &mut self.shell(command, cwd, cli_home),
            Duration::from_secs(60),
        )
    }
}

fn must(out: CmdOutput, what: &str) -> CmdOutput {
    assert!(out.ok(), "{what} failed: {out:?}");
    out
}

#[test]
fn a_fresh_clone_shows_every_promise_with_setup_and_its_tour() {
    assert!(
        is_root(),
        "scripts/setup.sh installs Debian packages and runs the system's PostgreSQL: run this test as root"
    );
    // Clusters left by runs that were killed before they could drop theirs.
    for name in clusters() {
        if let Some(pid) = name.strip_prefix(CLUSTER_PREFIX) {
            if !pid_alive(pid) {
                drop_cluster(&name);
            }
        }
    }

    let repo = repo_root();
    let dirty = run_cmd(
        Command::new("git")
            .args([
                "status",
                "--porcelain",
                "--",
                "scripts",
                "package.json",
                "package-lock.json",
            ])
            .current_dir(&repo),
        Duration::from_secs(30),
    );
    if !dirty.stdout.trim().is_empty() {
        eprintln!(
            "note: uncommitted changes are not in the clone this test runs:\n{}",
            dirty.stdout
        );
    }
    let tmp = tempfile::Builder::new()
        .prefix("gatehouse-setup-")
        .tempdir()
        .expect("tempdir");
    let clone = tmp.path().join("gatehouse");
    must(
        run_cmd(
            Command::new("git")
                .args(["clone", "--quiet"])
                .arg(&repo)
                .arg(&clone),
            Duration::from_secs(120),
        ),
        "git clone",
    );
    std::os::unix::fs::symlink(repo.join("node_modules"), clone.join("node_modules"))
        .expect("link node_modules");

    let demo = Demo {
        clone: clone.clone(),
        cluster: format!("{CLUSTER_PREFIX}{}", std::process::id()),
    };
    let (pg_port, http_port, cluster_port) = (free_port(), free_port(), free_port());
    let bin_dir = server_bin().parent().expect("bin dir").to_path_buf();

    let started = Instant::now();
    let setup = run_cmd(
        Command::new("bash")
            .arg(clone.join("scripts/setup.sh"))
            .current_dir(&clone)
            .env("GATEHOUSE_DEMO_PORT", pg_port.to_string())
            .env("GATEHOUSE_DEMO_HTTP_PORT", http_port.to_string())
            .env("GATEHOUSE_DEMO_CLUSTER", &demo.cluster)
            .env("GATEHOUSE_DEMO_PG_PORT", cluster_port.to_string())
            .env("GATEHOUSE_PREBUILT_BIN_DIR", &bin_dir),
        Duration::from_secs(600),
    );
    let log = std::fs::read_to_string(clone.join("demo/data/gateway.log")).unwrap_or_default();
    assert!(
        setup.ok(),
        "setup.sh failed: {setup:?}\ngateway log:\n{log}"
    );
    eprintln!("setup.sh took {:.1} s", started.elapsed().as_secs_f64());
    let printed = &setup.stdout;
    assert!(
        printed.contains(&format!("port={pg_port}"))
            && printed.contains(&format!("http://127.0.0.1:{http_port}")),
        "the tour should use the ports asked for:\n{printed}"
    );
    let db_port = cluster_port.to_string();
    let refunded = |db: &str| -> i64 {
        demo.sql(
            db,
            &db_port,
            "SELECT count(*) FROM orders WHERE status = 'refunded'",
        )
        .parse()
        .expect("a count")
    };
    let refunded_before = refunded("demo_prod");
    assert!(refunded_before > 0, "the seed has refunded orders");

    let tour = Tour::parse(printed);
    let cli_home = tmp.path().join("cli");
    let shell_cwd = tmp.path();

    // Before step 1: log in as admin, as printed.
    let setup_lines = tour.step(0);
    assert!(
        setup_lines.iter().any(|l| l.starts_with("gatehouse login")),
        "the tour logs in as admin first: {setup_lines:?}"
    );
    for line in setup_lines {
        must(tour.run(line, shell_cwd, &cli_home), line);
    }

    // 1. Masking: the rows come, the personal data in them does not.
    let step1 = tour.step(1);
    assert_eq!(step1.len(), 1, "{step1:?}");
    let out = must(tour.run(step1[0], shell_cwd, &cli_home), step1[0]);
    assert!(out.stdout.contains("(3 rows)"), "{out:?}");
    assert!(out.stdout.contains("Lisbon"), "safe columns pass: {out:?}");
    for personal in ["Ana Ribeiro", "ana.ribeiro@example.com", "+351 912 345 678"] {
        assert!(!out.stdout.contains(personal), "{personal} leaked: {out:?}");
    }
    assert!(
        out.stdout.contains("@example.com"),
        "masked, not removed: {out:?}"
    );

    // 2. The agent's DELETE in production is held; its NOTICE says how to approve it.
    let step2 = tour.step(2);
    assert_eq!(step2.len(), 1, "{step2:?}");
    let held_line = step2[0]
        .strip_suffix('&')
        .expect("step 2 runs in the background")
        .trim();
    let script = format!("{}\n{held_line}\n", tour.assignments.join("\n"));
    let mut held = spawn_tied(
        "bash",
        &["-c", &script],
        &[],
        None,
        "KILL",
        Stdio::piped(),
        Stdio::piped(),
    );
    let stderr = held.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let notice = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a NOTICE while the DELETE is held");
        if line.contains("NOTICE") {
            break line;
        }
    };
    assert!(
        notice.contains("NOTICE") && notice.contains("prod-agent-review-writes"),
        "{notice}"
    );
    let approve_cmd = notice
        .split('`')
        .find(|s| s.starts_with("gatehouse approve apr_"))
        .unwrap_or_else(|| panic!("the NOTICE names the command: {notice}"))
        .to_string();
    let approval_id = approve_cmd.rsplit(' ').next().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        refunded("demo_prod"),
        refunded_before,
        "nothing is deleted while the statement is held"
    );
    assert!(
        held.try_wait().expect("try_wait").is_none(),
        "the client is held"
    );

    // 3. Approve it as printed (with the id from the NOTICE): the held DELETE runs.
    let step3 = tour.step(3);
    assert_eq!(step3, vec!["gatehouse approve apr_..."], "{step3:?}");
    let out = must(
        tour.run(
            &step3[0].replace("apr_...", &approval_id),
            shell_cwd,
            &cli_home,
        ),
        &approve_cmd,
    );
    assert!(out.stdout.contains("approved"), "{out:?}");
    let mut stdout = held.stdout.take().expect("stdout");
    let mut held_out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut held_out).expect("held psql output");
    let status = held.wait().expect("held psql ends");
    assert!(status.success(), "the held DELETE ran: {held_out}");
    assert_eq!(held_out.trim(), format!("DELETE {refunded_before}"));
    assert_eq!(refunded("demo_prod"), 0, "deleted in production");
    assert!(
        refunded("demo") > 0,
        "development's copy is another database"
    );

    // 4. DROP TABLE is refused, naming the rule; the table stays.
    let step4 = tour.step(4);
    assert_eq!(step4.len(), 1, "{step4:?}");
    let out = tour.run(step4[0], shell_cwd, &cli_home);
    assert!(!out.ok(), "DROP must fail: {out:?}");
    assert!(
        out.stderr.contains("prod-no-drop") && out.stderr.contains("denied"),
        "{out:?}"
    );
    assert_eq!(
        demo.sql(
            "demo_prod",
            &db_port,
            "SELECT to_regclass('customers') IS NOT NULL"
        ),
        "t"
    );

    // 5. The audit trail shows all of it, under the agent's identity.
    let step5 = tour.step(5);
    assert_eq!(step5.len(), 1, "{step5:?}");
    let out = must(tour.run(step5[0], shell_cwd, &cli_home), step5[0]);
    let rows: Vec<&str> = out.stdout.lines().collect();
    let has = |parts: &[&str]| rows.iter().any(|r| parts.iter().all(|p| r.contains(p)));
    for expected in [
        &["statement", "demo-agent", "allow", "SELECT full_name"][..],
        &["approval.requested", "demo-agent", &approval_id],
        &["approval.approved", "admin", &approval_id],
        &[
            "statement",
            "demo-agent",
            "review",
            "prod-agent-review-writes",
            &approval_id,
            "DELETE FROM orders",
        ],
        &[
            "statement",
            "demo-agent",
            "deny",
            "prod-no-drop",
            "DROP TABLE customers",
        ],
    ] {
        assert!(
            has(expected),
            "no audit row with {expected:?}:\n{}",
            out.stdout
        );
    }

    // The printed stop line stops the demo gateway.
    let stop = printed
        .lines()
        .find_map(|l| l.strip_prefix("Stop the gateway:"))
        .expect("a stop line")
        .trim()
        .to_string();
    let pid = demo.gateway_pid().expect("gateway.pid");
    assert!(pid_alive(&pid));
    must(tour.run(&stop, &clone, &cli_home), &stop);
    let deadline = Instant::now() + Duration::from_secs(15);
    while pid_alive(&pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!pid_alive(&pid), "the demo gateway stopped");
}
