//! A private D-Bus session bus (`dbus-daemon`) with a stand-in for the desktop's notification
//! service (`org.freedesktop.Notifications`): the app sends its notifications here as it would
//! to a real desktop, the test reads what was shown and clicks one (the service's
//! `ActionInvoked` signal), as a person would.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use zbus::object_server::SignalContext;
use zbus::zvariant::OwnedValue;

use crate::spawn_tied;

const NAME: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";

/// One notification as the service got it.
#[derive(Debug, Clone)]
pub struct Shown {
    pub id: u32,
    pub summary: String,
    pub body: String,
    pub actions: Vec<String>,
}

struct Service {
    shown: Arc<Mutex<Vec<Shown>>>,
    next: AtomicU32,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Service {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        _app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        _hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        self.shown
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Shown {
                id,
                summary,
                body,
                actions,
            });
        id
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["actions".into(), "body".into()]
    }

    fn close_notification(&self, _id: u32) {}

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "gatehouse-test".into(),
            "gatehouse".into(),
            "1".into(),
            "1.2".into(),
        )
    }

    #[zbus(signal)]
    async fn action_invoked(
        ctxt: &SignalContext<'_>,
        id: u32,
        action_key: &str,
    ) -> zbus::Result<()>;
}

/// The private bus and the stand-in service on it; both end when this is dropped.
pub struct NotificationBus {
    /// For `DBUS_SESSION_BUS_ADDRESS`.
    pub address: String,
    shown: Arc<Mutex<Vec<Shown>>>,
    conn: zbus::Connection,
    daemon: Child,
}

impl NotificationBus {
    pub async fn start() -> NotificationBus {
        assert!(
            std::path::Path::new("/usr/bin/dbus-daemon").exists(),
            "/usr/bin/dbus-daemon is missing: apt-get install dbus"
        );
        let mut daemon = spawn_tied(
            "/usr/bin/dbus-daemon",
            &["--session", "--nofork", "--print-address=1"],
            &[],
            None,
            "KILL",
            Stdio::piped(),
            Stdio::null(),
        );
        let stdout = daemon.stdout.take().expect("dbus-daemon stdout");
        let address = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            line.trim().to_string()
        })
        .await
        .expect("dbus-daemon address");
        assert!(!address.is_empty(), "dbus-daemon printed no address");
        let shown: Arc<Mutex<Vec<Shown>>> = Default::default();
        let service = Service {
            shown: shown.clone(),
            next: AtomicU32::new(0),
        };
        let conn = zbus::connection::Builder::address(address.as_str())
            .and_then(|b| b.name(NAME))
            .and_then(|b| b.serve_at(PATH, service))
            .expect("the notification service's connection")
            .build()
            .await
            .expect("the notification service on the bus");
        NotificationBus {
            address,
            shown,
            conn,
            daemon,
        }
    }

    /// What was shown so far, in order.
    pub fn shown(&self) -> Vec<Shown> {
        self.shown.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Clicks notification `id` (its default action), as a person would.
    pub async fn click(&self, id: u32) -> zbus::Result<()> {
        let iface = self
            .conn
            .object_server()
            .interface::<_, Service>(PATH)
            .await?;
        Service::action_invoked(iface.signal_context(), id, "default").await
    }
}

impl Drop for NotificationBus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}
