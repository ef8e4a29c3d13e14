//! The desktop app as people install it: the `.deb` the Tauri bundler made from this run's
//! build (`scripts/test.sh` runs `tauri bundle --bundles deb`) declares the libraries the app
//! loads, carries the binary, a desktop entry and the icons; `apt-get install ./….deb` installs
//! it on this machine; the installed program (the desktop entry's `Exec`) starts in a private X
//! server and its window renders the sign-in form, read through WebDriver and kept as a
//! screenshot in `target/test-output/desktop/`. The package is removed again at the end.
//! Needs root (apt-get).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use gatehouse_tests::desktop::{test_output_dir, TauriDriver, WebDriver, Xvfb};
use gatehouse_tests::{run_cmd, CmdOutput};

const WAIT: Duration = Duration::from_secs(60);
/// The main window's title (src-tauri/tauri.conf.json).
const WINDOW_TITLE: &str = "Gatehouse";

/// The newest `.deb` under `target/<profile>/bundle/deb/`, unless `GATEHOUSE_DESKTOP_DEB` names one.
fn deb_path() -> PathBuf {
    if let Ok(p) = std::env::var("GATEHOUSE_DESKTOP_DEB") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("bundle/deb");
    let newest = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
    newest.unwrap_or_else(|| {
        panic!(
            "no .deb in {}: run `npx tauri bundle --debug --bundles deb` after `cargo build -p gatehouse-desktop` (scripts/test.sh does)",
            dir.display()
        )
    })
}

fn must(out: CmdOutput, what: &str) -> String {
    assert!(out.ok(), "{what}: {out:?}");
    out.stdout
}

fn cmd(program: &str, args: &[&str]) -> CmdOutput {
    run_cmd(
        Command::new(program)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        Duration::from_secs(300),
    )
}

fn installed(package: &str) -> bool {
    cmd("dpkg-query", &["-W", "-f=${Status}", package])
        .stdout
        .contains("install ok installed")
}

/// Removes the package when the test ends, however it ends.
struct Installed(String);

impl Drop for Installed {
    fn drop(&mut self) {
        let out = cmd(
            "apt-get",
            &[
                "remove",
                "-y",
                "-q",
                "-o",
                "DPkg::Lock::Timeout=300",
                &self.0,
            ],
        );
        if !out.ok() {
            eprintln!("could not remove {}: {out:?}", self.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deb_installs_and_the_installed_app_renders() {
    let deb = deb_path();
    let deb_str = deb.to_str().expect("deb path").to_string();

    // What the package says about itself.
    let field = |name: &str| must(cmd("dpkg-deb", &["--field", &deb_str, name]), name);
    let package = field("Package").trim().to_string();
    let depends = field("Depends");
    for lib in [
        "libwebkit2gtk-4.1-0",
        "libgtk-3-0",
        "libayatana-appindicator3-1",
    ] {
        assert!(depends.contains(lib), "Depends lacks {lib}: {depends}");
    }
    assert!(!field("Description").trim().is_empty());
    let contents = must(
        cmd("dpkg-deb", &["--contents", &deb_str]),
        "dpkg-deb --contents",
    );
    let paths: Vec<&str> = contents
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches("./").trim_start_matches('/'))
        .collect();
    assert!(paths.contains(&"usr/bin/gatehouse-desktop"), "{contents}");
    let desktop_file = paths
        .iter()
        .find(|p| p.starts_with("usr/share/applications/") && p.ends_with(".desktop"))
        .map(|p| format!("/{p}"))
        .unwrap_or_else(|| panic!("no desktop entry in the package:\n{contents}"));
    for size in ["32x32", "128x128", "512x512"] {
        assert!(
            paths
                .iter()
                .any(|p| p.starts_with(&format!("usr/share/icons/hicolor/{size}/apps/"))),
            "no {size} icon in the package:\n{contents}"
        );
    }

    // Installed as people install it.
    if installed(&package) {
        must(
            cmd(
                "apt-get",
                &[
                    "remove",
                    "-y",
                    "-q",
                    "-o",
                    "DPkg::Lock::Timeout=300",
                    &package,
                ],
            ),
            "remove an earlier install",
        );
    }
    must(
        cmd(
            "apt-get",
            &[
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "-o",
                "DPkg::Lock::Timeout=300",
                &deb_str,
            ],
        ),
        "apt-get install ./….deb",
    );
    let _installed = Installed(package.clone());
    assert!(installed(&package));

    // The desktop entry names the installed program and its icon.
    let entry = std::fs::read_to_string(&desktop_file)
        .unwrap_or_else(|e| panic!("{desktop_file} was not installed: {e}"));
    let key = |k: &str| {
        entry
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{desktop_file} has no {k}=:\n{entry}"))
            .to_string()
    };
    assert_eq!(key("Name"), "Gatehouse", "{entry}");
    assert!(key("Categories").contains("Development"), "{entry}");
    let exec = key("Exec");
    let program = exec.split_whitespace().next().expect("Exec program");
    let program = if program.starts_with('/') {
        PathBuf::from(program)
    } else {
        Path::new("/usr/bin").join(program)
    };
    assert_eq!(program, Path::new("/usr/bin/gatehouse-desktop"), "{entry}");
    let icon = key("Icon");
    assert!(
        Path::new(&format!("/usr/share/icons/hicolor/128x128/apps/{icon}.png")).exists(),
        "the entry's icon {icon} is not installed"
    );

    // The installed program runs and its window renders the UI it carries.
    let out_dir = test_output_dir("desktop");
    let home = tempfile::Builder::new()
        .prefix("gatehouse-deb-")
        .tempdir()
        .expect("tempdir");
    let env = vec![
        (
            "GATEHOUSE_CONFIG_DIR".to_string(),
            home.path().join("config").display().to_string(),
        ),
        ("GATEHOUSE_SESSION_STORE".into(), "file".into()),
        ("HOME".into(), home.path().display().to_string()),
    ];
    let xvfb = tokio::task::spawn_blocking(Xvfb::start).await.unwrap();
    let display = xvfb.display.clone();
    let log = out_dir.join("deb-tauri-driver.log");
    let driver = tokio::task::spawn_blocking(move || TauriDriver::start(&display, &env, log))
        .await
        .unwrap();
    let wd = WebDriver::launch(&driver.url(), &program)
        .await
        .unwrap_or_else(|e| panic!("the installed app did not start: {e:#}\n{}", driver.log()));
    let shot = out_dir.join("deb-01-installed-app.png");
    let result: Result<()> = async {
        wd.wait_for("the sign-in form", WAIT, || wd.field("Gateway URL", None))
            .await?;
        ensure!(
            wd.button("Sign in", None).await?.is_some(),
            "no Sign in button"
        );
        xvfb.screenshot_window(WINDOW_TITLE, &shot)?;
        // A window that rendered has many colours (text, borders, the form); a blank one has one.
        let colours = run_cmd(
            Command::new("identify").args(["-format", "%k"]).arg(&shot),
            Duration::from_secs(30),
        );
        let n: u32 = colours
            .stdout
            .trim()
            .parse()
            .map_err(|_| anyhow!("identify: {colours:?}"))?;
        ensure!(
            n > 16,
            "the window looks blank ({n} colours): {}",
            shot.display()
        );
        Ok(())
    }
    .await;
    wd.quit().await;
    if let Err(e) = result {
        panic!("{e:#}\n--- tauri-driver and app log ---\n{}", driver.log());
    }
}
