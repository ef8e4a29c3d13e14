//! Stable local ports: the local port each environment's tunnel used last, per gateway, so an
//! IDE's saved connection (`127.0.0.1:6543`) keeps working run after run, and which tunnels were
//! open when the desktop app quit (to reopen them at its next start). Kept in
//! `<config dir>/ports.json` (private, like the session file); a missing or unreadable file is
//! an empty book, never a reason not to connect.
//!
//! [`start_stable`] is how the CLI and the desktop app open a tunnel: the port the person chose,
//! else the remembered one, else a free one; then it remembers what it got. A taken port is an
//! [`Error::PortTaken`] that says what to do, never a silent switch to another port (the IDE
//! would then talk to nothing, or to something else).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::tunnel::{TunnelInfo, TunnelManager, TunnelSpec};

const FILE_NAME: &str = "ports.json";

/// What is remembered about one environment at one gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    pub port: u16,
    /// A tunnel to it was open when the app last ran (closed by the person: false).
    #[serde(default)]
    pub open: bool,
    /// The database the tunnel was opened for, if not the environment's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Book {
    /// Gateway URL → environment → what is remembered.
    #[serde(default)]
    gateways: BTreeMap<String, BTreeMap<String, Remembered>>,
    /// Reopen the tunnels that were open at the next start (desktop app); on unless turned off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reopen_tunnels: Option<bool>,
}

/// The remembered ports of this machine's user.
#[derive(Debug, Clone)]
pub struct PortBook {
    dir: PathBuf,
}

impl PortBook {
    /// The book in `dir` (the session store's directory).
    pub fn new(dir: &Path) -> PortBook {
        PortBook {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The book as stored; an unreadable one is empty (it only ever holds conveniences).
    fn read(&self) -> Book {
        match std::fs::read_to_string(self.path()) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::warn!(path = %self.path().display(), error = %e, "ignoring an unreadable ports file");
                Book::default()
            }),
            Err(_) => Book::default(),
        }
    }

    fn write(&self, book: &Book) -> Result<()> {
        let json =
            serde_json::to_vec_pretty(book).map_err(|e| Error::invalid("ports", e.to_string()))?;
        crate::store::write_private(&self.dir, &self.path(), &json)
    }

    fn update(&self, f: impl FnOnce(&mut Book)) -> Result<()> {
        let mut book = self.read();
        f(&mut book);
        self.write(&book)
    }

    /// What is remembered for `environment` at `gateway`.
    pub fn get(&self, gateway: &str, environment: &str) -> Option<Remembered> {
        self.read()
            .gateways
            .get(gateway)
            .and_then(|envs| envs.get(environment))
            .cloned()
    }

    /// Remembers the port a tunnel to `environment` got, and that it is open.
    pub fn opened(
        &self,
        gateway: &str,
        environment: &str,
        port: u16,
        database: Option<String>,
    ) -> Result<()> {
        self.update(|b| {
            b.gateways.entry(gateway.to_string()).or_default().insert(
                environment.to_string(),
                Remembered {
                    port,
                    open: true,
                    database,
                },
            );
        })
    }

    /// The person closed the tunnel: keep its port, do not reopen it.
    pub fn closed(&self, gateway: &str, environment: &str) -> Result<()> {
        self.update(|b| {
            if let Some(r) = b
                .gateways
                .get_mut(gateway)
                .and_then(|envs| envs.get_mut(environment))
            {
                r.open = false;
            }
        })
    }

    /// Every tunnel at `gateway` closed by the person at once (Disconnect all, sign out).
    pub fn all_closed(&self, gateway: &str) -> Result<()> {
        self.update(|b| {
            for r in b
                .gateways
                .entry(gateway.to_string())
                .or_default()
                .values_mut()
            {
                r.open = false;
            }
        })
    }

    /// The tunnels at `gateway` that were open, by environment.
    pub fn open_at(&self, gateway: &str) -> Vec<(String, Remembered)> {
        self.read()
            .gateways
            .get(gateway)
            .map(|envs| {
                envs.iter()
                    .filter(|(_, r)| r.open)
                    .map(|(e, r)| (e.clone(), r.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the desktop app reopens tunnels at start (on by default).
    pub fn reopen_tunnels(&self) -> bool {
        self.read().reopen_tunnels.unwrap_or(true)
    }

    pub fn set_reopen_tunnels(&self, on: bool) -> Result<()> {
        self.update(|b| b.reopen_tunnels = Some(on))
    }
}

/// Opens a tunnel on a stable port: `chosen` if the person gave one (0: any free port), else
/// the port this environment had last time at this gateway, else a free one; remembers the
/// port it got. A taken port is [`Error::PortTaken`].
pub async fn start_stable(
    manager: &TunnelManager,
    book: &PortBook,
    gateway: &str,
    mut spec: TunnelSpec,
    chosen: Option<u16>,
) -> Result<TunnelInfo> {
    let remembered = book.get(gateway, &spec.environment).map(|r| r.port);
    spec.port = chosen.or(remembered).unwrap_or(0);
    let environment = spec.environment.clone();
    let database = spec.database.clone();
    let info = match manager.start(spec).await {
        Ok(info) => info,
        Err(Error::Listen { source, .. }) if source.kind() == std::io::ErrorKind::AddrInUse => {
            return Err(Error::PortTaken {
                environment,
                port: chosen.or(remembered).unwrap_or(0),
                remembered: chosen.is_none(),
            })
        }
        Err(e) => return Err(e),
    };
    if let Err(e) = book.opened(gateway, &environment, info.port, database) {
        // The tunnel works; only next time's port is at stake.
        tracing::warn!(error = %e, "cannot remember the tunnel's port");
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_ports_per_gateway_and_which_tunnels_were_open() {
        let dir = tempfile::tempdir().unwrap();
        let book = PortBook::new(dir.path());
        assert_eq!(book.get("https://a", "prod"), None);
        assert!(book.reopen_tunnels());
        book.opened("https://a", "prod", 6543, None).unwrap();
        book.opened("https://a", "dev", 6544, Some("other".into()))
            .unwrap();
        book.opened("https://b", "prod", 7000, None).unwrap();
        assert_eq!(book.get("https://a", "prod").unwrap().port, 6543);
        assert_eq!(book.get("https://b", "prod").unwrap().port, 7000);
        book.closed("https://a", "prod").unwrap();
        let open = book.open_at("https://a");
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].0, "dev");
        assert_eq!(open[0].1.database.as_deref(), Some("other"));
        // Closed, its port is still remembered.
        assert_eq!(book.get("https://a", "prod").unwrap().port, 6543);
        book.all_closed("https://a").unwrap();
        assert!(book.open_at("https://a").is_empty());
        book.set_reopen_tunnels(false).unwrap();
        assert!(!PortBook::new(dir.path()).reopen_tunnels());
    }

    #[test]
    fn an_unreadable_file_is_an_empty_book() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "{not json").unwrap();
        let book = PortBook::new(dir.path());
        assert_eq!(book.get("https://a", "prod"), None);
        book.opened("https://a", "prod", 6543, None).unwrap();
        assert_eq!(book.get("https://a", "prod").unwrap().port, 6543);
    }
}
