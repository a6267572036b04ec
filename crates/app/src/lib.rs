//! Tidings' application services: the operations the CLI, the daemon and (later) the API share.
//!
//! - [`data_dir`]: the data directory's layout, its key file and the one-daemon lock.
//! - [`cipher`]: sealing secrets at rest.
//! - [`App`]: an opened data directory: its store and cipher. [`settings`] reads and changes the email
//!   configuration through it; [`accounts`] manages sign-in accounts, [`api_tokens`] the API's bearer tokens.
//! - [`outbox`]: accepting messages (one commit each, or grouped by a [`outbox::Committer`]) and the
//!   operator's view of the queue.
//!
//! Every change goes through here so that it is validated, sealed and audited the same way whoever makes it.

pub mod accept;
pub mod accounts;
pub mod api_tokens;
pub mod attempts;
pub mod authorization;
pub mod backup;
pub mod cipher;
pub mod client_certificate;
pub mod cluster;
pub mod data_dir;
pub mod devices;
pub mod doctor;
pub mod expiry;
pub mod files;
pub mod mailboxes;
pub mod metrics;
pub mod notifications;
pub mod outbox;
pub mod password_checks;
pub mod peers;
pub mod settings;
pub mod sign_in;
pub mod tls_files;

use cipher::Cipher;
use data_dir::DataDir;
use std::{io, path::PathBuf, sync::Arc};
use tidings_core::{ValidationErrors, secret::SecretString};
use tidings_store::Store;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong, in terms an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error(transparent)]
    Store(#[from] tidings_store::Error),
    #[error("{dir} is not a Tidings data directory yet; run `tidings init --data-dir {dir}` (or `tidings serve`, which initialises it)", dir = .0.display())]
    NotInitialised(PathBuf),
    #[error("{} is already initialised; to start over, stop Tidings and move the directory away", .0.display())]
    AlreadyInitialised(PathBuf),
    /// The directory was used before but its database is missing or empty: never initialised again.
    #[error(
        "{dir} was used before ({found}) but its database is missing or empty, so Tidings will not start it anew \
         and replace what was there; restore the directory from a backup, or, to start with nothing, stop Tidings \
         and move the directory away",
        dir = dir.display(),
        found = found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    Damaged { dir: PathBuf, found: Vec<PathBuf> },
    #[error("another Tidings daemon{} is already running on {}; stop it first, or give this one another --data-dir", pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), dir.display())]
    Locked { dir: PathBuf, pid: Option<u32> },
    #[error("{0}")]
    Key(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// Input that is not a configuration (a malformed import file, an unknown account), with what to do.
    #[error("{0}")]
    Input(String),
    /// The configuration lacks what the operation needs.
    #[error("{0}")]
    NotConfigured(String),
    /// A part of Tidings cannot serve now (shutting down, database failing); try again.
    #[error("{0}")]
    Unavailable(String),
    /// Authentication refused (wrong password, locked account), with what to do.
    #[error("{0}")]
    Refused(String),
    /// Too many password checks at once in the whole process: try again in a moment.
    #[error("{0}")]
    Busy(String),
    /// Too many failed attempts from one address: try again later.
    #[error("{0}")]
    Throttled(String),
    /// The operation would break a rule of the current state (the last administrator), with what to do.
    #[error("{0}")]
    Conflict(String),
}

impl From<tidings_core::Invalid> for Error {
    fn from(invalid: tidings_core::Invalid) -> Self {
        Self::Input(invalid.into())
    }
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }
}

const META_INITIALISED: &str = "initialised_at";
const META_KEY_CHECK: &str = "key_check";

/// An opened data directory.
#[derive(Clone, Debug)]
pub struct App {
    dir: DataDir,
    store: Arc<dyn Store>,
    cipher: Arc<Cipher>,
    metrics: Arc<metrics::Metrics>,
    /// Password checks: bounded, coalesced, device successes remembered.
    passwords: Arc<password_checks::PasswordChecks>,
    /// Web sign-in attempts by client address (both sign-in pages).
    sign_in_addresses: Arc<attempts::Attempts<std::net::IpAddr>>,
    /// Notified when someone asks delivery to try now (a retry, a new authorization): the engine closes its
    /// circuits. Within this process only; another process's changes wait for the next probe.
    resume: Arc<tokio::sync::Notify>,
}

/// How to create a data directory.
#[derive(Debug, Default)]
pub struct InitOptions {
    /// The key in base64 (`TIDINGS_SECRET_KEY`); when absent, a key file is created.
    pub key_from_env: Option<String>,
    /// The first administrator's name.
    pub admin_username: String,
    /// Its password; generated when absent.
    pub admin_password: Option<SecretString>,
    /// The key to write as the key file instead of a new one (`tidings init --join-key FILE`): every node that
    /// shares a database must hold the same key.
    pub join_key: Option<cipher::SecretKey>,
}

/// What [`App::init`] did.
#[derive(Debug)]
pub struct Initialised {
    pub app: App,
    pub admin_username: String,
    /// The password, when Tidings generated it: to be shown once.
    pub generated_password: Option<SecretString>,
    /// The node joined a shared database that was initialised already: no account was created.
    pub joined: bool,
}

impl App {
    /// Opens an initialised data directory.
    pub async fn open(dir: DataDir, key_from_env: Option<&str>) -> Result<Self> {
        let database = dir.store();
        if database.is_shared() {
            // The database is elsewhere; this node is initialised once its directory holds the key.
            if key_from_env.is_none() && !dir.key_file().exists() {
                return Err(Error::NotInitialised(dir.root().to_owned()));
            }
        } else if !dir.has_database() {
            let found = dir.remains_without_database();
            return Err(match found.is_empty() {
                true => Error::NotInitialised(dir.root().to_owned()),
                false => Error::Damaged { dir: dir.root().to_owned(), found },
            });
        }
        let key = dir.key(key_from_env, false)?;
        let store = database.open().await?;
        if store.meta(META_INITIALISED).await?.is_none() {
            return Err(Error::NotInitialised(dir.root().to_owned()));
        }
        let app = Self::with_store(dir, store, Cipher::new(&key));
        app.check_key().await?;
        Ok(app)
    }

    /// Creates a data directory: the key, the database and the first administrator. A directory left half
    /// made by an interrupted init (a database without its first account) is completed; one that was used
    /// before and lost its database is refused ([`Error::Damaged`]).
    pub async fn init(dir: DataDir, options: InitOptions) -> Result<Initialised> {
        let database = dir.store();
        if database.is_shared() {
            return Self::join_shared(dir, options).await;
        }
        let found = dir.remains_without_database();
        if !found.is_empty() {
            return Err(Error::Damaged { dir: dir.root().to_owned(), found });
        }
        dir.create()?;
        // The database first: a directory whose init stops after it holds a database to complete, never a key
        // alone (which would mark it as used before).
        let store = database.open().await?;
        if let Some(key) = &options.join_key {
            dir.adopt_key(key)?;
        }
        let key = dir.key(options.key_from_env.as_deref(), true)?;
        if store.meta(META_INITIALISED).await?.is_some() {
            return Err(Error::AlreadyInitialised(dir.root().to_owned()));
        }
        Self::initialise(dir, store, key, options).await
    }

    /// Initialises a node whose database is shared (PostgreSQL): the first node initialises the database; a node
    /// that comes to an initialised one takes its key (`--join-key`) and creates no account.
    async fn join_shared(dir: DataDir, options: InitOptions) -> Result<Initialised> {
        dir.create()?;
        let store = dir.store().open().await?;
        let had_key = dir.key_file().exists() || options.key_from_env.is_some();
        if store.meta(META_INITIALISED).await?.is_none() {
            if let Some(key) = &options.join_key {
                dir.adopt_key(key)?;
            }
            let key = dir.key(options.key_from_env.as_deref(), true)?;
            return Self::initialise(dir, store, key, options).await;
        }
        let key = match &options.join_key {
            Some(key) => key.clone(),
            None if had_key => dir.key(options.key_from_env.as_deref(), false)?,
            None => {
                return Err(Error::Key(format!(
                    "the database {} is initialised already, by another node; give this node that node's key:                      `tidings init --join-key FILE` with a copy of its secret.key",
                    dir.store()
                )));
            }
        };
        let cipher = Cipher::new(&key);
        match store.meta(META_KEY_CHECK).await? {
            Some(check) if cipher.matches_key_check(&check) => {}
            _ => {
                return Err(Error::Key(format!(
                    "this key is not the one the database {} seals its secrets with; give the key of a node that                      uses it (`tidings init --join-key FILE` with a copy of its secret.key)",
                    dir.store()
                )));
            }
        }
        if had_key && options.join_key.is_none() {
            return Err(Error::AlreadyInitialised(dir.root().to_owned()));
        }
        if options.join_key.is_some() {
            dir.adopt_key(&key)?;
        }
        let app = Self::with_store(dir, store, cipher);
        Ok(Initialised { app, admin_username: String::new(), generated_password: None, joined: true })
    }

    fn with_store(dir: DataDir, store: Arc<dyn Store>, cipher: Cipher) -> Self {
        Self {
            dir,
            store,
            cipher: Arc::new(cipher),
            metrics: Default::default(),
            passwords: Default::default(),
            sign_in_addresses: Default::default(),
            resume: Default::default(),
        }
    }

    /// Makes a new database this key's: its key check, the first administrator, the mark that it is done.
    async fn initialise(
        dir: DataDir,
        store: Arc<dyn Store>,
        key: cipher::SecretKey,
        options: InitOptions,
    ) -> Result<Initialised> {
        let cipher = Cipher::new(&key);
        store.init_meta(META_KEY_CHECK, &cipher.key_check()).await?;
        let app = Self::with_store(dir, store, cipher);
        app.check_key().await?;

        let generated = options.admin_password.is_none().then(accounts::generate_password);
        let password = options.admin_password.as_ref().or(generated.as_ref()).expect("one of the two is set");
        if app.store.accounts().await?.is_empty() {
            app.create_account("init", &options.admin_username, password, tidings_core::account::Role::Administrator)
                .await?;
        }
        app.store.init_meta(META_INITIALISED, &chrono::Utc::now().to_rfc3339()).await?;
        Ok(Initialised { app, admin_username: options.admin_username, generated_password: generated, joined: false })
    }

    async fn check_key(&self) -> Result<()> {
        match self.store.meta(META_KEY_CHECK).await? {
            Some(check) if self.cipher.matches_key_check(&check) => Ok(()),
            Some(_) => Err(Error::Key(format!(
                "the secret key does not match the one this data directory's secrets were sealed with; use the \
                 original {} or TIDINGS_SECRET_KEY",
                self.dir.key_file().display()
            ))),
            None => Err(Error::NotInitialised(self.dir.root().to_owned())),
        }
    }

    pub fn data_dir(&self) -> &DataDir {
        &self.dir
    }

    /// The store, for parts that read it directly (health checks, change detection).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Checks passwords with these bounds instead of the defaults.
    pub fn with_password_checks(mut self, options: password_checks::CheckOptions) -> Self {
        self.passwords = Arc::new(password_checks::PasswordChecks::new(options));
        self
    }

    /// The password checks, for their metrics.
    pub fn password_checks(&self) -> &password_checks::PasswordChecks {
        &self.passwords
    }

    /// This process's counters.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }
}

/// This machine's name (for EHLO, and as the default node name of events and deliveries), when it is a usable
/// host name.
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
}

/// `d` after `now`: a lease's or a session's end (the latest time there is, for a duration beyond it).
pub fn later(now: chrono::DateTime<chrono::Utc>, d: std::time::Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// The node name events name when no other is given: the host name, or `local`.
/// An error with its sources, in one line: `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    chain
}

pub fn node_name() -> String {
    host_name().unwrap_or_else(|| "local".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn later_adds_and_saturates_instead_of_overflowing() {
        let now = chrono::Utc::now();
        assert_eq!(super::later(now, std::time::Duration::from_secs(90)), now + chrono::Duration::seconds(90));
        assert_eq!(super::later(now, std::time::Duration::MAX), chrono::DateTime::<chrono::Utc>::MAX_UTC);
    }
}
