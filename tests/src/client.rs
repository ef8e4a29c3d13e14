//! The `gatehouse` CLI for end-to-end tests: each [`CliHome`] is a separate user's machine (its
//! own config dir, file session store, no browser), and [`Tunnel`] is a running
//! `gatehouse connect` process.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::{run_cmd, spawn_tied, CmdOutput};
use crate::Gateway;

/// The `gatehouse` binary next to the test executable, unless `GATEHOUSE_CLIENT_BIN` names one.
pub fn client_bin() -> PathBuf {
    if let Ok(p) = std::env::var("GATEHOUSE_CLIENT_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("gatehouse");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        bin.display()
    );
    bin
}

/// One person's CLI setup: a private config dir with the session file.
pub struct CliHome {
    dir: tempfile::TempDir,
}

impl Default for CliHome {
    fn default() -> Self {
        Self::new()
    }
}

impl CliHome {
    pub fn new() -> CliHome {
        CliHome {
            dir: tempfile::Builder::new()
                .prefix("gatehouse-cli-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    pub fn session_file(&self) -> PathBuf {
        self.config_dir().join("session.json")
    }

    /// The stored session as JSON.
    pub fn session(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.session_file()).expect("session file");
        serde_json::from_str(&text).expect("session JSON")
    }

    /// Environment for every `gatehouse` run: this home's config dir, the file store (so
    /// tests never touch a developer's real keychain) and no browser.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "GATEHOUSE_CONFIG_DIR".into(),
                self.config_dir().display().to_string(),
            ),
            ("GATEHOUSE_SESSION_STORE".into(), "file".into()),
            ("GATEHOUSE_BROWSER".into(), "none".into()),
            ("NO_COLOR".into(), "1".into()),
        ]
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(client_bin());
        c.envs(self.env());
        c
    }

    /// Runs `gatehouse ARGS` to completion (60 s limit).
    pub fn run(&self, args: &[&str]) -> CmdOutput {
        run_cmd(self.command().args(args), Duration::from_secs(60))
    }

    /// Runs `gatehouse ARGS` with `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> CmdOutput {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run gatehouse");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        let out = child.wait_with_output().expect("gatehouse output");
        CmdOutput {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `gatehouse login --gateway URL --user NAME`, password on stdin; the PostgreSQL address
    /// is the one the gateway announces.
    pub fn login_user(&self, gw: &Gateway, user: &str, password: &str) -> CmdOutput {
        self.run_with_stdin(
            &["login", "--gateway", &gw.http(), "--user", user],
            &format!("{password}\n"),
        )
    }

    /// Like [`CliHome::login_user`] but panics unless it worked.
    pub fn must_login(&self, gw: &Gateway, user: &str, password: &str) {
        let out = self.login_user(gw, user, password);
        assert!(out.ok(), "login failed: {out:?}\n{}", gw.log());
    }

    /// Starts `gatehouse --json connect ENV EXTRA...` and waits for it to report its port.
    pub fn tunnel(&self, env: &str, extra: &[&str]) -> Tunnel {
        let log = self
            .dir
            .path()
            .join(format!("tunnel-{env}-{}.log", crate::random_token("")));
        let bin = client_bin();
        let mut args = vec!["--json", "connect", env];
        args.extend_from_slice(extra);
        let mut env_vars = self.env();
        env_vars.push(("GATEHOUSE_LOG".into(), "gatehouse_client=debug".into()));
        let mut child = spawn_tied(
            bin.to_str().expect("bin path"),
            &args,
            &env_vars,
            None,
            "KILL",
            Stdio::piped(),
            Stdio::from(std::fs::File::create(&log).expect("tunnel log")),
        );
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let mut r = BufReader::new(stdout);
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the child never blocks on a full pipe.
            let mut sink = Vec::new();
            let _ = r.read_to_end(&mut sink);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let info: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_else(|_| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`gatehouse connect {env}` did not start: {line:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        Tunnel {
            port: info["port"].as_u64().expect("port") as u16,
            info,
            log,
            child: Some(child),
        }
    }
}

/// A running `gatehouse connect`.
pub struct Tunnel {
    pub port: u16,
    /// What it printed (`--json`): environment, host, port, user, url, psql.
    pub info: serde_json::Value,
    log: PathBuf,
    child: Option<Child>,
}

impl Tunnel {
    /// A libpq connection string to the tunnel (no password), for `dbname` (usually the
    /// environment's name).
    pub fn conn_str(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} dbname={dbname} user=whoever sslmode=disable",
            self.port
        )
    }

    /// Connects with tokio-postgres through the tunnel.
    pub async fn connect(
        &self,
        dbname: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) =
            tokio_postgres::connect(&self.conn_str(dbname), tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// psql through the tunnel.
    pub fn psql(&self, dbname: &str, args: &[&str]) -> CmdOutput {
        run_cmd(
            Command::new("psql")
                .arg(self.conn_str(dbname))
                .args(["-X", "-v", "ON_ERROR_STOP=1"])
                .args(args),
            Duration::from_secs(60),
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
