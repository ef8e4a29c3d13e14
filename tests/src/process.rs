//! Spawning child processes that cannot outlive the tests, and running short commands.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

type Request = (Command, Sender<std::io::Result<Child>>);

/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, so children are
/// forked from this one thread, which lives as long as the test process.
fn spawner() -> &'static Mutex<Sender<Request>> {
    static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<Request>();
        std::thread::Builder::new()
            .name("gatehouse-test-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the spawner thread");
        Mutex::new(tx)
    })
}

/// Spawns `program args…` (optionally as another OS user) so that it receives `signal` when the
/// test process dies.
pub fn spawn_tied(
    program: &str,
    args: &[&str],
    env: &[(String, String)],
    as_user: Option<&str>,
    signal: &str,
    stdout: Stdio,
    stderr: Stdio,
) -> Child {
    let mut cmd = Command::new("setpriv");
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.arg(format!("--pdeathsig={signal}"));
    if let Some(user) = as_user {
        cmd.args([
            &format!("--reuid={user}"),
            &format!("--regid={user}"),
            "--init-groups",
        ]);
    }
    cmd.arg("--")
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    let (tx, rx) = channel();
    spawner()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, tx))
        .expect("spawner alive");
    rx.recv()
        .expect("spawner reply")
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
}

/// A port that was free a moment ago on 127.0.0.1.
/// A port nothing listens on, for a server a test starts later. Chosen below the kernel's
/// ephemeral range (32768 and up): a port from `bind(:0)` is free only until some outgoing
/// connection (a test's, a gateway's, another suite's) is given it as its local port, which
/// happened between choosing the test IdP's port and starting it. Never the same port twice in
/// one test process.
pub fn free_port() -> u16 {
    use rand::Rng;
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = rand::thread_rng().gen_range(20_000..32_000);
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
}

/// What a finished command printed.
#[derive(Debug)]
pub struct CmdOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn ok(&self) -> bool {
        self.status == 0
    }
}

/// Runs a command to completion with a time limit (killing it past the limit).
pub fn run_cmd(cmd: &mut Command, limit: Duration) -> CmdOutput {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = child.stdout.take().map(read_in_thread);
    let stderr = child.stderr.take().map(read_in_thread);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break -9;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    CmdOutput {
        status,
        stdout: stdout
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default(),
        stderr: stderr
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default(),
    }
}

fn read_in_thread<R: std::io::Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// Sends a signal by name to a process.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Waits for a child to exit, up to `limit`; true if it did.
pub fn wait_exit(child: &mut Child, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The Python with the test clients (psycopg, the MCP SDK): `GATEHOUSE_PYTHON` (set by
/// scripts/test.sh), else the repository's `.venv`.
pub fn python() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("GATEHOUSE_PYTHON") {
        return p.into();
    }
    let venv = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with the test clients: run scripts/install-deps.sh (or set GATEHOUSE_PYTHON)"
    );
    venv
}
