//! The data directory: the database, the secret key file, the daemon's lock, and the first admin password. With
//! `--database-url`, the database is on a PostgreSQL server instead, and the directory holds the rest.
//!
//! ```text
//! DIR/                      0700
//!   tidings.db (+ -wal, -shm) SQLite database
//!   secret.key              0600  base64 key sealing the secrets (absent when TIDINGS_SECRET_KEY is used)
//!   daemon.lock                   held by the running daemon, holds its pid
//!   initial-admin-password  0600  written by a first `serve` only; delete it after signing in
//!   instance                0600  the directory's id, told to the other nodes of a shared database
//! ```

use crate::{Error, Result, cipher::SecretKey};
use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};
use tidings_store::{Database, PostgresUrl};

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A data directory by its path, and where its database is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
    /// A PostgreSQL database shared with other nodes, instead of the SQLite file in the directory.
    shared: Option<PostgresUrl>,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), shared: None }
    }

    /// The same directory, its database on PostgreSQL at `url` (`--database-url`).
    pub fn with_database_url(mut self, url: Option<PostgresUrl>) -> Self {
        self.shared = url;
        self
    }

    /// Where the database is.
    pub fn store(&self) -> Database {
        match &self.shared {
            Some(url) => Database::Postgres(url.clone()),
            None => Database::Sqlite(self.database()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn database(&self) -> PathBuf {
        self.root.join("tidings.db")
    }
    pub fn key_file(&self) -> PathBuf {
        self.root.join("secret.key")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("daemon.lock")
    }
    /// The directory's id (`instance`, made on first use), telling a node restarted from another node that took
    /// the same name on a shared database.
    pub fn instance_file(&self) -> PathBuf {
        self.root.join("instance")
    }
    pub fn initial_password_file(&self) -> PathBuf {
        self.root.join("initial-admin-password")
    }

    /// Whether the database holds anything (a missing or empty file does not).
    pub(crate) fn has_database(&self) -> bool {
        fs::metadata(self.database()).is_ok_and(|m| m.len() > 0)
    }

    /// The files that show this directory was used before, when it has no database to go with them: a key, the
    /// database's log (`-wal`, `-shm`), a first administrator's password file, an empty database file beside
    /// those (not the daemon's lock, which a first start takes before anything else). Such a directory is never
    /// initialised again.
    pub(crate) fn remains_without_database(&self) -> Vec<PathBuf> {
        if self.has_database() {
            return Vec::new();
        }
        let database = self.database();
        let remains = [
            self.key_file(),
            with_suffix(&database, "-wal"),
            with_suffix(&database, "-shm"),
            self.initial_password_file(),
        ];
        let mut found: Vec<PathBuf> = remains.into_iter().filter(|p| p.exists()).collect();
        if !found.is_empty() && database.exists() {
            found.insert(0, database);
        }
        found
    }

    /// Creates the directory if it does not exist, and makes it private (0700): it holds the key, password
    /// hashes and sealed secrets.
    pub(crate) fn create(&self) -> Result<()> {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.root).map_err(|e| Error::io(&self.root, e))?;
        let mode = fs::metadata(&self.root).map_err(|e| Error::io(&self.root, e))?.permissions().mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700)).map_err(|e| Error::io(&self.root, e))?;
        }
        Ok(())
    }

    /// Writes `key` as the key file (0600); refused when a different key file is there already.
    pub(crate) fn adopt_key(&self, key: &SecretKey) -> Result<()> {
        let path = self.key_file();
        if path.exists() {
            let held = self.key(None, false)?;
            if *held.to_base64() != *key.to_base64() {
                return Err(Error::Key(format!(
                    "{} holds another key; a data directory keeps the key it was made with (remove the directory to \
                     make it again with this one)",
                    path.display()
                )));
            }
            return Ok(());
        }
        write_private(&path, key.to_base64().as_bytes())
    }

    /// The key: from `TIDINGS_SECRET_KEY` when given, else from the key file, created (0600) if `create`.
    /// The key sealing this directory's secrets: `from_env` (TIDINGS_SECRET_KEY) when given, else the key file.
    pub fn secret_key(&self, from_env: Option<&str>) -> Result<SecretKey> {
        self.key(from_env, false)
    }

    pub(crate) fn key(&self, from_env: Option<&str>, create: bool) -> Result<SecretKey> {
        if let Some(text) = from_env {
            return SecretKey::from_base64(text, "TIDINGS_SECRET_KEY");
        }
        let path = self.key_file();
        if !path.exists() {
            if !create {
                return Err(Error::Key(format!(
                    "the key file {} is missing, so stored secrets cannot be read; restore it from your backup \
                     or set TIDINGS_SECRET_KEY",
                    path.display()
                )));
            }
            let key = SecretKey::generate();
            write_private(&path, key.to_base64().as_bytes())?;
            return Ok(key);
        }
        let mode = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(Error::Key(format!(
                "the key file {} can be read by other users (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            )));
        }
        let mut text = String::new();
        File::open(&path).and_then(|mut f| f.read_to_string(&mut text)).map_err(|e| Error::io(&path, e))?;
        SecretKey::from_base64(&text, &format!("the key file {}", path.display()))
    }

    /// The directory's id, made (random) on first use.
    pub fn instance_id(&self) -> Result<String> {
        let path = self.instance_file();
        match fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
        let id = format!("{:016x}", rand::random::<u64>());
        write_private(&path, format!("{id}\n").as_bytes())?;
        Ok(id)
    }

    /// Takes the daemon lock: one daemon per data directory. Held until the returned value is dropped.
    pub fn lock(&self) -> Result<InstanceLock> {
        self.create()?;
        let path = self.lock_file();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(Error::Locked { dir: self.root.clone(), pid: pid.trim().parse().ok() });
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        file.set_len(0).and_then(|()| writeln!(file, "{}", std::process::id())).map_err(|e| Error::io(&path, e))?;
        Ok(InstanceLock { _file: file })
    }
}

impl DataDir {
    /// Whether a daemon holds the lock now (so that queued mail goes out without waiting for a start).
    pub fn daemon_running(&self) -> bool {
        match File::open(self.lock_file()) {
            Ok(file) => matches!(file.try_lock_shared(), Err(fs::TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }
}

/// Proof that this process is the data directory's one daemon.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// Writes a new file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| Error::io(path, e))?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_created_private_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("data"));
        dir.create().unwrap();
        assert_eq!(fs::metadata(dir.root()).unwrap().permissions().mode() & 0o777, 0o700);
        let key = dir.key(None, true).unwrap();
        assert_eq!(fs::metadata(dir.key_file()).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(*dir.key(None, false).unwrap().to_base64(), *key.to_base64());
    }

    #[test]
    fn a_missing_or_exposed_key_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        assert!(dir.key(None, false).unwrap_err().to_string().contains("missing"));
        dir.key(None, true).unwrap();
        fs::set_permissions(dir.key_file(), fs::Permissions::from_mode(0o644)).unwrap();
        let err = dir.key(None, false).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn the_lock_is_exclusive_and_names_the_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let held = dir.lock().unwrap();
        match dir.lock() {
            Err(Error::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(held);
        dir.lock().unwrap();
    }
}
