//! A throwaway PostgreSQL 15 cluster: initdb as the `postgres` OS user, SCRAM-only pg_hba, a free
//! port on 127.0.0.1. It can be stopped and started again on the same port and data.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{free_port, run_cmd, signal, spawn_tied, wait_exit};
use crate::PG_BIN;

pub struct Cluster {
    pub port: u16,
    /// Password of the `postgres` superuser (SCRAM).
    pub password: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn postgres_uid() -> u32 {
    let out = run_cmd(
        Command::new("id").args(["-u", "postgres"]),
        Duration::from_secs(5),
    );
    out.stdout
        .trim()
        .parse()
        .expect("the postgres OS user exists (apt-get install postgresql-15)")
}

impl Cluster {
    /// initdb + start; blocks until the server accepts connections.
    pub async fn start() -> Cluster {
        tokio::task::spawn_blocking(Self::start_blocking)
            .await
            .expect("cluster start")
    }

    /// [`Cluster::start`] from a thread that may block.
    pub fn start_blocking() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-pg-")
            .tempdir()
            .expect("tempdir");
        let uid = postgres_uid();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(uid))
            .expect("chown tempdir to postgres");
        let password = crate::random_token("pw");
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, &password).expect("pwfile");
        std::os::unix::fs::chown(&pwfile, Some(uid), Some(uid)).expect("chown pwfile");
        let data = dir.path().join("data");
        let out = run_cmd(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(format!("{PG_BIN}/initdb"))
                .args([
                    "-D",
                    data.to_str().unwrap(),
                    "-U",
                    "postgres",
                    "--pwfile",
                    pwfile.to_str().unwrap(),
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]),
            Duration::from_secs(120),
        );
        assert!(out.ok(), "initdb failed: {}{}", out.stdout, out.stderr);
        // SCRAM only, TCP only: the gateway must authenticate for real.
        std::fs::write(
            data.join("pg_hba.conf"),
            "host all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n",
        )
        .expect("pg_hba");
        let mut c = Cluster {
            port: free_port(),
            password,
            dir,
            child: None,
        };
        c.spawn();
        c
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn spawn(&mut self) {
        let data = self.data_dir();
        let port = self.port.to_string();
        let sock = self.dir.path().to_str().unwrap().to_string();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("postgres.log"))
            .expect("log");
        let child = spawn_tied(
            &format!("{PG_BIN}/postgres"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-p",
                &port,
                "-k",
                &sock,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=32MB",
            ],
            &[],
            Some("postgres"),
            "INT",
            Stdio::null(),
            Stdio::from(log),
        );
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            let out = run_cmd(
                Command::new(format!("{PG_BIN}/pg_isready")).args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ]),
                Duration::from_secs(5),
            );
            if out.ok() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "postgres did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// `postgresql://user:password@127.0.0.1:port/db` for the superuser.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://postgres:{}@127.0.0.1:{}/{db}?sslmode=disable",
            self.password, self.port
        )
    }

    /// A direct superuser connection (bypassing the gateway), for setup and checks.
    pub async fn client(&self, db: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres password={} dbname={db}",
                self.port, self.password
            ),
            tokio_postgres::NoTls,
        )
        .await
        .expect("direct connection to the test cluster");
        tokio::spawn(conn);
        client
    }

    /// Runs SQL directly as the superuser.
    pub async fn exec(&self, db: &str, sql: &str) {
        self.client(db)
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {}", crate::message(&e)));
    }

    /// Fast shutdown (SIGINT), as an operator would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "INT");
            if !wait_exit(&mut child, Duration::from_secs(30)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Starts again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Turns on TLS with a server certificate for `localhost`/127.0.0.1 signed by a fresh test CA,
    /// and restarts; returns the CA certificate's path (for `sslrootcert`).
    pub fn enable_ssl(&mut self) -> PathBuf {
        self.enable_ssl_for("IP:127.0.0.1,DNS:localhost")
    }

    /// [`Cluster::enable_ssl`] with a certificate for the names in `san` (an openssl
    /// `subjectAltName` value): one that leaves out 127.0.0.1 tests what checks the name.
    pub fn enable_ssl_for(&mut self, san: &str) -> PathBuf {
        let data = self.data_dir();
        let d = self.dir.path();
        let (ca_key, ca_cert, csr, ext) = (
            d.join("ca.key"),
            d.join("ca.crt"),
            d.join("server.csr"),
            d.join("san.ext"),
        );
        let (key, cert) = (data.join("server.key"), data.join("server.crt"));
        std::fs::write(
            &ext,
            format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\n"),
        )
        .expect("san.ext");
        let p = |x: &PathBuf| x.to_str().unwrap().to_string();
        let steps: [Vec<String>; 3] = [
            [
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=gatehouse test CA",
                "-keyout",
                &p(&ca_key),
                "-out",
                &p(&ca_cert),
            ]
            .map(String::from)
            .to_vec(),
            [
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                &p(&key),
                "-out",
                &p(&csr),
            ]
            .map(String::from)
            .to_vec(),
            [
                "x509",
                "-req",
                "-in",
                &p(&csr),
                "-CA",
                &p(&ca_cert),
                "-CAkey",
                &p(&ca_key),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &p(&ext),
                "-out",
                &p(&cert),
            ]
            .map(String::from)
            .to_vec(),
        ];
        for args in steps {
            let out = run_cmd(Command::new("openssl").args(&args), Duration::from_secs(60));
            assert!(out.ok(), "openssl {args:?}: {out:?}");
        }
        let uid = postgres_uid();
        for f in [&key, &cert] {
            std::os::unix::fs::chown(f, Some(uid), Some(uid)).expect("chown");
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
        text.push_str("\nssl = on\n");
        std::fs::write(&conf, text).expect("postgresql.conf");
        self.restart();
        ca_cert
    }

    /// Puts `line` first in pg_hba.conf and reloads.
    pub async fn prepend_hba(&self, line: &str) {
        let hba = self.data_dir().join("pg_hba.conf");
        let old = std::fs::read_to_string(&hba).expect("pg_hba.conf");
        std::fs::write(&hba, format!("{line}\n{old}")).expect("pg_hba.conf");
        self.exec("postgres", "SELECT pg_reload_conf()").await;
    }

    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.spawn();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
