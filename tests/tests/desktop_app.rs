//! The desktop app end to end: the real `gatehouse-desktop` binary (Tauri, WebKitGTK) in a
//! private X server, driven through WebDriver (`tauri-driver` + `WebKitWebDriver`) the way a
//! person uses it: sign in as a local user, click Connect on an environment, read the port the
//! app shows, and run the psql line it shows — real psql, no password — through the tunnel
//! to a real PostgreSQL. Disconnect closes the port. A screenshot of the main window is saved
//! under `target/test-output/desktop/`.

use std::process::Command;
use std::time::Duration;

use gatehouse_tests::desktop::{desktop_bin, test_output_dir, TauriDriver, WebDriver, Xvfb};
use gatehouse_tests::{run_cmd, Fixture, ENV};

const USER: &str = "dana";
const PASSWORD: &str = "desk-top-secret-1";
const WAIT: Duration = Duration::from_secs(60);
/// The main window's title (src-tauri/tauri.conf.json).
const WINDOW_TITLE: &str = "Gatehouse";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_connect_and_psql_through_the_desktop_app() {
    let f = Fixture::start_with(|b| {
        b.user(USER, PASSWORD, &["desktop-users"])
            .grant(&["desktop-users"], &[ENV])
    })
    .await;
    let out_dir = test_output_dir("desktop");
    let home = tempfile::Builder::new()
        .prefix("gatehouse-desktop-")
        .tempdir()
        .expect("tempdir");

    let xvfb = tokio::task::spawn_blocking(Xvfb::start).await.unwrap();
    let env = vec![
        // The app's own session store: never a developer's keychain or CLI session.
        (
            "GATEHOUSE_CONFIG_DIR".to_string(),
            home.path().join("config").display().to_string(),
        ),
        ("GATEHOUSE_SESSION_STORE".into(), "file".into()),
        ("GATEHOUSE_BROWSER".into(), "none".into()),
        // The test gateway's PostgreSQL port is not the default 7432.
        (
            "GATEHOUSE_POSTGRES".into(),
            format!("{}:{}", f.gw.pg_host, f.gw.pg_port),
        ),
        (
            "GATEHOUSE_LOG".into(),
            "gatehouse_desktop=debug,gatehouse_client=debug".into(),
        ),
        ("HOME".into(), home.path().display().to_string()),
    ];
    let display = xvfb.display.clone();
    let log = out_dir.join("tauri-driver.log");
    let driver = tokio::task::spawn_blocking(move || TauriDriver::start(&display, &env, log))
        .await
        .unwrap();

    let wd = WebDriver::launch(&driver.url(), &desktop_bin())
        .await
        .unwrap_or_else(|e| panic!("the app did not start: {e:#}\n{}", driver.log()));
    let result = drive(&wd, &f, &xvfb, &out_dir).await;
    if result.is_err() {
        // Whatever the window showed when it went wrong, for the person reading the failure.
        let _ = xvfb.screenshot_window(WINDOW_TITLE, &out_dir.join("failure.png"));
    }
    wd.quit().await;
    if let Err(e) = result {
        panic!(
            "{e:#}\n--- tauri-driver and app log ---\n{}\n--- gateway log ---\n{}",
            driver.log(),
            f.gw.log()
        );
    }
}

async fn drive(
    wd: &WebDriver,
    f: &Fixture,
    xvfb: &Xvfb,
    out_dir: &std::path::Path,
) -> anyhow::Result<()> {
    // Sign in as a local user.
    let gateway = wd
        .wait_for("the Gateway URL field", WAIT, || {
            wd.field("Gateway URL", None)
        })
        .await?;
    wd.type_into(&gateway, &f.gw.http()).await?;
    let username = wd
        .field("Username", None)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no Username field"))?;
    wd.type_into(&username, USER).await?;
    let password = wd
        .field("Password", None)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no Password field"))?;
    wd.type_into(&password, PASSWORD).await?;
    let sign_in = wd
        .button("Sign in", None)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no Sign in button"))?;
    wd.click(&sign_in).await?;

    // The environments screen lists the one this user may reach; connect to it.
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
            .ok_or_else(|| anyhow::anyhow!("no psql line shown"))?;
        wd.text(&e).await?.trim().to_string()
    };
    anyhow::ensure!(
        psql_line.starts_with("psql ") && psql_line.contains(&format!("port={port}")),
        "the psql line {psql_line:?} does not name port {port}"
    );

    // The main window with the open tunnel, for people to look at.
    xvfb.screenshot_window(WINDOW_TITLE, &out_dir.join("main-window.png"))?;

    // The line the app shows, run as shown: real psql, no password, through the tunnel.
    let sql = "SELECT current_database() || ':' || (40 + 2)";
    let out = tokio::task::spawn_blocking({
        let line = format!("{psql_line} -X -w -At -v ON_ERROR_STOP=1 -c \"{sql}\"");
        move || {
            run_cmd(
                Command::new("sh")
                    .arg("-c")
                    .arg(line)
                    .env_remove("PGPASSWORD"),
                Duration::from_secs(60),
            )
        }
    })
    .await?;
    anyhow::ensure!(
        out.ok() && out.stdout.trim() == "appdb:42",
        "psql through the app's tunnel failed: {out:?}"
    );

    // Disconnect closes the port.
    let disconnect = wd
        .wait_for("Disconnect", WAIT, || wd.button("Disconnect", Some(&scope)))
        .await?;
    wd.click(&disconnect).await?;
    wd.wait_for("the port to close", WAIT, || async {
        Ok(std::net::TcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(()))
    })
    .await?;
    wd.wait_for("Connect to come back", WAIT, || {
        wd.button("Connect", Some(&scope))
    })
    .await?;
    Ok(())
}
