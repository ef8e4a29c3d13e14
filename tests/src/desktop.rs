//! The desktop app under test: a private X server (Xvfb), `tauri-driver` in front of WebKitGTK's
//! `WebKitWebDriver`, and a small W3C WebDriver client over plain HTTP JSON ([`WebDriver`]).
//! The app is the real `gatehouse-desktop` binary built next to the tests; the driver starts
//! it with the environment given here (its own session store, the gateway's PostgreSQL
//! address).
//!
//! Elements are found the way a person finds them, by accessible name (a field's label, a
//! button's text), through one script run in the page, plus the `data-env`/`data-testid`
//! hooks of the UI contract.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::oidc::repo_root;
use crate::process::{free_port, spawn_tied};

/// The key W3C WebDriver uses for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `gatehouse-desktop` next to the test executable, unless `GATEHOUSE_DESKTOP_BIN` names one.
pub fn desktop_bin() -> PathBuf {
    if let Ok(p) = std::env::var("GATEHOUSE_DESKTOP_BIN") {
        return p.into();
    }
    let bin = target_profile_dir().join("gatehouse-desktop");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p gatehouse-desktop` first (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// `target/<profile>/`, where cargo put this test's binaries.
fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .to_path_buf()
}

/// `target/test-output/<area>/`, created: where tests leave files for people to look at.
pub fn test_output_dir(area: &str) -> PathBuf {
    let dir = target_profile_dir()
        .parent()
        .expect("target dir")
        .join("test-output")
        .join(area);
    std::fs::create_dir_all(&dir).expect("create the test output dir");
    dir
}

/// `tauri-driver`: `GATEHOUSE_TAURI_DRIVER`, else the repo-local install of
/// scripts/install-deps.sh (`.tools/bin`), else `~/.cargo/bin`, else PATH.
pub fn tauri_driver_bin() -> PathBuf {
    if let Ok(p) = std::env::var("GATEHOUSE_TAURI_DRIVER") {
        return p.into();
    }
    let mut candidates = vec![repo_root().join(".tools/bin/tauri-driver")];
    if let Some(home) = std::env::var_os("CARGO_HOME").or_else(|| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo").into_os_string())
    }) {
        candidates.push(PathBuf::from(home).join("bin/tauri-driver"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("tauri-driver")));
    }
    candidates
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("tauri-driver is missing: scripts/install-deps.sh installs it into .tools/bin")
        })
}

/// A running child that is killed when dropped, with its own children: tauri-driver starts
/// WebKitWebDriver, which the death signal of `spawn_tied` does not reach.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let pid = self.0.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let _ = self.0.kill();
        let _ = self.0.wait();
        for child in children.split_whitespace() {
            crate::process::signal(child.parse().unwrap_or(0), "KILL");
        }
    }
}

/// A private X server on a display number nobody uses.
pub struct Xvfb {
    pub display: String,
    _child: Killed,
}

impl Xvfb {
    pub fn start() -> Xvfb {
        assert!(
            Path::new("/usr/bin/Xvfb").exists(),
            "/usr/bin/Xvfb is missing: apt-get install xvfb (scripts/install-deps.sh does)"
        );
        for _ in 0..20 {
            let n = 100 + rand::random::<u16>() % 800;
            let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
            if socket.exists() || Path::new(&format!("/tmp/.X{n}-lock")).exists() {
                continue;
            }
            let display = format!(":{n}");
            let mut child = spawn_tied(
                "/usr/bin/Xvfb",
                &[&display, "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
                &[],
                None,
                "KILL",
                Stdio::null(),
                Stdio::null(),
            );
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if socket.exists() {
                    return Xvfb {
                        display,
                        _child: Killed(child),
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // lost a race for this display: try another
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("Xvfb did not start on any display");
    }
}

impl Xvfb {
    /// A PNG of the top-level window titled `title`, taken from the X server (ImageMagick's
    /// `import`). WebKitWebDriver's own screenshot command never answers under Xvfb
    /// (WebKitGTK 2.50 without a compositor), so the picture comes from X: it is what a
    /// person would see.
    pub fn screenshot_window(&self, title: &str, path: &Path) -> Result<()> {
        let out = crate::process::run_cmd(
            std::process::Command::new("import")
                .args(["-display", &self.display, "-window", title])
                .arg(path),
            Duration::from_secs(30),
        );
        if !out.ok() {
            bail!("import could not capture the window {title:?}: {out:?}");
        }
        let png = std::fs::read(path)?;
        if !png.starts_with(b"\x89PNG") {
            bail!("{} is not a PNG", path.display());
        }
        Ok(())
    }
}

/// `tauri-driver` listening on a free port, with the app's environment.
pub struct TauriDriver {
    pub port: u16,
    log: PathBuf,
    _child: Killed,
}

impl TauriDriver {
    /// Starts the driver on `display`; `env` reaches the app (the driver's children inherit it).
    pub fn start(display: &str, env: &[(String, String)], log: PathBuf) -> TauriDriver {
        assert!(
            Path::new("/usr/bin/WebKitWebDriver").exists(),
            "/usr/bin/WebKitWebDriver is missing: apt-get install webkit2gtk-driver"
        );
        let (port, native) = (free_port(), free_port());
        let mut vars: Vec<(String, String)> = vec![
            ("DISPLAY".into(), display.into()),
            // No GPU under Xvfb: WebKitGTK's DMA-BUF renderer would draw nothing.
            ("WEBKIT_DISABLE_DMABUF_RENDERER".into(), "1".into()),
            // No accessibility bus to talk to.
            ("NO_AT_BRIDGE".into(), "1".into()),
        ];
        vars.extend(env.iter().cloned());
        let bin = tauri_driver_bin();
        let child = spawn_tied(
            bin.to_str().expect("tauri-driver path"),
            &[
                "--port",
                &port.to_string(),
                "--native-port",
                &native.to_string(),
                "--native-driver",
                "/usr/bin/WebKitWebDriver",
            ],
            &vars,
            None,
            "KILL",
            Stdio::from(std::fs::File::create(&log).expect("driver log")),
            Stdio::from(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&log)
                    .expect("driver log"),
            ),
        );
        let driver = TauriDriver {
            port,
            log,
            _child: Killed(child),
        };
        // Both must listen: tauri-driver forwards a new session to WebKitWebDriver, which it
        // starts itself and which takes a moment longer.
        let start = Instant::now();
        let up = |p: u16| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok();
        while !(up(port) && up(native)) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "tauri-driver ({port}) and WebKitWebDriver ({native}) did not both listen:\n{}",
                driver.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    /// What the driver, WebKitWebDriver and the app printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A WebDriver session.
pub struct WebDriver {
    http: reqwest::Client,
    base: String,
    session: String,
}

/// A reference to an element in the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl WebDriver {
    /// Starts the app at `application` through the driver at `base`.
    pub async fn launch(base: &str, application: &Path) -> Result<WebDriver> {
        let http = reqwest::Client::builder()
            // Starting the app is the slowest command; none should take longer.
            .timeout(Duration::from_secs(60))
            .build()?;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "wry",
            "tauri:options": {"application": application.to_str().context("app path")?}
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let session = resp["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session from the driver: {resp}"))?
            .to_string();
        Ok(WebDriver {
            http,
            base: base.to_string(),
            session,
        })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("WebDriver {path}"))?;
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .with_context(|| format!("WebDriver {path}"))?;
        if !status.is_success() {
            bail!("WebDriver {path}: {status}: {}", v["value"]);
        }
        Ok(v["value"].clone())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn execute(&self, script: &str, args: Value) -> Result<Value> {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The first element matching a CSS selector, if any.
    pub async fn find_css(&self, css: &str) -> Result<Option<Element>> {
        let v = self
            .execute("return document.querySelector(arguments[0]);", json!([css]))
            .await?;
        Ok(element(&v))
    }

    /// The visible form field labelled `label` (its `<label>`, `aria-label`,
    /// `aria-labelledby` or placeholder), inside `scope` (a CSS selector) if given.
    pub async fn field(&self, label: &str, scope: Option<&str>) -> Result<Option<Element>> {
        let v = self
            .execute(FIND_BY_NAME, json!(["field", label, scope]))
            .await?;
        Ok(element(&v))
    }

    /// The visible button named `name` (its `aria-label` or text), inside `scope` if given.
    pub async fn button(&self, name: &str, scope: Option<&str>) -> Result<Option<Element>> {
        let v = self
            .execute(FIND_BY_NAME, json!(["button", name, scope]))
            .await?;
        Ok(element(&v))
    }

    pub async fn click(&self, e: &Element) -> Result<()> {
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{}/click", e.0),
            Some(json!({})),
        )
        .await
        .map(|_| ())
    }

    /// Replaces a field's value by typing `text`.
    pub async fn type_into(&self, e: &Element, text: &str) -> Result<()> {
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{}/clear", e.0),
            Some(json!({})),
        )
        .await?;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{}/value", e.0),
            Some(json!({"text": text})),
        )
        .await
        .map(|_| ())
    }

    /// An element's rendered text.
    pub async fn text(&self, e: &Element) -> Result<String> {
        let v = self
            .cmd(
                reqwest::Method::GET,
                &format!("/element/{}/text", e.0),
                None,
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The whole page's text (for failure messages).
    pub async fn page_text(&self) -> String {
        self.execute(
            "return document.body ? document.body.innerText : '';",
            json!([]),
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
    }

    /// Polls `probe` until it returns `Some`, or fails after `limit` with `what` and the page.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, limit: Duration, probe: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        let start = Instant::now();
        let mut last_err = None;
        loop {
            match probe().await {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => last_err = Some(e),
            }
            if start.elapsed() > limit {
                bail!(
                    "timed out after {limit:?} waiting for {what} (last error: {last_err:?}); the page shows:\n{}",
                    self.page_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Ends the session (the driver closes the app).
    pub async fn quit(self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

fn element(v: &Value) -> Option<Element> {
    v.get(ELEMENT)
        .and_then(Value::as_str)
        .map(|s| Element(s.to_string()))
}

/// Finds a visible field by label or button by name, the way assistive technology names them.
const FIND_BY_NAME: &str = r#"
const [kind, name, scope] = arguments;
const root = scope ? document.querySelector(scope) : document;
if (!root) return null;
const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
const byIds = (ids) => norm((ids || '').split(' ').map((id) => {
  const el = document.getElementById(id); return el ? el.textContent : '';
}).join(' '));
const fieldName = (e) => norm(e.getAttribute('aria-label')) || byIds(e.getAttribute('aria-labelledby'))
  || (e.labels && e.labels.length ? norm(e.labels[0].textContent) : '') || norm(e.getAttribute('placeholder'));
const buttonName = (e) => norm(e.getAttribute('aria-label')) || byIds(e.getAttribute('aria-labelledby'))
  || norm(e.textContent) || norm(e.value);
const visible = (e) => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
const selector = kind === 'field' ? 'input, textarea, select'
  : 'button, [role="button"], input[type="submit"], input[type="button"]';
const nameOf = kind === 'field' ? fieldName : buttonName;
const all = [...root.querySelectorAll(selector)].filter(visible);
// An exact name first; then one that only adds a marker such as "*" for a required field.
return all.find((e) => nameOf(e) === name)
  || all.find((e) => nameOf(e).replace(/[\s*:]+$/, '') === name) || null;
"#;
