//! The `gatehouse` CLI beyond the tunnel: SSO login through the real OpenID provider (the
//! browser step driven over HTTP, the CLI's loopback listener receiving the code), service-token
//! login, the automatic keychain-to-file fallback, exit codes and messages that say what to do,
//! `whoami`, `logout` and `audit`.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use gatehouse_tests::oidc::{browser_stopping_at, login, sso_fixture, LoginEnd};
use gatehouse_tests::{free_port, Api, CliHome, Fixture, AGENT, ENV};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_login_in_the_browser_then_connect() {
    let (f, idp) = sso_fixture(&["engineers"]).await;

    // `gatehouse login` with no browser: it prints the URL the browser would open.
    let home = CliHome::new();
    let pg = format!("127.0.0.1:{}", f.gw.pg_port);
    let mut child = home
        .command()
        .args(["login", "--gateway", &f.gw.http(), "--postgres", &pg])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gatehouse login");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.trim().strip_prefix("http").map(|r| format!("http{r}")) {
                let _ = tx.send(url);
            }
        }
    });
    let start_url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("gatehouse login printed the SSO URL");
    let parsed = url::Url::parse(&start_url).unwrap();
    let param = |k: &str| {
        parsed
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no {k} in {start_url}"))
    };
    let redirect_uri = param("redirect_uri");
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:"),
        "{redirect_uri}"
    );
    assert_eq!(param("code_challenge_method"), "S256");

    // The person logs in at the provider; the browser is sent back to the CLI's listener.
    let end = login(&browser_stopping_at(&redirect_uri), &start_url, "alice").await;
    let LoginEnd::Redirect(back) = end else {
        panic!(
            "the login did not come back: {end:?}\n{}\n{}",
            f.gw.log(),
            idp.log()
        );
    };
    let page = reqwest::get(back.as_str())
        .await
        .expect("the CLI's redirect listener");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Logged in"));
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.status.success(), "login: {stdout}");
    assert!(stdout.contains("alice@example.com"), "{stdout}");

    let who = home.run(&["--json", "whoami"]);
    let v: serde_json::Value = serde_json::from_str(&who.stdout).expect("whoami JSON");
    assert_eq!(v["name"], "alice@example.com");
    assert_eq!(v["method"], "sso");

    let t = home.tunnel(ENV, &[]);
    let out = t.psql(
        ENV,
        &["-At", "-c", "SELECT current_setting('application_name')"],
    );
    assert!(out.ok(), "{out:?}\n{}", t.log());
    assert_eq!(
        out.stdout.trim(),
        "gatehouse:alice@example.com/gatehouse-tunnel/psql"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_token_login_keychain_fallback_and_exit_codes() {
    let f = Fixture::start_with(|b| b.user("root", "root-password", &["admins"])).await;
    let pg = format!("127.0.0.1:{}", f.gw.pg_port);
    let home = CliHome::new();

    // Not logged in: exit 3 and what to run.
    let out = home.run(&["envs"]);
    assert_eq!(out.status, 3, "{out:?}");
    assert!(out.stderr.contains("gatehouse login --gateway"), "{out:?}");

    // A wrong password: exit 3, the gateway's reason.
    let out = home.login_user(&f.gw, "root", "wrong");
    assert_eq!(out.status, 3, "{out:?}");
    assert!(out.stderr.contains("login refused"), "{out:?}");

    // A gateway that is not there: exit 6.
    let out = home.run(&[
        "login",
        "--gateway",
        &format!("http://127.0.0.1:{}", free_port()),
        "--postgres",
        &pg,
        "--token",
        "x",
    ]);
    assert_eq!(out.status, 6, "{out:?}");

    // SSO (neither --user nor --token) at a gateway that has none: refused at once, saying
    // which logins work, instead of a browser page that cannot succeed.
    let out = home.run(&["login", "--gateway", &f.gw.http(), "--no-browser"]);
    assert_eq!(out.status, 2, "{out:?}");
    assert!(
        out.stderr.contains("no single sign-on") && out.stderr.contains("--user NAME"),
        "{out:?}"
    );

    // The service account logs in with its token (from stdin) in `auto` store mode: there is
    // no keychain on this machine, so the session lands in the private file by itself.
    let mut cmd = home.command();
    cmd.env("GATEHOUSE_SESSION_STORE", "auto")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .args([
            "login",
            "--gateway",
            &f.gw.http(),
            "--postgres",
            &pg,
            "--token",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{}\n", f.token).as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("session.json"), "{stdout}");
    assert_eq!(home.session()["identity"], AGENT);
    assert_eq!(home.session()["trust"]["mode"], "pinned");

    // An unknown environment: exit 5, and which ones exist.
    let out = home.run(&["connect", "nosuch"]);
    assert_eq!(out.status, 5, "{out:?}");
    assert!(out.stderr.contains(ENV), "{out:?}");

    // The agent is no admin: the audit search is refused with exit 4.
    let out = home.run(&["audit"]);
    assert_eq!(out.status, 4, "{out:?}");

    // The agent connects through a tunnel like anyone else.
    let t = home.tunnel(ENV, &[]);
    assert!(t.psql(ENV, &["-c", "SELECT 1"]).ok());
    drop(t);

    // An admin searches the audit trail: the agent's tunnel connection is there.
    let admin = CliHome::new();
    admin.must_login(&f.gw, "root", "root-password");
    // Logged in without --postgres: the gateway said where its PostgreSQL listener is.
    assert_eq!(admin.session()["postgres"], pg, "{}", admin.session());
    let out = admin.run(&[
        "--json",
        "audit",
        "--identity",
        AGENT,
        "--event",
        "connection.open",
        "--limit",
        "5",
    ]);
    assert!(out.ok(), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let items = v["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{v}");
    assert!(
        items
            .iter()
            .all(|r| r["identity"] == AGENT && r["via"] == "tunnel"),
        "{v}"
    );
    let table = admin.run(&["audit", "--identity", AGENT]);
    assert!(
        table.ok() && table.stdout.contains("EVENT") && table.stdout.contains("connection.open"),
        "{table:?}"
    );

    // A reader that went away (`gatehouse whoami | true`) ends the command quietly, as it ends
    // `ls`, rather than with a panic about a broken pipe.
    for args in [&["whoami"][..], &["audit", "--identity", AGENT]] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = admin
            .command()
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run gatehouse");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("panicked"),
            "{args:?}: {:?} {stderr}",
            out.status
        );
    }

    // Logout revokes the session at the gateway and forgets it here.
    let token = admin.session()["token"].as_str().unwrap().to_string();
    let out = admin.run(&["logout"]);
    assert!(out.ok(), "{out:?}");
    assert!(!admin.session_file().exists());
    let (status, _) = Api::new(f.gw.http()).get("/api/v1/whoami", &token).await;
    assert_eq!(status, 401, "the session was revoked at the gateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_gateway_certificate_is_refused() {
    let f = Fixture::start_with(|b| {
        b.user("root", "root-password", &["admins"])
            .grant(&["admins"], &[ENV])
    })
    .await;
    let home = CliHome::new();
    // Pin a certificate that is not the gateway's: connections must fail closed.
    let pg = format!("127.0.0.1:{}", f.gw.pg_port);
    let out = home.run_with_stdin(
        &[
            "login",
            "--gateway",
            &f.gw.http(),
            "--postgres",
            &pg,
            "--user",
            "root",
            "--tls-fingerprint",
            &"ab".repeat(32),
        ],
        "root-password\n",
    );
    assert!(out.ok(), "{out:?}");
    let t = home.tunnel(ENV, &[]);
    let out = t.psql(ENV, &["-c", "SELECT 1"]);
    assert!(!out.ok());
    assert!(out.stderr.contains("certificate"), "{out:?}");
}

/// An approver in a terminal: `gatehouse approvals --pending`, `approve`, `deny`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_from_the_terminal() {
    let f = Fixture::start_with_tier("production", |b| {
        b.user("root", "root-password", &["admins"])
    })
    .await;
    let home = CliHome::new();
    let out = home.login_user(&f.gw, "root", "root-password");
    assert!(out.ok(), "{out:?}");

    // The agent's write in production waits for approval.
    let c = f.connect().await;
    let held =
        tokio::spawn(async move { c.batch_execute("CREATE TABLE held_by_cli (id int)").await });
    let mut id = String::new();
    for _ in 0..100 {
        let out = home.run(&["--json", "approvals", "--pending"]);
        assert!(out.ok(), "{out:?}");
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        if let Some(a) = v["items"].as_array().and_then(|i| {
            i.iter()
                .find(|a| a["statement"] == "CREATE TABLE held_by_cli (id int)")
        }) {
            id = a["id"].as_str().unwrap().to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !id.is_empty(),
        "the held statement shows in `gatehouse approvals --pending`"
    );
    let table = home.run(&["approvals", "--pending"]);
    assert!(table.ok() && table.stdout.contains(&id), "{table:?}");
    let out = home.run(&["approve", &id, "--reason", "fine"]);
    assert!(out.ok(), "{out:?}");
    held.await.unwrap().expect("the approved statement ran");

    // Denied from the terminal: the waiting client gets the reason.
    let c = f.connect().await;
    let held =
        tokio::spawn(async move { c.batch_execute("CREATE TABLE denied_by_cli (id int)").await });
    let mut id = String::new();
    for _ in 0..100 {
        let out = home.run(&["--json", "approvals", "--pending"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        if let Some(a) = v["items"].as_array().and_then(|i| {
            i.iter()
                .find(|a| a["statement"] == "CREATE TABLE denied_by_cli (id int)")
        }) {
            id = a["id"].as_str().unwrap().to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = home.run(&["deny", &id, "--reason", "use a migration"]);
    assert!(out.ok(), "{out:?}");
    let e = held.await.unwrap().expect_err("denied");
    assert!(
        gatehouse_tests::message(&e).contains("use a migration"),
        "{e}"
    );
}
