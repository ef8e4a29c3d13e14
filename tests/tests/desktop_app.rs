//! The desktop app end to end: the real `gatehouse-desktop` binary (Tauri, WebKitGTK) in a
//! private X server, driven through WebDriver (`tauri-driver` + `WebKitWebDriver`) the way a
//! person uses it: sign in (as a local user; or with SSO, the app's browser being a hook that
//! hands the URL to the test, which logs in at the real provider), click Connect on an
//! environment, read the port the app shows, and run the psql line it shows — real psql, no
//! password — through the tunnel to a real PostgreSQL. Disconnect closes the port. A screenshot
//! of the main window is saved under `target/test-output/desktop/`.
//!
//! Access on request from the app: **Request access** on an environment the person cannot
//! reach, the notifications the app shows (recorded through its test hook,
//! `GATEHOUSE_NOTIFY_LOG`) when a request waits on them and when theirs is decided, and a
//! tunnel that was open when the app quit reopened on the same port at the next start.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use gatehouse_tests::desktop::{desktop_bin, test_output_dir, TauriDriver, WebDriver, Xvfb};
use gatehouse_tests::oidc::{browser_stopping_at, login, sso_fixture, LoginEnd};
use gatehouse_tests::{run_cmd, Fixture, ENV};

const USER: &str = "dana";
const PASSWORD: &str = "desk-top-secret-1";
const WAIT: Duration = Duration::from_secs(60);
/// The main window's title (src-tauri/tauri.conf.json).
const WINDOW_TITLE: &str = "Gatehouse";

/// The app running under test, with what it needs around it.
struct Desktop {
    wd: WebDriver,
    driver: TauriDriver,
    xvfb: Xvfb,
    home: tempfile::TempDir,
    out_dir: PathBuf,
    /// Prefix of this run's files in `out_dir`.
    name: &'static str,
}

impl Desktop {
    /// Starts X, the driver and the app, with a private session store and a "browser" that
    /// writes the URL it is given to `browser-url`. The app learns the gateway's PostgreSQL
    /// address (not the default port here) from the gateway itself.
    async fn start(name: &'static str) -> Desktop {
        let home = tempfile::Builder::new()
            .prefix("gatehouse-desktop-")
            .tempdir()
            .expect("tempdir");
        Self::start_in(name, home, Vec::new()).await
    }

    /// Like [`Desktop::start`], in an existing home (the same session store, remembered ports
    /// and notification log): the app started again.
    async fn start_in(
        name: &'static str,
        home: tempfile::TempDir,
        extra_env: Vec<(String, String)>,
    ) -> Desktop {
        let out_dir = test_output_dir("desktop");
        let browser = home.path().join("browser.sh");
        std::fs::write(
            &browser,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$1\" > '{}'\n",
                home.path().join("browser-url").display()
            ),
        )
        .unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let env = vec![
            // The app's own session store: never a developer's keychain or CLI session.
            (
                "GATEHOUSE_CONFIG_DIR".to_string(),
                home.path().join("config").display().to_string(),
            ),
            ("GATEHOUSE_SESSION_STORE".into(), "file".into()),
            ("GATEHOUSE_BROWSER".into(), browser.display().to_string()),
            (
                "GATEHOUSE_LOG".into(),
                "gatehouse_desktop=debug,gatehouse_client=debug".into(),
            ),
            ("HOME".into(), home.path().display().to_string()),
            // The notification path's test hook, and a quick look at the approvals.
            (
                "GATEHOUSE_NOTIFY_LOG".into(),
                home.path()
                    .join("notifications.jsonl")
                    .display()
                    .to_string(),
            ),
            ("GATEHOUSE_NOTIFY_INTERVAL_MS".into(), "500".into()),
        ]
        .into_iter()
        .chain(extra_env)
        .collect::<Vec<(String, String)>>();
        let xvfb = tokio::task::spawn_blocking(Xvfb::start).await.unwrap();
        let display = xvfb.display.clone();
        let log = out_dir.join(format!("{name}-tauri-driver.log"));
        let driver = tokio::task::spawn_blocking(move || TauriDriver::start(&display, &env, log))
            .await
            .unwrap();
        let wd = WebDriver::launch(&driver.url(), &desktop_bin())
            .await
            .unwrap_or_else(|e| panic!("the app did not start: {e:#}\n{}", driver.log()));
        Desktop {
            wd,
            driver,
            xvfb,
            home,
            out_dir,
            name,
        }
    }

    /// Saves the main window as `out_dir/FILE.png`.
    fn screenshot(&self, file: &str) -> Result<()> {
        let path = self.out_dir.join(format!("{file}.png"));
        self.xvfb.screenshot_window(WINDOW_TITLE, &path)
    }

    /// The URL the app asked the browser to open, once it has.
    fn browser_url(&self) -> Option<String> {
        std::fs::read_to_string(self.home.path().join("browser-url"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// The notifications the app has shown so far (its test hook's file), in order.
    fn notifications(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.home.path().join("notifications.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Quits the app (as a person would; the driver closes it) and keeps its home.
    async fn quit(self) -> tempfile::TempDir {
        self.wd.quit().await;
        drop(self.driver);
        drop(self.xvfb);
        self.home
    }

    /// Ends the session; panics with every log if `result` is an error.
    async fn finish(self, f: &Fixture, result: Result<()>) {
        if result.is_err() {
            // Whatever the window showed when it went wrong, for the person reading the failure.
            let _ = self.screenshot(&format!("{}-failure", self.name));
        }
        self.wd.quit().await;
        if let Err(e) = result {
            panic!(
                "{e:#}\n--- tauri-driver and app log ---\n{}\n--- gateway log ---\n{}",
                self.driver.log(),
                f.gw.log()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_connect_and_psql_through_the_desktop_app() {
    let f = Fixture::start_with(|b| {
        b.user(USER, PASSWORD, &["desktop-users"])
            .grant(&["desktop-users"], &[ENV])
    })
    .await;
    let d = Desktop::start("main").await;
    let result = async {
        sign_in_with_password(&d.wd, &f).await?;
        connect_psql_disconnect(&d, "main-window").await
    }
    .await;
    d.finish(&f, result).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_sso_through_the_system_browser() {
    let (f, idp) = sso_fixture(&["engineers"]).await;
    let d = Desktop::start("sso").await;
    let result = async {
        let gateway =
            d.wd.wait_for("the Gateway URL field", WAIT, || {
                d.wd.field("Gateway URL", None)
            })
            .await?;
        d.wd.type_into(&gateway, &f.gw.http()).await?;
        let sso =
            d.wd.button("Sign in with SSO", None)
                .await?
                .ok_or_else(|| anyhow!("no Sign in with SSO button"))?;
        d.wd.click(&sso).await?;

        // The app opened "the browser" at the gateway with a loopback redirect and PKCE.
        let start =
            d.wd.wait_for("the app to open the browser", WAIT, || async {
                Ok(d.browser_url())
            })
            .await?;
        let parsed = url::Url::parse(&start)?;
        let param = |k: &str| {
            parsed
                .query_pairs()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.into_owned())
                .ok_or_else(|| anyhow!("no {k} in {start}"))
        };
        let redirect_uri = param("redirect_uri")?;
        ensure!(
            redirect_uri.starts_with("http://127.0.0.1:"),
            "{redirect_uri}"
        );
        ensure!(param("code_challenge_method")? == "S256", "{start}");

        // The person signs in at the provider; the browser goes back to the app's listener.
        let end = login(&browser_stopping_at(&redirect_uri), &start, "alice").await;
        let LoginEnd::Redirect(back) = end else {
            return Err(anyhow!(
                "the login did not come back: {end:?}\n{}",
                idp.log()
            ));
        };
        let page = reqwest::get(back.as_str()).await?;
        ensure!(
            page.status() == 200,
            "the app's listener answered {}",
            page.status()
        );
        ensure!(page.text().await?.contains("Logged in"), "no success page");

        connect_psql_disconnect(&d, "sso-window").await
    }
    .await;
    d.finish(&f, result).await;
}

async fn sign_in_with_password(wd: &WebDriver, f: &Fixture) -> Result<()> {
    let gateway = wd
        .wait_for("the Gateway URL field", WAIT, || {
            wd.field("Gateway URL", None)
        })
        .await?;
    wd.type_into(&gateway, &f.gw.http()).await?;
    for (label, value) in [("Username", USER), ("Password", PASSWORD)] {
        let field = wd
            .field(label, None)
            .await?
            .ok_or_else(|| anyhow!("no {label} field"))?;
        wd.type_into(&field, value).await?;
    }
    let sign_in = wd
        .button("Sign in", None)
        .await?
        .ok_or_else(|| anyhow!("no Sign in button"))?;
    wd.click(&sign_in).await
}

/// On the environments screen: Connect, check the shown port with the shown psql line, take
/// the screenshot `shot`, Disconnect and check the port is closed.
async fn connect_psql_disconnect(d: &Desktop, shot: &str) -> Result<()> {
    let wd = &d.wd;
    let scope = format!("[data-env=\"{ENV}\"]");
    let connect = wd
        .wait_for("Connect on the environment", WAIT, || {
            wd.button("Connect", Some(&scope))
        })
        .await?;
    wd.click(&connect).await?;
    let port_sel = format!("{scope} [data-testid=\"tunnel-port\"]");
    let port: u16 = wd
        .wait_for("the tunnel's port", WAIT, || async {
            let Some(e) = wd.find_css(&port_sel).await? else {
                return Ok(None);
            };
            let text = wd.text(&e).await?;
            // The element may say more than the number ("127.0.0.1:54321"): take the last one.
            Ok(text
                .rsplit(|c: char| !c.is_ascii_digit())
                .find(|s| !s.is_empty())
                .and_then(|s| s.parse().ok()))
        })
        .await?;
    let psql_line = {
        let e = wd
            .find_css(&format!("{scope} [data-testid=\"tunnel-psql\"]"))
            .await?
            .ok_or_else(|| anyhow!("no psql line shown"))?;
        wd.text(&e).await?.trim().to_string()
    };
    ensure!(
        psql_line.starts_with("psql ") && psql_line.contains(&format!("port={port}")),
        "the psql line {psql_line:?} does not name port {port}"
    );

    // The main window with the open tunnel, for people to look at.
    d.screenshot(shot)?;

    // The line the app shows, run as shown: real psql, no password, through the tunnel.
    let sql = "SELECT current_database() || ':' || (40 + 2)";
    let line = format!("{psql_line} -X -w -At -v ON_ERROR_STOP=1 -c \"{sql}\"");
    let out = tokio::task::spawn_blocking(move || {
        run_cmd(
            Command::new("sh")
                .arg("-c")
                .arg(line)
                .env_remove("PGPASSWORD"),
            Duration::from_secs(60),
        )
    })
    .await?;
    ensure!(
        out.ok() && out.stdout.trim() == "appdb:42",
        "psql through the app's tunnel failed: {out:?}"
    );

    // Disconnect closes the port.
    let disconnect = wd
        .wait_for("Disconnect", WAIT, || wd.button("Disconnect", Some(&scope)))
        .await?;
    wd.click(&disconnect).await?;
    wd.wait_for("the port to close", WAIT, || async {
        Ok(port_closed(port).then_some(()))
    })
    .await?;
    wd.wait_for("Connect to come back", WAIT, || {
        wd.button("Connect", Some(&scope))
    })
    .await?;
    Ok(())
}

fn port_closed(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_access_get_notified_and_find_the_tunnel_reopened_on_its_port() {
    // dana and erin approve for the environment and have no grant for it; it takes requests.
    let f = Fixture::start_with(|b| {
        b.user(USER, PASSWORD, &["desktop-users"])
            .user("erin", "erin-pw", &["desktop-users"])
            .environment_setting(ENV, "approvers = [\"desktop-users\"]")
            .environment_setting(ENV, "access_requests = { max_duration_seconds = 3600 }")
    })
    .await;
    let api = gatehouse_tests::Api::new(f.gw.http());
    let erin = f.gw.login("erin", "erin-pw").await;
    // The desktop's notification service, on a private session bus.
    let bus = gatehouse_tests::notifications::NotificationBus::start().await;
    let home = tempfile::Builder::new()
        .prefix("gatehouse-desktop-")
        .tempdir()
        .expect("tempdir");
    let d = Desktop::start_in(
        "access",
        home,
        vec![
            ("DBUS_SESSION_BUS_ADDRESS".into(), bus.address.clone()),
            // Looks seldom: erin's request, made right after the sign-in, is news only
            // because the sign-in took the watcher's first look, not its next turn.
            ("GATEHOUSE_NOTIFY_INTERVAL_MS".into(), "3000".into()),
        ],
    )
    .await;
    let mut port = 0u16;
    let result = async {
        sign_in_with_password(&d.wd, &f).await?;
        let wd = &d.wd;
        // Request access, from the Environments screen.
        let scope = format!("[data-requestable=\"{ENV}\"]");
        let request = wd
            .wait_for("Request access", WAIT, || wd.button("Request access", Some(&scope)))
            .await?;
        wd.click(&request).await?;
        let reason = wd
            .wait_for("the Reason field", WAIT, || wd.field("Reason", Some(&scope)))
            .await?;
        wd.type_into(&reason, "ticket 4312 from the desktop").await?;
        let send = wd
            .button("Send request", Some(&scope))
            .await?
            .ok_or_else(|| anyhow!("no Send request button"))?;
        wd.click(&send).await?;
        let pending = format!("{scope} [data-pending]");
        wd.wait_for("the request to wait for an approver", WAIT, || {
            wd.find_css(&pending)
        })
        .await?;
        d.screenshot("access-requested")?;
        let (_, mine) = api.get("/api/v1/access-requests", &f.gw.login(USER, PASSWORD).await).await;
        let id = mine["items"][0]["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no request at the gateway: {mine}"))?
            .to_string();
        ensure!(
            mine["items"][0]["reason"] == "ticket 4312 from the desktop",
            "{mine}"
        );

        // erin asks too: dana, an approver, is told.
        let (status, theirs) = api
            .post(
                "/api/v1/access-requests",
                &erin,
                serde_json::json!({"environment": ENV, "duration_seconds": 600, "reason": "report"}),
            )
            .await;
        ensure!(status == 202, "{theirs}");
        let theirs_id = theirs["id"].as_str().unwrap_or_default().to_string();
        wd.wait_for("a notification that a request waits", WAIT, || async {
            Ok(d.notifications().into_iter().find(|n| n["approval_id"] == theirs_id.as_str()))
        })
        .await
        .and_then(|n| {
            ensure!(
                n["title"] == "An access request waits for you"
                    && n["body"].as_str().is_some_and(|b| b.starts_with("erin asks for app for 10m")),
                "{n}"
            );
            Ok(())
        })?;
        // The same notification reached the desktop's notification service; clicking it
        // opens that request in the window.
        let shown = wd
            .wait_for("the notification service to show it", WAIT, || async {
                Ok(bus
                    .shown()
                    .into_iter()
                    .find(|n| n.summary == "An access request waits for you"))
            })
            .await?;
        ensure!(shown.actions.contains(&"default".to_string()), "{shown:?}");
        bus.click(shown.id).await?;
        let card = format!("[data-approval=\"{theirs_id}\"]");
        wd.wait_for("the clicked request, opened and focused", WAIT, || async {
            let focused = wd
                .execute(
                    "return document.activeElement && document.activeElement.getAttribute('data-approval')",
                    serde_json::json!([]),
                )
                .await?;
            Ok((focused == theirs_id.as_str()).then_some(()))
        })
        .await?;
        ensure!(wd.find_css(&card).await?.is_some(), "no card {card}");
        d.screenshot("access-notification-opened")?;
        let environments = wd
            .find_css("a[href=\"#/environments\"]")
            .await?
            .ok_or_else(|| anyhow!("no Environments link"))?;
        wd.click(&environments).await?;

        // erin approves dana's: dana is told, and the environment becomes hers to connect to.
        let (status, decided) = api
            .post(
                &format!("/api/v1/approvals/{id}/approve"),
                &erin,
                serde_json::json!({"reason": "go ahead"}),
            )
            .await;
        ensure!(status == 200, "{decided}");
        wd.wait_for("a notification of the decision", WAIT, || async {
            Ok(d.notifications().into_iter().find(|n| n["approval_id"] == id.as_str()))
        })
        .await
        .and_then(|n| {
            ensure!(
                n["title"] == "Your access request on app was approved"
                    && n["body"] == "by erin: go ahead",
                "{n}"
            );
            Ok(())
        })?;
        let env_scope = format!("[data-env=\"{ENV}\"]");
        let connect = wd
            .wait_for("Connect on the granted environment", WAIT, || {
                wd.button("Connect", Some(&env_scope))
            })
            .await?;
        wd.click(&connect).await?;
        let port_sel = format!("{env_scope} [data-testid=\"tunnel-port\"]");
        port = wd
            .wait_for("the tunnel's port", WAIT, || async {
                let Some(e) = wd.find_css(&port_sel).await? else {
                    return Ok(None);
                };
                let text = wd.text(&e).await?;
                Ok(text
                    .rsplit(|c: char| !c.is_ascii_digit())
                    .find(|s| !s.is_empty())
                    .and_then(|s| s.parse::<u16>().ok()))
            })
            .await?;
        ensure!(!port_closed(port), "the tunnel listens on {port}");
        Ok(())
    }
    .await;
    if result.is_err() {
        d.finish(&f, result).await;
        return;
    }

    // Quit with the tunnel open: it closes with the app …
    let home = d.quit().await;
    for _ in 0..50 {
        if port_closed(port) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(port_closed(port), "the tunnel ended with the app");
    // … and the next start reopens it on the same port, before anyone clicks anything.
    let d = Desktop::start_in(
        "access-restarted",
        home,
        vec![("DBUS_SESSION_BUS_ADDRESS".into(), bus.address.clone())],
    )
    .await;
    let result = async {
        d.wd.wait_for("the tunnel to be back on its port", WAIT, || async {
            Ok((!port_closed(port)).then_some(()))
        })
        .await?;
        let conn = format!("host=127.0.0.1 port={port} dbname={ENV} user=whoever sslmode=disable");
        let out = tokio::task::spawn_blocking(move || {
            run_cmd(
                Command::new("psql").args([&conn, "-X", "-w", "-At", "-c", "SELECT 40 + 2"]),
                Duration::from_secs(60),
            )
        })
        .await?;
        ensure!(
            out.ok() && out.stdout.trim() == "42",
            "psql through the reopened tunnel: {out:?}"
        );
        let scope = format!("[data-env=\"{ENV}\"]");
        d.wd.wait_for("the window to show the reopened tunnel", WAIT, || {
            d.wd.button("Disconnect", Some(&scope))
        })
        .await?;
        d.screenshot("access-tunnel-reopened")?;
        Ok(())
    }
    .await;
    d.finish(&f, result).await;
}
