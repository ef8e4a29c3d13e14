//! A gateway process on free ports with a config written by the test.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{free_port, run_cmd, signal, spawn_tied, wait_exit};

/// The `gatehouse-server` binary next to the test executable (`target/<profile>/`), unless
/// `GATEHOUSE_SERVER_BIN` names one.
/// This run puts every gateway on a shared PostgreSQL store (`GATEHOUSE_TEST_STORE=postgres`):
/// a test of what only a gateway's own SQLite files do says so and returns.
pub fn on_shared_store() -> bool {
    std::env::var("GATEHOUSE_TEST_STORE").as_deref() == Ok("postgres")
}

pub fn server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("GATEHOUSE_SERVER_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("gatehouse-server");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        bin.display()
    );
    bin
}

struct Account {
    name: String,
    token: String,
    groups: Vec<String>,
    /// Extra `key = value` lines for this service account's table.
    lines: Vec<String>,
}

struct Env {
    name: String,
    tier: String,
    upstream: String,
    password: Option<String>,
    /// Extra `key = value` lines for this environment's table.
    lines: Vec<String>,
}

/// Describes a gateway to start.
#[derive(Default)]
pub struct GatewayBuilder {
    envs: Vec<Env>,
    service_accounts: Vec<Account>,
    users: Vec<(String, String, Vec<String>)>,
    grants: Vec<(Vec<String>, Vec<String>)>,
    server_extra: String,
    listen_host: Option<String>,
    /// Raw TOML appended after everything else (e.g. an `[oidc]` table).
    toml_extra: String,
    /// Extra environment variables for the gateway process.
    env_extra: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
    /// `server.public_url` instead of the HTTP listener's own `http://` address.
    public_url: Option<String>,
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl GatewayBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// An environment whose upstream is `url`; when `password` is given it is passed through an
    /// environment variable (`upstream_password_env`), as operators do.
    pub fn environment(
        mut self,
        name: &str,
        tier: &str,
        url: &str,
        password: Option<&str>,
    ) -> Self {
        self.envs.push(Env {
            name: name.into(),
            tier: tier.into(),
            upstream: url.into(),
            password: password.map(Into::into),
            lines: Vec::new(),
        });
        self
    }

    pub fn service_account(mut self, name: &str, token: &str, groups: &[&str]) -> Self {
        self.service_accounts.push(Account {
            name: name.into(),
            token: token.into(),
            groups: strs(groups),
            lines: Vec::new(),
        });
        self
    }

    /// An extra `key = value` line for the service account named `name` (added before it).
    pub fn service_account_setting(mut self, name: &str, line: &str) -> Self {
        if let Some(a) = self.service_accounts.iter_mut().find(|a| a.name == name) {
            a.lines.push(line.to_string());
        }
        self
    }

    /// `server.public_url` (e.g. the https address of a TLS front); by default the HTTP
    /// listener's own `http://127.0.0.1:PORT`.
    pub fn public_url(mut self, url: &str) -> Self {
        self.public_url = Some(url.into());
        self
    }

    pub fn user(mut self, name: &str, password: &str, groups: &[&str]) -> Self {
        self.users
            .push((name.into(), password.into(), strs(groups)));
        self
    }

    pub fn grant(mut self, groups: &[&str], environments: &[&str]) -> Self {
        self.grants.push((strs(groups), strs(environments)));
        self
    }

    /// Extra `key = value` lines for the `[server]` table.
    pub fn server(mut self, line: &str) -> Self {
        self.server_extra.push_str(line);
        self.server_extra.push('\n');
        self
    }

    /// An extra `key = value` line for the environment named `name` (added before it).
    pub fn environment_setting(mut self, name: &str, line: &str) -> Self {
        if let Some(e) = self.envs.iter_mut().find(|e| e.name == name) {
            e.lines.push(line.to_string());
        }
        self
    }

    /// Raw TOML appended to the config, after every other section.
    pub fn toml(mut self, text: &str) -> Self {
        self.toml_extra.push_str(text);
        self.toml_extra.push('\n');
        self
    }

    /// An environment variable for the gateway process (e.g. a secret named by `*_env`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env_extra.push((key.into(), value.into()));
        self
    }

    /// Keep the gateway's state in the shared PostgreSQL store at `url` (`[store]`, the password
    /// passed through `password_env`), as replicas behind a load balancer do.
    pub fn shared_store(self, url: &str, password: &str) -> Self {
        self.toml(&format!(
            "[store]\nurl = {url:?}\npassword_env = \"GH_TEST_STORE_PW\""
        ))
        .env("GH_TEST_STORE_PW", password)
    }

    /// Keep the gateway's data (store, audit trail, keys) in `dir` instead of a fresh temp dir.
    pub fn data_dir(mut self, dir: &std::path::Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    /// Listen for PostgreSQL on this host instead of 127.0.0.1.
    pub fn listen_host(mut self, host: &str) -> Self {
        self.listen_host = Some(host.into());
        self
    }

    pub fn config_text(&self, pg_port: u16, http_port: u16, data_dir: &str) -> String {
        let host = self.listen_host.as_deref().unwrap_or("127.0.0.1");
        let mut t = String::new();
        let _ = writeln!(t, "[server]\npostgres_listen = \"{host}:{pg_port}\"\nhttp_listen = \"127.0.0.1:{http_port}\"");
        if self.listen_host.is_some() {
            // The public URL's host is 127.0.0.1: tell clients where PostgreSQL really is.
            let _ = writeln!(t, "postgres_public_address = \"{host}:{pg_port}\"");
        }
        let public_url = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{http_port}"));
        let _ = writeln!(
            t,
            "data_dir = {data_dir:?}\npublic_url = {public_url:?}\n{}",
            self.server_extra
        );
        for (i, e) in self.envs.iter().enumerate() {
            let _ = writeln!(
                t,
                "[[environments]]\nname = {:?}\ntier = {:?}\nupstream = {:?}",
                e.name, e.tier, e.upstream
            );
            if e.password.is_some() {
                let _ = writeln!(t, "upstream_password_env = \"GH_TEST_PW_{i}\"");
            }
            for l in &e.lines {
                let _ = writeln!(t, "{l}");
            }
        }
        for a in &self.service_accounts {
            let _ = writeln!(
                t,
                "[[service_accounts]]\nname = {:?}\ntoken_sha256 = {:?}\ngroups = {}",
                a.name,
                crate::sha256_hex(&a.token),
                toml_list(&a.groups)
            );
            for l in &a.lines {
                let _ = writeln!(t, "{l}");
            }
        }
        for (name, password, groups) in &self.users {
            let _ = writeln!(
                t,
                "[[users]]\nname = {name:?}\npassword_argon2 = {:?}\ngroups = {}",
                hash_password(password),
                toml_list(groups)
            );
        }
        for (groups, envs) in &self.grants {
            let _ = writeln!(
                t,
                "[[grants]]\ngroups = {}\nenvironments = {}",
                toml_list(groups),
                toml_list(envs)
            );
        }
        t.push_str(&self.toml_extra);
        t
    }

    /// Writes the config and starts the gateway; returns once both listeners answer.
    pub async fn start(self) -> Gateway {
        tokio::task::spawn_blocking(move || self.start_blocking())
            .await
            .expect("gateway start")
    }

    fn start_blocking(mut self) -> Gateway {
        // `GATEHOUSE_TEST_STORE=postgres` runs any test's gateway on a shared PostgreSQL store
        // of its own (a throwaway cluster that lives as long as the gateway) instead of SQLite.
        let store_cluster =
            (on_shared_store() && !self.toml_extra.contains("[store]")).then(|| {
                let c = crate::Cluster::start_blocking();
                let url = format!(
                    "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable",
                    c.port
                );
                let password = c.password.clone();
                self = std::mem::take(&mut self).shared_store(&url, &password);
                c
            });
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-gw-")
            .tempdir()
            .expect("tempdir");
        let (pg_port, http_port) = (free_port(), free_port());
        let data = self
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let config = dir.path().join("gatehouse.toml");
        std::fs::write(
            &config,
            self.config_text(pg_port, http_port, data.to_str().unwrap()),
        )
        .expect("write config");
        let env: Vec<(String, String)> = self
            .envs
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.password.clone().map(|p| (format!("GH_TEST_PW_{i}"), p)))
            .chain(self.env_extra.iter().cloned())
            .collect();
        let mut gw = Gateway {
            pg_port,
            http_port,
            pg_host: self
                .listen_host
                .clone()
                .unwrap_or_else(|| "127.0.0.1".into()),
            config,
            data,
            env,
            dir,
            child: None,
            _store_cluster: store_cluster,
        };
        gw.spawn();
        gw
    }
}

fn hash_password(password: &str) -> String {
    let mut child = Command::new(server_bin())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run hash-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(password.as_bytes())
        .expect("write password");
    let out = child.wait_with_output().expect("hash-password output");
    assert!(out.status.success(), "hash-password failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A running gateway process.
pub struct Gateway {
    pub pg_port: u16,
    pub http_port: u16,
    pub pg_host: String,
    pub config: PathBuf,
    data: PathBuf,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The shared store's cluster under `GATEHOUSE_TEST_STORE=postgres`.
    _store_cluster: Option<crate::Cluster>,
}

impl Gateway {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let bin = server_bin();
        let child = spawn_tied(
            bin.to_str().unwrap(),
            &["serve", "--config", self.config.to_str().unwrap()],
            &self.env,
            None,
            "KILL",
            Stdio::null(),
            Stdio::from(log),
        );
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("gateway exited ({status}):\n{}", self.log());
                }
            }
            let http = std::net::TcpStream::connect(("127.0.0.1", self.http_port)).is_ok();
            let pg = std::net::TcpStream::connect((self.pg_host.as_str(), self.pg_port)).is_ok();
            if http && pg {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "gateway did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("gateway.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    /// `gatehouse-server audit verify` on this gateway's config.
    pub fn verify_audit(&self) -> crate::CmdOutput {
        run_cmd(
            Command::new(server_bin())
                .args(["audit", "verify", "--config"])
                .arg(&self.config)
                .envs(self.env.iter().map(|(k, v)| (k, v))),
            Duration::from_secs(60),
        )
    }

    /// Logs in a local user through the API and returns the session token.
    pub async fn login(&self, user: &str, password: &str) -> String {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", self.http()))
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
            .await
            .expect("login request");
        assert!(r.status().is_success(), "login as {user}: {}", r.status());
        let body: serde_json::Value = r.json().await.expect("login body");
        body["token"].as_str().expect("token").to_string()
    }

    /// `GET /api/v1/audit/export?{query}`: the body, as it streams out (JSON Lines or CSV).
    pub async fn audit_export(&self, token: &str, query: &str) -> String {
        reqwest::Client::new()
            .get(format!("{}/api/v1/audit/export?{query}", self.http()))
            .bearer_auth(token)
            .send()
            .await
            .expect("audit export request")
            .text()
            .await
            .expect("audit export body")
    }

    /// Audit records matching the query string (e.g. `identity=agent`), oldest first, all pages.
    pub async fn audit(&self, token: &str, query: &str) -> Vec<serde_json::Value> {
        let http = reqwest::Client::new();
        let mut out = Vec::new();
        let mut cursor: Option<i64> = None;
        loop {
            let mut url = format!("{}/api/v1/audit?limit=1000&{query}", self.http());
            if let Some(c) = cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let r = http
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("audit request");
            assert!(r.status().is_success(), "audit search: {}", r.status());
            let page: serde_json::Value = r.json().await.expect("audit page");
            out.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_i64() {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        out.reverse();
        out
    }

    /// Base URL of the HTTP listener.
    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// A libpq-style connection string for `env` as `user` with `password`.
    pub fn conn_str(&self, env: &str, user: &str, password: &str) -> String {
        format!(
            "host={} port={} dbname={env} user={user} password={password}",
            self.pg_host, self.pg_port
        )
    }

    /// Connects with tokio-postgres (no TLS) and drives the connection in the background.
    pub async fn connect(
        &self,
        env: &str,
        user: &str,
        password: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) =
            tokio_postgres::connect(&self.conn_str(env, user, password), tokio_postgres::NoTls)
                .await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// Connects like [`Gateway::connect`] and hands back the task driving the connection: its
    /// result says how the gateway ended it (see [`crate::ended_with`]). Panics with the
    /// gateway's log if the connection is refused.
    pub async fn connect_watched(
        &self,
        env: &str,
        user: &str,
        password: &str,
    ) -> (
        tokio_postgres::Client,
        tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    ) {
        let (client, conn) =
            tokio_postgres::connect(&self.conn_str(env, user, password), tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("connect to {env} as {user}: {e}\n{}", self.log()));
        (client, tokio::spawn(conn))
    }

    /// The gateway's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops with SIGTERM and starts again with the same config and data.
    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "TERM");
            if !wait_exit(&mut c, Duration::from_secs(10)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        self.spawn();
    }

    /// `psql` against this gateway; returns what it printed.
    pub fn psql(&self, env: &str, user: &str, password: &str, args: &[&str]) -> crate::CmdOutput {
        run_cmd(
            Command::new("psql")
                .arg(self.conn_str(env, user, password))
                .args(["-X", "-v", "ON_ERROR_STOP=1"])
                .args(args),
            Duration::from_secs(60),
        )
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}
