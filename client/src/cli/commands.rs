//! What each `gatehouse` subcommand does: thin calls into the library plus printing. Anything a
//! desktop app would also need lives in the library, not here.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use gatehouse_client::api::{AccessRequest, Approval, AuditQuery};
use gatehouse_client::duration::{human_duration, parse_duration};
use gatehouse_client::login::{self, Credentials, LoginTarget, TrustChoice};
use gatehouse_client::session::LoginMethod;
use gatehouse_client::{
    start_stable, Error, PortBook, Result, SessionHandle, SessionStore, TunnelManager, TunnelSpec,
};

use super::output::{cell, clip, Out, Table};
use super::{
    ApprovalsArgs, AuditArgs, Command, ConnectArgs, DecideArgs, DenyArgs, LoginArgs, RequestArgs,
    WithdrawArgs,
};

pub async fn run(cmd: Command, out: Out) -> Result<()> {
    let store = SessionStore::from_env()?;
    match cmd {
        Command::Login(a) => login_cmd(store, a, out).await,
        Command::Logout => logout(store, out).await,
        Command::Whoami => whoami(store, out).await,
        Command::Envs => envs(store, out).await,
        Command::Connect(a) => connect(store, a, out).await,
        Command::Approvals(a) => approvals(store, a, out).await,
        Command::Approve(DecideArgs { id, reason }) => decide(store, id, reason, true, out).await,
        Command::Deny(DenyArgs { id, reason }) => decide(store, id, Some(reason), false, out).await,
        Command::Request(a) => request(store, a, out).await,
        Command::Requests => requests(store, out).await,
        Command::Withdraw(WithdrawArgs { id, reason }) => withdraw(store, id, reason, out).await,
        Command::Audit(a) => audit(store, a, out).await,
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
}

/// Reads one line from stdin (trailing newline dropped).
fn read_stdin_line(what: &'static str) -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim_end_matches(['\r', '\n']).to_string();
    if line.is_empty() {
        return Err(Error::invalid(what, "nothing on standard input"));
    }
    Ok(line)
}

async fn login_cmd(store: SessionStore, a: LoginArgs, out: Out) -> Result<()> {
    let previous = {
        let s = store.clone();
        blocking(move || Ok(s.load().ok().flatten())).await?
    };
    let gateway = match a
        .gateway
        .or_else(|| previous.as_ref().map(|p| p.gateway.clone()))
    {
        Some(g) => g,
        None => {
            return Err(Error::invalid(
                "arguments",
                "--gateway URL is needed for the first login",
            ))
        }
    };
    let trust = if a.insecure {
        TrustChoice::Insecure
    } else if let Some(f) = a.tls_fingerprint {
        TrustChoice::Fingerprint(f)
    } else if let Some(path) = a.ca_cert {
        let pem = std::fs::read_to_string(&path).map_err(|source| Error::File {
            action: "read",
            path: path.clone(),
            source,
        })?;
        TrustChoice::Ca(pem)
    } else {
        TrustChoice::Auto
    };
    let creds = if let Some(user) = a.user {
        let password = if std::io::stdin().is_terminal() {
            let prompt = format!("Password for {user}: ");
            blocking(move || rpassword::prompt_password(prompt).map_err(Error::Io)).await?
        } else {
            blocking(|| read_stdin_line("password")).await?
        };
        Credentials::Password {
            username: user,
            password,
        }
    } else if let Some(token) = a.token {
        let token = if token == "-" {
            blocking(|| read_stdin_line("token")).await?
        } else {
            token
        };
        Credentials::Token(token)
    } else {
        let no_browser = a.no_browser;
        Credentials::Sso {
            open: Box::new(move |url: &str| open_browser(url, no_browser)),
        }
    };
    let target = LoginTarget {
        gateway,
        postgres: a.postgres,
        trust,
    };
    let confirm = |p: &gatehouse_client::tls::Probe| confirm_certificate(p);
    let logged_in = login::login(&target, creds, &confirm).await?;
    let session = logged_in.session;
    // Revoke the session this login replaces, so it does not linger at the gateway.
    if let Some(prev) = previous.filter(|p| p.method != LoginMethod::ServiceToken) {
        if prev.token != session.token {
            if let Ok(api) = gatehouse_client::api::ApiClient::new(&prev.gateway, &prev.trust) {
                let _ = tokio::time::timeout(Duration::from_secs(5), api.logout(&prev.token)).await;
            }
        }
    }
    let where_ = {
        let (s, copy) = (store.clone(), session.clone());
        blocking(move || s.save(&copy)).await?
    };
    if out.json {
        out.print_json(&serde_json::json!({
            "gateway": session.gateway,
            "postgres": session.postgres,
            "identity": session.identity,
            "method": session.method,
            "expires_at": session.expires_at,
            "stored_in": where_,
            "notes": logged_in.notes,
        }));
    } else {
        for n in &logged_in.notes {
            eprintln!("note: {n}");
        }
        println!(
            "Logged in to {} as {}.",
            session.gateway,
            out.bold(&session.identity)
        );
        if let Some(exp) = session.expires_at {
            let renew = if session.refresh_token.is_some() {
                " (renewed automatically while you use it)"
            } else {
                ""
            };
            println!(
                "Session valid until {}{renew}.",
                exp.format("%Y-%m-%d %H:%M UTC")
            );
        }
        println!("Session stored in {where_}.");
        println!("Next: `gatehouse envs`, then `gatehouse connect ENV`.");
    }
    Ok(())
}

/// Shows the SSO URL and opens the browser (see [`login::open_in_browser`]).
fn open_browser(url: &str, no_browser: bool) {
    eprintln!("Log in in your browser. If it does not open, visit this URL:\n\n  {url}\n");
    if no_browser {
        return;
    }
    if let Err(e) = login::open_in_browser(url) {
        eprintln!("({e}; open the URL above yourself)");
    }
}

/// Asks at the terminal whether to trust a certificate that cannot be verified; refuses when
/// there is no terminal to ask at.
fn confirm_certificate(p: &gatehouse_client::tls::Probe) -> bool {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return false;
    }
    eprintln!(
        "The gateway's TLS certificate is not signed by a known authority.\n  sha256 fingerprint: {}\nCompare it with the gateway's (`openssl x509 -noout -fingerprint -sha256 -in DATA_DIR/tls-cert.pem`).",
        p.fingerprint
    );
    eprint!("Trust this certificate for this gateway? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok()
        && matches!(answer.trim(), "y" | "Y" | "yes")
}

async fn logout(store: SessionStore, out: Out) -> Result<()> {
    let s2 = store.clone();
    let Some(session) = blocking(move || s2.load()).await? else {
        if out.json {
            out.print_json(&serde_json::json!({"logged_out": false}));
        } else {
            println!("Not logged in.");
        }
        return Ok(());
    };
    let mut revoked = false;
    let mut warning = None;
    if session.method != LoginMethod::ServiceToken {
        let api = gatehouse_client::api::ApiClient::new(&session.gateway, &session.trust)?;
        match api.logout(&session.token).await {
            Ok(()) => revoked = true,
            // Already expired or revoked: nothing left to revoke.
            Err(Error::LoginRefused(_)) => {}
            Err(e) => warning = Some(e.to_string()),
        }
    }
    blocking(move || store.clear()).await?;
    if out.json {
        out.print_json(&serde_json::json!({
            "logged_out": true, "revoked": revoked, "warning": warning,
        }));
    } else {
        if let Some(w) = warning {
            eprintln!("warning: the gateway could not revoke the session ({w}); it was forgotten here and will expire on its own");
        }
        println!("Logged out of {} ({}).", session.gateway, session.identity);
    }
    Ok(())
}

async fn whoami(store: SessionStore, out: Out) -> Result<()> {
    let h = SessionHandle::load(store).await?;
    let who = h.call(|api, t| async move { api.whoami(&t).await }).await?;
    let s = h.snapshot().await;
    if out.json {
        out.print_json(&serde_json::json!({
            "name": who.name, "kind": who.kind, "groups": who.groups,
            "on_behalf_of": who.on_behalf_of, "admin": who.admin,
            "gateway": s.gateway, "postgres": s.postgres, "method": s.method,
            "expires_at": s.expires_at, "refresh_expires_at": s.refresh_expires_at,
        }));
        return Ok(());
    }
    println!("{} ({})", out.bold(&who.name), who.kind);
    println!("  gateway   {}  (postgres {})", s.gateway, s.postgres);
    if !who.groups.is_empty() {
        println!("  groups    {}", who.groups.join(", "));
    }
    if let Some(b) = &who.on_behalf_of {
        println!("  for       {b}");
    }
    if who.admin {
        println!("  admin     yes");
    }
    match (s.expires_at, s.refresh_expires_at) {
        (Some(e), Some(r)) => println!(
            "  session   token until {}, renewable until {}",
            e.format("%Y-%m-%d %H:%M UTC"),
            r.format("%Y-%m-%d %H:%M UTC")
        ),
        (Some(e), None) => println!("  session   until {}", e.format("%Y-%m-%d %H:%M UTC")),
        _ => println!("  session   service-account token"),
    }
    Ok(())
}

async fn envs(store: SessionStore, out: Out) -> Result<()> {
    let h = SessionHandle::load(store).await?;
    let list = h
        .call(|api, t| async move { api.environments(&t).await })
        .await?;
    if out.json {
        out.print_json(&serde_json::json!({ "items": list }));
        return Ok(());
    }
    if list.is_empty() {
        println!("No environments: you have no grant for any. Ask an administrator.");
        return Ok(());
    }
    let mut t = Table::new(&["NAME", "TIER", "CONNECT", "DESCRIPTION", "TAGS"]);
    for e in &list {
        let tier = match e.tier.as_str() {
            "production" => out.red(&e.tier),
            "staging" => out.yellow(&e.tier),
            _ => out.green(&e.tier),
        };
        t.row(vec![
            e.name.clone(),
            tier,
            if e.can_connect {
                out.green("yes")
            } else {
                out.dim("no")
            },
            e.description.clone().unwrap_or_default(),
            e.tags.join(","),
        ]);
    }
    t.print(&out);
    Ok(())
}

async fn connect(store: SessionStore, a: ConnectArgs, out: Out) -> Result<()> {
    let book = PortBook::new(store.dir());
    let h = SessionHandle::load(store).await?;
    // Fail now, with a clear message, rather than at the first psql.
    let list = h
        .call(|api, t| async move { api.environments(&t).await })
        .await?;
    let Some(env) = list.iter().find(|e| e.name == a.environment) else {
        let names: Vec<&str> = list.iter().map(|e| e.name.as_str()).collect();
        return Err(Error::NotFound(format!(
            "no environment {:?} that you may use; yours: {}",
            a.environment,
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    };
    let tier = env.tier.clone();
    let _refresher = h.spawn_refresher();
    let manager = TunnelManager::new(h.clone());
    let mut spec = TunnelSpec::new(&a.environment);
    spec.database = a.database;
    let gateway = h.snapshot().await.gateway;
    let info = start_stable(&manager, &book, &gateway, spec, a.port).await?;
    if out.json {
        // One line, so scripts can read it as soon as the tunnel is ready.
        match serde_json::to_string(&info) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
    } else {
        println!(
            "Tunnel to {} ({tier}) ready on {}:{} as {}.",
            out.bold(&info.environment),
            info.host,
            info.port,
            info.user
        );
        println!("  connection string: {}", info.url);
        println!("  {}", info.psql);
        println!("No password needed. Press Ctrl-C to close the tunnel.");
    }
    let _ = std::io::stdout().flush();
    wait_for_shutdown().await;
    manager.stop_all();
    // Closed by the person: its port stays remembered for next time.
    if let Err(e) = book.closed(&gateway, &info.environment) {
        tracing::debug!(error = %e, "cannot note the closed tunnel");
    }
    if !out.json {
        eprintln!("Tunnel closed.");
    }
    Ok(())
}

async fn wait_for_shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn approvals(store: SessionStore, a: ApprovalsArgs, out: Out) -> Result<()> {
    let h = SessionHandle::load(store).await?;
    let state = if a.pending {
        Some("pending".to_string())
    } else {
        a.state
    };
    let list = h
        .call(|api, t| {
            let (state, kind) = (state.clone(), a.kind.clone());
            async move {
                api.approvals_of_kind(&t, state.as_deref(), kind.as_deref())
                    .await
            }
        })
        .await?;
    if out.json {
        out.print_json(&serde_json::json!({ "items": list }));
        return Ok(());
    }
    if list.is_empty() {
        println!(
            "No {}approval requests.",
            if state.is_some() { "matching " } else { "" }
        );
        return Ok(());
    }
    let mut t = Table::new(&["ID", "STATE", "IDENTITY", "ENVIRONMENT", "STATEMENT"]);
    for x in &list {
        let st = match x.state.as_str() {
            "pending" => out.yellow(&x.state),
            "approved" => out.green(&x.state),
            "denied" => out.red(&x.state),
            _ => x.state.clone(),
        };
        t.row(vec![
            x.id.clone(),
            st,
            x.identity.clone(),
            x.environment.clone(),
            clip(&x.statement, 70),
        ]);
    }
    t.print(&out);
    Ok(())
}

async fn decide(
    store: SessionStore,
    id: String,
    reason: Option<String>,
    approve: bool,
    out: Out,
) -> Result<()> {
    let h = SessionHandle::load(store).await?;
    let answer = h
        .call(|api, t| {
            let (id, reason) = (id.clone(), reason.clone());
            async move { api.decide(&t, &id, approve, reason.as_deref()).await }
        })
        .await?;
    if out.json {
        out.print_json(&answer);
    } else if answer["kind"] == "access" && approve {
        let glass = answer["access"]["break_glass"] == true;
        println!(
            "Access request {id} approved{}: {} may connect to {} until {}.",
            if glass { " (break-glass)" } else { "" },
            cell(&answer["identity"]),
            cell(&answer["environment"]),
            unix_time(&answer["grant_expires_at"]),
        );
    } else {
        println!(
            "{} {} {}.",
            if answer["kind"] == "access" {
                "Access request"
            } else {
                "Approval"
            },
            id,
            if approve { "approved" } else { "denied" }
        );
    }
    Ok(())
}

/// A Unix time from the API as `YYYY-MM-DD HH:MM:SS UTC`; empty when absent.
fn unix_time(v: &serde_json::Value) -> String {
    v.as_i64()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

async fn request(store: SessionStore, a: RequestArgs, out: Out) -> Result<()> {
    let duration_seconds = parse_duration(&a.duration)?;
    let h = SessionHandle::load(store).await?;
    let req = AccessRequest {
        environment: a.environment.clone(),
        duration_seconds,
        role: a.role,
        reason: a.reason.clone(),
    };
    let made = h
        .call(|api, t| {
            let req = req.clone();
            async move { api.request_access(&t, &req).await }
        })
        .await?;
    if !a.break_glass {
        if out.json {
            out.print_json(&made);
        } else {
            println!(
                "Requested access to {} for {} ({}). An approver decides it; `gatehouse requests` shows its state.",
                a.environment,
                human_duration(duration_seconds as i64),
                made.id
            );
        }
        return Ok(());
    }
    let answer = h
        .call(|api, t| {
            let (id, reason) = (made.id.clone(), a.reason.clone());
            async move { api.decide(&t, &id, true, Some(&reason)).await }
        })
        .await?;
    if out.json {
        out.print_json(&answer);
    } else {
        println!(
            "{} Break-glass access to {} until {} ({}); it is announced and reviewed.",
            out.red("BREAK-GLASS:"),
            a.environment,
            unix_time(&answer["grant_expires_at"]),
            made.id
        );
    }
    Ok(())
}

async fn requests(store: SessionStore, out: Out) -> Result<()> {
    let h = SessionHandle::load(store).await?;
    let mine = h
        .call(|api, t| async move { api.my_access_requests(&t).await })
        .await?;
    let offered = h
        .call(|api, t| async move { api.requestable_environments(&t).await })
        .await?;
    if out.json {
        out.print_json(&serde_json::json!({ "items": mine, "environments": offered }));
        return Ok(());
    }
    if mine.is_empty() {
        println!("You have made no access requests.");
    } else {
        let mut t = Table::new(&[
            "ID",
            "STATE",
            "ENVIRONMENT",
            "FOR",
            "ROLE",
            "UNTIL",
            "DECIDED BY",
        ]);
        for x in &mine {
            t.row(access_row(x, &out));
        }
        t.print(&out);
    }
    if !offered.is_empty() {
        println!();
        let mut t = Table::new(&["REQUESTABLE", "TIER", "AT MOST", "ROLES", "NOW"]);
        for e in &offered {
            t.row(vec![
                e.name.clone(),
                e.tier.clone(),
                human_duration(e.max_duration_seconds as i64),
                e.roles.join(", "),
                match (e.reachable, e.break_glass) {
                    (true, _) => out.green("reachable"),
                    (false, true) => "request (break-glass allowed)".into(),
                    (false, false) => "request".into(),
                },
            ]);
        }
        t.print(&out);
    }
    Ok(())
}

fn access_row(x: &Approval, out: &Out) -> Vec<String> {
    let access = x.extra.get("access").cloned().unwrap_or_default();
    let glass = access["break_glass"] == true;
    let state = match x.state.as_str() {
        "pending" => out.yellow(&x.state),
        "approved" if glass => out.red("approved (break-glass)"),
        "approved" => out.green(&x.state),
        "denied" => out.red(&x.state),
        _ => x.state.clone(),
    };
    let until = if x.state == "approved" {
        unix_time(
            x.extra
                .get("grant_expires_at")
                .unwrap_or(&serde_json::Value::Null),
        )
    } else {
        String::new()
    };
    vec![
        x.id.clone(),
        state,
        x.environment.clone(),
        access["duration_seconds"]
            .as_i64()
            .map(human_duration)
            .unwrap_or_default(),
        cell(&access["role"]),
        until,
        x.extra.get("decided_by").map(cell).unwrap_or_default(),
    ]
}

async fn withdraw(store: SessionStore, id: String, reason: Option<String>, out: Out) -> Result<()> {
    let h = SessionHandle::load(store).await?;
    let answer = h
        .call(|api, t| {
            let (id, reason) = (id.clone(), reason.clone());
            async move {
                api.withdraw_access_request(&t, &id, reason.as_deref())
                    .await
            }
        })
        .await?;
    if out.json {
        out.print_json(&answer);
    } else {
        println!("Access request {id} withdrawn.");
    }
    Ok(())
}

async fn audit(store: SessionStore, a: AuditArgs, out: Out) -> Result<()> {
    let h = SessionHandle::load(store).await?;
    let q = AuditQuery {
        q: a.query,
        identity: a.identity,
        environment: a.environment,
        event: a.event,
        kind: a.kind,
        from: a.from,
        to: a.to,
        cursor: a.cursor,
        limit: Some(a.limit.clamp(1, 1000)),
    };
    let page = h
        .call(|api, t| {
            let q = q.clone();
            async move { api.audit(&t, &q).await }
        })
        .await?;
    if out.json {
        out.print_json(
            &serde_json::json!({ "items": page.items, "next_cursor": page.next_cursor }),
        );
        return Ok(());
    }
    if page.items.is_empty() {
        println!("No audit records match.");
        return Ok(());
    }
    let mut t = Table::new(&[
        "ID",
        "TIME (UTC)",
        "EVENT",
        "IDENTITY",
        "ENV",
        "DECISION",
        "RULE",
        "ROWS",
        "APPROVAL / STATEMENT",
    ]);
    for r in &page.items {
        let decision = cell(&r["decision"]);
        let decision = match decision.as_str() {
            "deny" | "denied" => out.red(&decision),
            "review" => out.yellow(&decision),
            _ => decision,
        };
        // Rule `default` means "no rule matched": noise in a table.
        let rule = match cell(&r["rule"]) {
            d if d == "default" => String::new(),
            rule => rule,
        };
        let statement = match (cell(&r["statement"]), cell(&r["sqlstate"])) {
            (s, e) if !e.is_empty() => format!("{} [{e}]", clip(&s, 50)),
            (s, _) => clip(&s, 60),
        };
        let what = match cell(&r["approval_id"]) {
            a if a.is_empty() => statement,
            a if statement.is_empty() => a,
            a => format!("{a}: {statement}"),
        };
        t.row(vec![
            cell(&r["id"]),
            short_time(&cell(&r["ts"])),
            cell(&r["event"]),
            cell(&r["identity"]),
            cell(&r["environment"]),
            decision,
            rule,
            cell(&r["rows"]),
            what,
        ]);
    }
    t.print(&out);
    if let Some(c) = page.next_cursor {
        println!("{}", out.dim(&format!("more: add --cursor {c}")));
    }
    Ok(())
}

/// An RFC 3339 UTC timestamp as `YYYY-MM-DD HH:MM:SS` (the table's column says UTC); anything
/// else unchanged.
fn short_time(ts: &str) -> String {
    match (ts.get(..10), ts.get(11..19)) {
        (Some(day), Some(time)) if ts.as_bytes().get(10) == Some(&b'T') && ts.ends_with('Z') => {
            format!("{day} {time}")
        }
        _ => ts.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::short_time;

    #[test]
    fn audit_times_are_shortened_to_the_second() {
        assert_eq!(
            short_time("2026-12-04T18:14:17.471042Z"),
            "2026-12-04 18:14:17"
        );
        assert_eq!(short_time("2026-12-04T18:14:17Z"), "2026-12-04 18:14:17");
        assert_eq!(short_time("yesterday"), "yesterday");
        assert_eq!(short_time(""), "");
    }
}
