//! Tidings' storage: the [`Store`] trait that the rest of Tidings talks to, and its backends.
//!
//! The embedded SQLite backend ([`sqlite::SqliteStore`]) is the default. A backend owns its schema and runs its
//! own versioned migrations (`migrations/<backend>/`) when opened; a landed migration is never edited.
//!
//! The store never sees a plaintext secret: secrets arrive sealed by the application and leave the same way.

pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt;
use tidings_core::{
    EmailConfig,
    account::Role,
    audit::{AuditEntry, NewAuditEntry},
};

pub use sqlite::SqliteStore;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("could not bring the database schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Someone else saved the configuration since it was read; read it again and re-apply the edits.
    #[error("the configuration was changed meanwhile (it is now at revision {current}); try again")]
    Conflict { current: i64 },
    #[error("an account named {0:?} exists already")]
    DuplicateAccount(String),
    /// Stored data this version cannot read (written by a newer Tidings, or damaged).
    #[error("stored {what} cannot be read: {why}")]
    Corrupt { what: String, why: String },
}

/// The email configuration in force, with its revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigRecord {
    /// Increases by one with every save; 0 means nothing was ever saved.
    pub revision: i64,
    pub saved_at: DateTime<Utc>,
    pub saved_by: String,
    pub config: EmailConfig,
}

/// A secret as stored: sealed bytes under its name.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub name: String,
    pub sealed: Vec<u8>,
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedSecret({}, {} bytes)", self.name, self.sealed.len())
    }
}

/// One configuration save: the new document, secret changes and the audit entry, stored atomically.
#[derive(Debug)]
pub struct ConfigSave<'a> {
    /// The revision the edits were made against; the save fails with [`Error::Conflict`] if it moved on.
    pub base_revision: i64,
    pub config: &'a EmailConfig,
    /// Secrets to store (`Some(sealed)`) or delete (`None`), by name.
    pub secrets: &'a [(String, Option<Vec<u8>>)],
    pub audit: &'a NewAuditEntry,
}

/// An account as listed (never its password hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// An account to create; the password is already hashed.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
}

/// Everything Tidings keeps. Implemented once per backend; every method is one atomic operation.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<()>;

    async fn meta(&self, key: &str) -> Result<Option<String>>;
    /// Sets `key` unless it has a value; returns whether it was set.
    async fn init_meta(&self, key: &str, value: &str) -> Result<bool>;

    /// The configuration in force, or `None` before the first save.
    async fn config(&self) -> Result<Option<ConfigRecord>>;
    /// The revision in force (0 before the first save): cheap, for change detection.
    async fn config_revision(&self) -> Result<i64>;
    /// Saves a new revision with its secrets and audit entry; returns the new revision.
    async fn save_config(&self, save: ConfigSave<'_>) -> Result<i64>;
    async fn sealed_secrets(&self) -> Result<Vec<SealedSecret>>;

    /// The newest audit entries first.
    async fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>>;
    async fn record_audit(&self, entry: &NewAuditEntry) -> Result<()>;

    /// Creates an account and records `audit` with it.
    async fn create_account(&self, account: &NewAccount, audit: &NewAuditEntry) -> Result<i64>;
    async fn accounts(&self) -> Result<Vec<Account>>;
}
