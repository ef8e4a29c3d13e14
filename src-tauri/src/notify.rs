//! Notifications: while someone is signed in, the app looks at the approvals they may see every
//! few seconds and tells them, with an OS notification, when a statement or an access request
//! starts waiting on them (they are one of its approvers) and when one of their own is decided;
//! the tray shows how many wait on them. Clicking a notification opens that approval.
//!
//! [`Watch::changes`] decides what to say from two successive looks (pure, unit-tested); the
//! first look after a sign-in only learns what is there, so starting the app does not replay
//! old news. A sign-in takes that first look before it returns ([`look`]): waiting for the loop's
//! next turn left a window (five seconds) in which a new request was only learned. [`deliver`] is
//! the one way a notification leaves: the OS's notification service (freedesktop D-Bus on Linux),
//! and, when `GATEHOUSE_NOTIFY_LOG` names a file, a JSON line there too: the hook through which
//! tests see exactly what a person would have been shown.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use gatehouse_client::api::Approval;
use gatehouse_client::duration::human_duration;
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager};

use crate::state::AppState;

/// How often the approvals are looked at (`GATEHOUSE_NOTIFY_INTERVAL_MS` overrides it).
const INTERVAL: Duration = Duration::from_secs(5);

/// One notification, as shown and as the test hook records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    pub title: String,
    pub body: String,
    /// The approval it is about: clicking it opens `#/approvals?id=…`.
    pub approval_id: String,
}

/// What the last look saw: each approval's state, by id.
#[derive(Debug, Default)]
pub struct Watch {
    seen: HashMap<String, String>,
    primed: bool,
}

fn field<'a>(a: &'a Approval, name: &str) -> Option<&'a serde_json::Value> {
    a.extra.get(name).filter(|v| !v.is_null())
}

/// "ana asks for prod for 1h (ticket 4312)" or "ana's statement on prod: DELETE …".
fn describe(a: &Approval) -> String {
    match field(a, "kind").and_then(|k| k.as_str()) {
        Some("access") => {
            let access = field(a, "access");
            let seconds = access
                .and_then(|d| d["duration_seconds"].as_i64())
                .unwrap_or(0);
            let role = access
                .and_then(|d| d["role"].as_str())
                .map(|r| format!(" as {r}"))
                .unwrap_or_default();
            let reason = field(a, "reason").and_then(|r| r.as_str()).unwrap_or("");
            format!(
                "{} asks for {} for {}{role}: {reason}",
                a.identity,
                a.environment,
                human_duration(seconds)
            )
        }
        _ => {
            let mut sql: String = a.statement.chars().take(80).collect();
            if a.statement.chars().count() > 80 {
                sql.push('…');
            }
            format!("{} on {}: {sql}", a.identity, a.environment)
        }
    }
}

impl Watch {
    /// Forgets everything (a new sign-in): the next look only learns.
    pub fn reset(&mut self) {
        self.seen.clear();
        self.primed = false;
    }

    /// What to tell `me` after a look at `items` (the approvals they may see), and how many wait
    /// on them now.
    pub fn changes(&mut self, me: &str, items: &[Approval]) -> (Vec<Notification>, usize) {
        let mine = |a: &Approval| a.identity.eq_ignore_ascii_case(me);
        let waiting = items
            .iter()
            .filter(|a| a.state == "pending" && !mine(a))
            .count();
        let mut out = Vec::new();
        for a in items {
            let before = self.seen.get(&a.id).map(String::as_str);
            if self.primed && before != Some(a.state.as_str()) {
                let access = field(a, "kind").and_then(|k| k.as_str()) == Some("access");
                let what = if access {
                    "access request"
                } else {
                    "statement"
                };
                if a.state == "pending" && before.is_none() && !mine(a) {
                    out.push(Notification {
                        title: if access {
                            "An access request waits for you".to_string()
                        } else {
                            "A statement waits for you".to_string()
                        },
                        body: describe(a),
                        approval_id: a.id.clone(),
                    });
                } else if mine(a) && before == Some("pending") {
                    let by = field(a, "decided_by")
                        .and_then(|v| v.as_str())
                        .unwrap_or("an approver");
                    let note = field(a, "decision_reason")
                        .and_then(|v| v.as_str())
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default();
                    let verb = match a.state.as_str() {
                        "approved" | "used" => "approved",
                        "denied" => "denied",
                        "expired" => "expired",
                        "withdrawn" => "withdrawn",
                        other => other,
                    };
                    out.push(Notification {
                        title: format!("Your {what} on {} was {verb}", a.environment),
                        body: if verb == "expired" || verb == "withdrawn" {
                            describe(a)
                        } else {
                            format!("by {by}{note}")
                        },
                        approval_id: a.id.clone(),
                    });
                }
            }
            self.seen.insert(a.id.clone(), a.state.clone());
        }
        self.primed = true;
        (out, waiting)
    }
}

/// Shows a notification: the test hook's file first (if set), then the OS.
pub fn deliver(app: &AppHandle, n: &Notification) {
    if let Some(path) = std::env::var_os("GATEHOUSE_NOTIFY_LOG").filter(|p| !p.is_empty()) {
        let line = serde_json::to_string(n).unwrap_or_default();
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot record a notification in GATEHOUSE_NOTIFY_LOG");
        }
    }
    let (app, n) = (app.clone(), n.clone());
    // D-Bus calls block; the click is waited for on the same thread, for as long as the
    // notification stays up (until it is clicked or closed).
    std::thread::spawn(move || {
        if let Err(e) = os::show(&app, &n) {
            tracing::debug!(error = %e, "no OS notification service");
        }
    });
}

/// Opens an approval in the window: the UI navigates on `open-approval`.
pub fn open_approval(app: &AppHandle, id: &str) {
    crate::tray::show_main(app);
    if let Err(e) = app.emit("open-approval", id) {
        tracing::debug!(error = %e, "cannot send open-approval");
    }
}

#[cfg(target_os = "linux")]
mod os {
    //! The freedesktop notification service over the session bus: `Notify` with a default
    //! action; the `ActionInvoked` signal for that notification opens the approval, and its
    //! `NotificationClosed` ends the wait.
    use std::collections::HashMap;

    use tauri::AppHandle;
    use zbus::blocking::{Connection, MessageIterator};
    use zbus::zvariant::Value;
    use zbus::MatchRule;

    use super::Notification;

    const DEST: &str = "org.freedesktop.Notifications";
    const PATH: &str = "/org/freedesktop/Notifications";

    pub fn show(app: &AppHandle, n: &Notification) -> zbus::Result<()> {
        let conn = Connection::session()?;
        let rule = MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(DEST)?
            .build();
        // Subscribed before the notification exists, so a quick click is not missed.
        let signals = MessageIterator::for_match_rule(rule, &conn, Some(16))?;
        let hints: HashMap<&str, Value<'_>> = HashMap::new();
        let reply = conn.call_method(
            Some(DEST),
            PATH,
            Some(DEST),
            "Notify",
            &(
                "Gatehouse",
                0u32,
                "",
                n.title.as_str(),
                n.body.as_str(),
                vec!["default", "Open"],
                hints,
                -1i32,
            ),
        )?;
        let id: u32 = reply.body().deserialize()?;
        // Until this notification is clicked or closed (expired, dismissed), then the thread
        // ends.
        for msg in signals {
            let msg = msg?;
            let member = msg.header().member().map(|m| m.to_string());
            match member.as_deref() {
                Some("ActionInvoked") => {
                    if let Ok((invoked, _action)) = msg.body().deserialize::<(u32, String)>() {
                        if invoked == id {
                            super::open_approval(app, &n.approval_id);
                            break;
                        }
                    }
                }
                Some("NotificationClosed") => {
                    if let Ok((closed, _reason)) = msg.body().deserialize::<(u32, u32)>() {
                        if closed == id {
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use tauri::AppHandle;

    use super::Notification;

    /// Other systems: only the test hook and the tray count until their notification service
    /// is wired in.
    pub fn show(_app: &AppHandle, _n: &Notification) -> Result<(), std::io::Error> {
        Ok(())
    }
}

/// The watcher's memory, shared by its loop and by a sign-in, which takes the first look at
/// once: a request made between a sign-in and the loop's next look is news, not something the
/// first look only learns.
#[derive(Default)]
pub struct Watcher(tokio::sync::Mutex<Looked>);

#[derive(Default)]
struct Looked {
    /// `identity@gateway` the watch is about.
    who: Option<String>,
    watch: Watch,
}

/// Looks at the approvals once, tells the person what is new and updates the tray.
pub async fn look(app: &AppHandle) {
    let state = app.state::<AppState>();
    let mut looked = state.watcher().0.lock().await;
    let Some((handle, me)) = state.watcher_session().await else {
        looked.who = None;
        return;
    };
    let who = format!("{}@{}", me, handle.snapshot().await.gateway);
    if looked.who.as_deref() != Some(who.as_str()) {
        looked.watch.reset();
        looked.who = Some(who);
    }
    let items = match handle
        .call(|api, token| async move { api.approvals(&token, None).await })
        .await
    {
        Ok(items) => items,
        Err(e) => {
            tracing::debug!(error = %e, "cannot look at the approvals");
            return;
        }
    };
    let (news, waiting) = looked.watch.changes(&me, &items);
    drop(looked);
    let before = state.waiting();
    state.set_waiting(waiting);
    for n in &news {
        tracing::info!(title = %n.title, approval = %n.approval_id, "notification");
        deliver(app, n);
    }
    if before != waiting {
        crate::tray::refresh(app).await;
    }
}

/// Watches the approvals for the life of the app.
pub async fn run(app: AppHandle) {
    let interval = std::env::var("GATEHOUSE_NOTIFY_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(INTERVAL);
    loop {
        tokio::time::sleep(interval).await;
        look(&app).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(id: &str, who: &str, state: &str, extra: serde_json::Value) -> Approval {
        let mut v = serde_json::json!({
            "id": id, "state": state, "statement": "DELETE FROM t", "identity": who,
            "environment": "prod",
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn approvers_hear_of_new_requests_and_requesters_of_decisions() {
        let mut w = Watch::default();
        let old = approval("a0", "bob", "pending", serde_json::json!({}));
        // The first look only learns.
        let (news, waiting) = w.changes("root", std::slice::from_ref(&old));
        assert!(news.is_empty());
        assert_eq!(waiting, 1);
        let access = approval(
            "a1",
            "ana",
            "pending",
            serde_json::json!({"kind": "access", "reason": "ticket 4312",
                "access": {"duration_seconds": 3600, "role": null}}),
        );
        let mine = approval("a2", "root", "pending", serde_json::json!({}));
        let (news, waiting) = w.changes("root", &[old.clone(), access.clone(), mine.clone()]);
        assert_eq!(waiting, 2, "root's own request does not wait on root");
        assert_eq!(
            news,
            vec![Notification {
                title: "An access request waits for you".into(),
                body: "ana asks for prod for 1h: ticket 4312".into(),
                approval_id: "a1".into(),
            }]
        );
        // Nothing new: nothing said.
        assert!(w
            .changes("root", &[old.clone(), access.clone(), mine.clone()])
            .0
            .is_empty());
        let decided = approval(
            "a2",
            "root",
            "denied",
            serde_json::json!({"decided_by": "bob", "decision_reason": "use the replica"}),
        );
        let (news, waiting) = w.changes("root", &[old, access, decided]);
        assert_eq!(waiting, 2);
        assert_eq!(news.len(), 1);
        assert_eq!(news[0].title, "Your statement on prod was denied");
        assert_eq!(news[0].body, "by bob: use the replica");
        w.reset();
        assert!(w.changes("root", &[]).0.is_empty());
    }
}
