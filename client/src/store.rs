//! Where the session lives between commands: the OS keychain (the `keyring` crate: macOS
//! Keychain, Windows Credential Manager, the Secret Service on Linux desktops), or a JSON file
//! readable only by the user (mode 0600 in a 0700 directory) when there is no keychain, as on a
//! headless server. `Auto` picks the keychain when it works and falls back to the file.
//!
//! Calls here block (the keychain talks D-Bus or OS APIs); async callers use `spawn_blocking`.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::session::Session;

const SERVICE: &str = "gatehouse";
const ACCOUNT: &str = "session";
const FILE_NAME: &str = "session.json";

/// Which backend to use (`GATEHOUSE_SESSION_STORE=auto|keyring|file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Auto,
    Keyring,
    File,
}

impl std::str::FromStr for StoreKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" | "" => Ok(StoreKind::Auto),
            "keyring" | "keychain" => Ok(StoreKind::Keyring),
            "file" => Ok(StoreKind::File),
            other => Err(Error::invalid(
                "session store",
                format!("{other:?}: use auto, keyring or file"),
            )),
        }
    }
}

/// The session store.
#[derive(Debug, Clone)]
pub struct SessionStore {
    kind: StoreKind,
    dir: PathBuf,
}

impl SessionStore {
    /// A store of `kind` keeping its file (and lock-free fallback) under `dir`.
    pub fn new(kind: StoreKind, dir: PathBuf) -> Self {
        SessionStore { kind, dir }
    }

    /// The store the environment asks for: `GATEHOUSE_SESSION_STORE` (default `auto`) and
    /// `GATEHOUSE_CONFIG_DIR` (default the OS config dir + `/gatehouse`).
    pub fn from_env() -> Result<Self> {
        let kind = std::env::var("GATEHOUSE_SESSION_STORE")
            .unwrap_or_default()
            .parse()?;
        Ok(Self::new(kind, config_dir()))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn file_path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The stored session, if any.
    pub fn load(&self) -> Result<Option<Session>> {
        match self.kind {
            StoreKind::File => self.load_file(),
            StoreKind::Keyring => keyring_load(),
            StoreKind::Auto => match keyring_load() {
                Ok(Some(s)) => Ok(Some(s)),
                // No keychain, or nothing in it: the file may hold the session.
                Ok(None) | Err(_) => self.load_file(),
            },
        }
    }

    /// Stores `session`, replacing any other. Returns where it went ("keychain" or the path).
    pub fn save(&self, session: &Session) -> Result<String> {
        let json =
            serde_json::to_string(session).map_err(|e| Error::invalid("session", e.to_string()))?;
        match self.kind {
            StoreKind::File => self.save_file(&json),
            StoreKind::Keyring => keyring_save(&json).map(|_| "the OS keychain".into()),
            StoreKind::Auto => match keyring_save(&json) {
                Ok(()) => {
                    // A stale file copy would shadow nothing (the keychain is read first) but
                    // keeps an old token on disk: remove it.
                    let _ = std::fs::remove_file(self.file_path());
                    Ok("the OS keychain".into())
                }
                Err(e) => {
                    tracing::debug!(error = %e, "no usable keychain; using the session file");
                    self.save_file(&json)
                }
            },
        }
    }

    /// Forgets the session everywhere it might be.
    pub fn clear(&self) -> Result<()> {
        if self.kind != StoreKind::File {
            let r = keyring_clear();
            if self.kind == StoreKind::Keyring {
                r?;
            }
        }
        match std::fs::remove_file(self.file_path()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::File {
                action: "remove",
                path: self.file_path(),
                source,
            }),
        }
    }

    fn load_file(&self) -> Result<Option<Session>> {
        let path = self.file_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::File {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::invalid(
                "session file",
                format!("{}: {e}; run `gatehouse login` again", path.display()),
            )
        })
    }

    fn save_file(&self, json: &str) -> Result<String> {
        let path = self.file_path();
        write_private(&self.dir, &path, json.as_bytes())?;
        Ok(path.display().to_string())
    }
}

/// `GATEHOUSE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/gatehouse`, else `~/.config/gatehouse`.
pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("GATEHOUSE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return d.into();
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("gatehouse");
    }
    if let Some(d) = std::env::var_os("APPDATA").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("gatehouse");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".config").join("gatehouse")
}

/// Writes `data` to `path` so that only the user can read it, atomically (temp file + rename),
/// so a concurrent reader never sees half a session. Also the ports file's (`ports.rs`).
pub(crate) fn write_private(dir: &Path, path: &Path, data: &[u8]) -> Result<()> {
    let file_err = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::File {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(file_err("create", dir))?;
    // Named after the file it becomes, so two files written at once never share a temp file.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| FILE_NAME.to_string());
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        // Best effort: a directory we created, or the user's own.
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let mut f = opts.open(&tmp).map_err(file_err("write", &tmp))?;
    #[cfg(unix)]
    {
        // `mode` applies only when the file is created; make sure of it anyway.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(file_err("protect", &tmp))?;
    }
    f.write_all(data).map_err(file_err("write", &tmp))?;
    f.sync_all().map_err(file_err("write", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(file_err("write", path))
}

fn entry() -> Result<keyring::Entry> {
    keyring::Entry::new(SERVICE, ACCOUNT).map_err(|e| Error::Keychain(e.to_string()))
}

fn keyring_load() -> Result<Option<Session>> {
    match entry()?.get_password() {
        Ok(json) => serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| Error::Keychain(format!("unreadable session: {e}"))),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(Error::Keychain(e.to_string())),
    }
}

fn keyring_save(json: &str) -> Result<()> {
    entry()?
        .set_password(json)
        .map_err(|e| Error::Keychain(e.to_string()))
}

fn keyring_clear() -> Result<()> {
    match entry()?.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(Error::Keychain(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{LoginMethod, Trust};

    fn session() -> Session {
        Session {
            gateway: "http://127.0.0.1:7480".into(),
            postgres: "127.0.0.1:7432".into(),
            trust: Trust::Pinned {
                sha256: "ab".into(),
            },
            identity: "ana".into(),
            method: LoginMethod::Password,
            token: "ghs_secret".into(),
            expires_at: None,
            refresh_token: None,
            refresh_expires_at: None,
            issued_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn file_store_round_trips_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::new(StoreKind::File, dir.path().join("gh"));
        assert!(store.load().unwrap().is_none());
        store.save(&session()).unwrap();
        let back = store.load().unwrap().unwrap();
        assert_eq!(back.token, "ghs_secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.file_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let dmode = std::fs::metadata(store.dir()).unwrap().permissions().mode();
            assert_eq!(dmode & 0o777, 0o700);
        }
        store.clear().unwrap();
        assert!(store.load().unwrap().is_none());
    }
}
