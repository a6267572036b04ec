//! Tidings' storage: the [`Store`] trait that the rest of Tidings talks to, and its backends.
//!
//! The embedded SQLite backend ([`sqlite::SqliteStore`]) is the default. A backend owns its schema and runs its
//! own versioned migrations (`migrations/<backend>/`) when opened; a landed migration is never edited.
//!
//! The store never sees a plaintext secret: secrets arrive sealed by the application and leave the same way.

pub mod copy;
mod location;
pub mod postgres;
pub use location::{Database, PostgresUrl};
pub use postgres::PgStore;
pub mod sqlite;
mod stored;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::{collections::BTreeMap, fmt};
use tidings_core::{
    EmailConfig,
    account::Role,
    audit::{AuditEntry, NewAuditEntry},
    config::Locale,
    notify::{EventKind, throttle::Throttle},
    outbox::{Attempt, Recipient, Settled, Status},
};

pub use tidings_core::outbox::{budget::Usage, circuit::Waiting};

pub use sqlite::SqliteStore;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// PostgreSQL could not be reached, with what to check.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
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
    /// A copy between stores that cannot be made (see [`copy::copy`]), with what to do.
    #[error("{0}")]
    CopyRefused(String),
    /// A write after the store was closed (Tidings is shutting down).
    #[error("the database is closed: Tidings is shutting down")]
    Closed,
    /// What this backend does not do, with what to do instead.
    #[error("{0}")]
    Unsupported(String),
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
    /// The interface language chosen for the account; `None` follows the browser.
    pub locale: Option<Locale>,
    /// Locked after too many failed sign-ins, until then.
    pub locked_until: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// What signing in needs to know about an account.
#[derive(Clone, Debug)]
pub struct LoginRecord {
    pub account: Account,
    pub password_hash: String,
    /// Consecutive failed sign-ins.
    pub failed_logins: u32,
}

/// A browser session to create; only the hash of its cookie is stored.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub token_hash: Vec<u8>,
    pub account_id: i64,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A live session with its account.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub account: Account,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// Changes to an account; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct AccountChange {
    pub role: Option<Role>,
    pub password_hash: Option<String>,
    /// `Some(None)` goes back to the browser's language.
    pub locale: Option<Option<Locale>>,
    /// Clears the failed sign-ins and any lockout.
    pub unlock: bool,
}

/// An account to create; the password is already hashed.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
}

/// A message entering the outbox.
#[derive(Clone, Debug)]
pub struct NewOutboxMessage {
    /// Who submitted it: `api:<token name>`, `cli:<user>`, `notification`, `gateway:<account>`.
    pub origin: String,
    pub mail_from: String,
    pub recipients: Vec<Recipient>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub content: Vec<u8>,
    pub created_at: DateTime<Utc>,
    /// The device account whose own mailbox and token send it (the gateway's `login_user` policy); `None`
    /// for the relay account.
    pub mailbox_of: Option<String>,
}

/// Contents are stored, and read, in parts of this size: a message of many megabytes is never held by the
/// database, or by its driver, in one piece.
pub const CONTENT_PART: usize = 256 * 1024;

/// A message handed to a delivery worker.
#[derive(Clone, Debug)]
pub struct LeasedMessage {
    pub id: i64,
    /// Who submitted it (see [`NewOutboxMessage::origin`]).
    pub origin: String,
    pub subject: Option<String>,
    pub mail_from: String,
    pub recipients: Vec<Recipient>,
    /// The message as sent; empty when it is larger than [`CONTENT_PART`]: the worker reads it with
    /// [`Store::message_content`] when it sends it, so that leased messages waiting for a connection do not
    /// hold their contents.
    pub content: Vec<u8>,
    /// The content's size in octets.
    pub size: u64,
    /// Attempts made before this one.
    pub attempts: u32,
    /// Start of the retry lifetime (acceptance, or the last manual retry).
    pub lifetime_start: DateTime<Utc>,
    /// The device account whose mailbox sends it, if not the relay account.
    pub mailbox_of: Option<String>,
}

/// Messages leased as they are stored (see `Store::enqueue`).
#[derive(Clone, Debug)]
pub struct NewLease {
    pub owner: String,
    pub until: DateTime<Utc>,
    /// How many of the messages, from the first.
    pub count: usize,
}

/// The outcome of one attempt, to store if the lease is still the worker's.
#[derive(Clone, Debug)]
pub struct Settlement {
    pub id: i64,
    /// The lease owner that made the attempt.
    pub owner: String,
    pub settled: Settled,
    /// The event to record with it (a message that ended failed raises one), in the same commit, when the
    /// lease was still the owner's.
    pub dead_letter: Option<DeadLetter>,
}

/// A dead-letter event to record.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub event: NewEvent,
    /// False: recorded without a mail (state `recorded`).
    pub mailed: bool,
}

/// A message as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageSummary {
    pub id: i64,
    pub status: Status,
    pub origin: String,
    pub mail_from: String,
    pub recipients: Vec<Recipient>,
    pub subject: Option<String>,
    pub size: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub attempts: u32,
    /// When a queued or deferred message is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// A message with its delivery log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageDetail {
    pub summary: MessageSummary,
    pub message_id: Option<String>,
    pub attempt_log: Vec<Attempt>,
    /// The device account whose own mailbox sends it; `None` for the relay account.
    pub mailbox_of: Option<String>,
    /// What holds it back while the relay or its identity is down (filled by the application, never stored).
    pub waiting: Option<tidings_core::outbox::circuit::Held>,
    /// Its identity's day's budget, while that is spent and the message waits for it (filled by the
    /// application, never stored).
    pub budget: Option<tidings_core::outbox::budget::Standing>,
}

/// Which messages to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct MessageFilter {
    pub status: Option<Status>,
    pub limit: u32,
    /// Only messages with a smaller id (for paging).
    pub before_id: Option<i64>,
}

/// Which audit entries to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this actor's (`web:jane`, `cli:root`, `api:monitoring`).
    pub actor: Option<String>,
    /// Only actions starting so (`config.`, `sign-in`).
    pub action: Option<String>,
    /// Only entries older than this one (for paging).
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// The ends of the outbox: what mail flowing looks like at a glance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueAges {
    /// The message waiting longest (queued, sending or deferred): its id and when it was accepted.
    pub oldest_waiting: Option<(i64, DateTime<Utc>)>,
    /// The message delivered last: its id and when.
    pub last_delivered: Option<(i64, DateTime<Utc>)>,
    /// The message that failed last: its id and when.
    pub last_failed: Option<(i64, DateTime<Utc>)>,
}

/// An API token as listed (never the token or its hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Whose OAuth authorization: the relay account's, or a device account's own mailbox (the gateway's
/// `login_user` policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    Relay,
    Device(i64),
}

impl Owner {
    /// The device account, for a device's authorization.
    pub fn device_id(self) -> Option<i64> {
        match self {
            Owner::Relay => None,
            Owner::Device(id) => Some(id),
        }
    }

    pub fn of_device(device_id: Option<i64>) -> Self {
        device_id.map_or(Owner::Relay, Owner::Device)
    }
}

/// An OAuth authorization as recorded (never its refresh token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub owner: Owner,
    /// The mailbox the token is for, when known.
    pub account: Option<String>,
    /// Authorized with the client-credentials grant (no refresh token).
    pub client_credentials: bool,
    pub acquired_at: Option<DateTime<Utc>>,
    /// Who signed in (an actor: `web:admin`, `mailbox:scanner`).
    pub acquired_by: Option<String>,
    pub refreshed_at: Option<DateTime<Utc>>,
    /// The provider's words when someone must sign in again, and what to do.
    pub failure: Option<(String, String)>,
    pub failed_at: Option<DateTime<Utc>>,
}

/// What a token grant changes.
#[derive(Debug)]
pub enum Grant<'a> {
    /// A new authorization (a sign-in), replacing any: the refresh token (sealed; `None` for app-only), the
    /// mailbox, whether it is the client-credentials grant, and its audit entry (whose actor is recorded as
    /// who acquired it).
    Acquired {
        sealed_refresh_token: Option<&'a [u8]>,
        account: Option<&'a str>,
        client_credentials: bool,
        audit: &'a NewAuditEntry,
    },
    /// A refresh of the authorization there is (none: nothing is recorded): the rotated refresh token
    /// (sealed), if the provider sent one. Clears any failure.
    Refreshed { sealed_refresh_token: Option<&'a [u8]> },
}

/// An authorization-code sign-in under way.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingSignIn {
    pub state: String,
    pub sealed_verifier: Vec<u8>,
    pub redirect_uri: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Whose authorization it leads to.
    pub owner: Owner,
}

impl fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingSignIn")
            .field("redirect_uri", &self.redirect_uri)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An event as it arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub node: String,
    pub details: BTreeMap<String, String>,
    /// Who reported it: `api:<token name>`, `cli:<user>`, `tidings`.
    pub origin: String,
    pub received_at: DateTime<Utc>,
}

/// What became of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventState {
    /// Not handled yet (waiting for the notifier, or for a sendable configuration).
    Pending,
    /// Its mail is in the outbox.
    Mailed,
    /// Inside the repeat window: counted, and reported by a later mail.
    Counted,
    /// Kept without a mail (a notification's own dead letter, which would otherwise loop).
    Recorded,
}

impl EventState {
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Pending => "pending",
            EventState::Mailed => "mailed",
            EventState::Counted => "counted",
            EventState::Recorded => "recorded",
        }
    }
}

/// An event as listed, with the status of its mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub id: i64,
    pub kind: EventKind,
    pub node: String,
    pub details: BTreeMap<String, String>,
    pub origin: String,
    pub received_at: DateTime<Utc>,
    pub state: EventState,
    /// The outbox message of its mail.
    pub message_id: Option<i64>,
    /// That message's status, while the outbox keeps it.
    pub message_status: Option<Status>,
    /// For a mailed event: the earlier occurrences its mail reported.
    pub repeats: u32,
}

/// A repeat window with occurrences counted, as kept per kind and node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottleRecord {
    pub kind: EventKind,
    pub node: String,
    pub throttle: Throttle,
    /// The latest occurrence.
    pub last_event_id: i64,
}

/// Handling one event, stored atomically: its new state, its mail into the outbox, the repeat window, and a
/// meta value (the daily notice's date).
#[derive(Debug)]
pub struct EventHandling<'a> {
    /// An event recorded earlier, or one to record now (notices, tests).
    pub event: EventRef<'a>,
    pub state: EventState,
    /// For a mailed event: the occurrences its mail reports.
    pub repeats: u32,
    pub mail: Option<&'a NewOutboxMessage>,
    /// The window to remember for the event's kind and node, the event being its latest occurrence.
    pub throttle: Option<Throttle>,
    pub meta: Option<(&'a str, &'a str)>,
    pub at: DateTime<Utc>,
}

#[derive(Debug)]
pub enum EventRef<'a> {
    Recorded(i64),
    New(&'a NewEvent),
}

/// Which events to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub kind: Option<EventKind>,
    pub limit: u32,
    /// Only events with a smaller id (for paging).
    pub before_id: Option<i64>,
}

/// A device account of the submission gateway (never its password hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub id: i64,
    pub username: String,
    /// Addresses it may send as (the `allow_user` policy).
    pub addresses: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// Accounts, API tokens and device accounts with their hashes (password hashes, token hashes): what a cluster's
/// follower takes from its primary, under the primary's ids.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Identities {
    pub accounts: Vec<(Account, String)>,
    pub api_tokens: Vec<(ApiToken, Vec<u8>)>,
    pub devices: Vec<(Device, String)>,
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities")
            .field("accounts", &self.accounts.len())
            .field("api_tokens", &self.api_tokens.len())
            .field("devices", &self.devices.len())
            .finish()
    }
}

/// This node in its cluster.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSelf {
    pub role: tidings_core::cluster::Role,
    pub name: String,
    pub epoch: i64,
    /// For a follower: the primary's name, address and pinned certificate fingerprint.
    pub primary_name: Option<String>,
    pub primary_url: Option<String>,
    pub primary_fingerprint: Option<String>,
    /// For a follower: the key exchanged with the primary (sealed).
    pub sealed_key: Option<Vec<u8>>,
    /// The primary's revision last taken, its snapshot's digest, and when.
    pub synced_revision: Option<i64>,
    pub synced_digest: Option<String>,
    pub synced_at: Option<DateTime<Utc>>,
}

impl ClusterSelf {
    /// A primary of `epoch`, following no one.
    pub fn primary(name: String, epoch: i64) -> Self {
        Self {
            role: tidings_core::cluster::Role::Primary,
            name,
            epoch,
            primary_name: None,
            primary_url: None,
            primary_fingerprint: None,
            sealed_key: None,
            synced_revision: None,
            synced_digest: None,
            synced_at: None,
        }
    }
}

impl fmt::Debug for ClusterSelf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSelf")
            .field("role", &self.role)
            .field("name", &self.name)
            .field("epoch", &self.epoch)
            .field("primary_url", &self.primary_url)
            .finish_non_exhaustive()
    }
}

/// Another node, as this node knows it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClusterNode {
    pub name: String,
    pub role: tidings_core::cluster::Role,
    pub advertise: Option<String>,
    pub fingerprint: Option<String>,
    /// On the primary: the key exchanged when it joined (sealed).
    pub sealed_key: Option<Vec<u8>>,
    /// A join code not used yet: its secret's SHA-256, and until when it works.
    pub code_hash: Option<Vec<u8>>,
    pub code_expires_at: Option<DateTime<Utc>>,
    pub joined_at: Option<DateTime<Utc>>,
    pub last_contact_at: Option<DateTime<Utc>>,
    pub version: Option<String>,
    pub synced_revision: Option<i64>,
    pub synced_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterNode")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("advertise", &self.advertise)
            .field("last_contact_at", &self.last_contact_at)
            .finish_non_exhaustive()
    }
}

/// A daemon that uses the database, as it last said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its name (`--node-id`), which its message leases carry.
    pub node: String,
    /// Its data directory's id: the same node restarted has the same.
    pub instance: String,
    pub version: String,
    /// Where its HTTP interface listens.
    pub address: Option<String>,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    /// Messages it holds leased now (read, never written).
    pub leased: u64,
}

/// A device account's web session to create; only the hash of its cookie is stored.
#[derive(Clone, Debug)]
pub struct NewDeviceSession {
    pub token_hash: Vec<u8>,
    pub device_id: i64,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A device account to create; the password is already hashed.
#[derive(Clone, Debug)]
pub struct NewDevice {
    pub username: String,
    pub password_hash: String,
    pub addresses: Vec<String>,
}

/// The origin of the messages Tidings sends on its own (alerts, notices, tests).
pub use tidings_core::notify::dead_letter::NOTIFICATION_ORIGIN;

/// Who to wake when another node changes what they hold (see [`Store::listen`]). A wake is a
/// [`tokio::sync::Notify::notify_one`]: wakes that come while nobody waits become one.
#[derive(Clone, Debug, Default)]
pub struct Listeners {
    /// The configuration was saved.
    pub config: std::sync::Arc<tokio::sync::Notify>,
    /// Messages were queued or became due (the delivery engine).
    pub outbox: std::sync::Arc<tokio::sync::Notify>,
    /// Events were recorded (the notifier).
    pub events: std::sync::Arc<tokio::sync::Notify>,
    /// An OAuth authorization was granted, refreshed or forgotten.
    pub authorization: std::sync::Arc<tokio::sync::Notify>,
}

impl Listeners {
    /// Wakes everyone: changes may have been missed (the database connection was lost meanwhile).
    pub fn wake_all(&self) {
        for notify in [&self.config, &self.outbox, &self.events, &self.authorization] {
            notify.notify_one();
        }
    }
}

/// What holds a turn or a slot (a PostgreSQL transaction holding an advisory lock), given back by
/// [`Turn::release`].
#[async_trait]
pub trait Holding: Send {
    async fn release(self: Box<Self>);
}

/// A turn among the nodes of a shared database (see [`Store::turn`] and [`Store::try_slot`]), held until released
/// or dropped. [`Turn::release`] gives it back at once (and tells the others a slot is free); dropping it gives it
/// back within moments, as the connection returns to the pool, and tells no one. (Behind a mutex only so that a
/// turn can be held across awaits of a task that others may look at.)
#[derive(Default)]
pub struct Turn(Option<std::sync::Mutex<Box<dyn Holding>>>);

impl Turn {
    pub fn held(by: impl Holding + 'static) -> Self {
        Self(Some(std::sync::Mutex::new(Box::new(by))))
    }

    /// Gives the turn back now.
    pub async fn release(mut self) {
        if let Some(held) = self.0.take() {
            held.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner).release().await;
        }
    }
}

impl fmt::Debug for Turn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Turn(held)" } else { "Turn(alone)" })
    }
}

/// Everything Tidings keeps. Implemented once per backend; every method is one atomic operation.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<()>;

    /// Wakes `listeners` whenever another process changes what they hold, until the store is closed; false when
    /// this backend cannot tell (SQLite: the daemon polls for the CLI's changes).
    async fn listen(&self, _listeners: Listeners) -> Result<bool> {
        Ok(false)
    }

    /// Whether other daemons may share this database (and so its outbox and what identities sent).
    fn shared(&self) -> bool {
        false
    }

    /// One of `slots` places named `name` among the nodes of a shared database (a connection of an identity), held
    /// until the returned value is dropped, or by no one once its node dies; `None` while all are held. With a
    /// database only one daemon uses (SQLite), always one: the daemon counts its own.
    async fn try_slot(&self, _name: &str, _slots: u32) -> Result<Option<Turn>> {
        Ok(Some(Turn::default()))
    }

    /// Waits until no other node of a shared database holds the turn `name` (a token's refresh), and holds it
    /// until the returned value is dropped. With a database only one daemon uses (SQLite), at once.
    async fn turn(&self, _name: &str) -> Result<Turn> {
        Ok(Turn::default())
    }

    /// Takes, or keeps, the duty `name` (work that one node of a shared database does for all, such as the
    /// notifier's) for `holder` until `until`; false while another holder's term runs at `now`. A holder that
    /// dies is replaced once its term ends. With a database only one daemon uses (SQLite), always true.
    async fn hold_duty(&self, _name: &str, _holder: &str, _now: DateTime<Utc>, _until: DateTime<Utc>) -> Result<bool> {
        Ok(true)
    }

    async fn meta(&self, key: &str) -> Result<Option<String>>;
    /// Sets (`Some`) or removes (`None`) `key`.
    async fn set_meta(&self, key: &str, value: Option<&str>) -> Result<()>;
    /// Sets `key` unless it has a value; returns whether it was set.
    async fn init_meta(&self, key: &str, value: &str) -> Result<bool>;

    /// The configuration in force, or `None` before the first save.
    async fn config(&self) -> Result<Option<ConfigRecord>>;
    /// The revision in force (0 before the first save): cheap, for change detection.
    async fn config_revision(&self) -> Result<i64>;
    /// Saves a new revision with its secrets and audit entry; returns the new revision.
    async fn save_config(&self, save: ConfigSave<'_>) -> Result<i64>;
    async fn sealed_secrets(&self) -> Result<Vec<SealedSecret>>;

    /// Writes a consistent copy of the whole database to the new file `to`, while the daemon runs (SQLite's
    /// `VACUUM INTO`). A database on a server is backed up with its own tools: refused, saying which.
    async fn backup_into(&self, to: &std::path::Path) -> Result<()> {
        let _ = to;
        Err(Error::Unsupported(
            "this database lives on a PostgreSQL server: back it up with pg_dump (docs/operations.md, \"Backups\")"
                .into(),
        ))
    }

    /// The newest audit entries first.
    /// The newest audit entries first.
    async fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        self.audit_page(&AuditFilter { limit, ..Default::default() }).await
    }
    /// Audit entries that match `filter`, the newest first.
    async fn audit_page(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;
    async fn record_audit(&self, entry: &NewAuditEntry) -> Result<()>;

    /// Creates an account and records `audit` with it.
    async fn create_account(&self, account: &NewAccount, audit: &NewAuditEntry) -> Result<i64>;
    async fn accounts(&self) -> Result<Vec<Account>>;
    /// The account named `username` (case-insensitive), for signing in.
    async fn account_for_login(&self, username: &str) -> Result<Option<LoginRecord>>;
    /// Counts a sign-in attempt before its password is checked: `Some(n)`, this attempt's number among the
    /// account's consecutive failures (a lockout that ended starts the count again), or `None` when the account
    /// is locked at `now` or `max_failures` attempts are counted already. Atomic: concurrent attempts never
    /// get past `max_failures` together.
    async fn login_attempt(&self, id: i64, max_failures: u32, now: DateTime<Utc>) -> Result<Option<u32>>;
    /// Records a failed sign-in (counted by `login_attempt` already), locking the account until `lock_until`
    /// when given, with its audit entry.
    async fn login_failed(&self, id: i64, lock_until: Option<DateTime<Utc>>, audit: &NewAuditEntry) -> Result<()>;
    /// Records a sign-in: clears the failures, stores the session (dropping expired ones) and the audit entry.
    async fn login_succeeded(&self, session: &NewSession, audit: &NewAuditEntry) -> Result<()>;
    /// The live session with this hash and its account, its expiry slid to `extend_to` but never past
    /// `absolute_max` after its creation; `None` when unknown or expired.
    async fn session(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
        extend_to: DateTime<Utc>,
        absolute_max: chrono::Duration,
    ) -> Result<Option<SessionRecord>>;
    /// Ends a session (signing out), with an audit entry when given.
    async fn end_session(&self, token_hash: &[u8], audit: Option<&NewAuditEntry>) -> Result<()>;
    /// Changes an account; a new password ends its sessions. False when there is no such account.
    async fn change_account(&self, id: i64, change: &AccountChange, audit: &NewAuditEntry) -> Result<bool>;
    /// Deletes an account and its sessions. False when there is no such account.
    async fn delete_account(&self, id: i64, audit: &NewAuditEntry) -> Result<bool>;

    // The outbox.

    /// Stores messages due now, all in one durable commit; returns their ids in order. They are `queued`,
    /// except that with `lease` the first `lease.count` of them are stored `sending`, leased to this process's
    /// delivery engine (which gets them without asking).
    async fn enqueue(&self, messages: &[NewOutboxMessage], lease: Option<&NewLease>) -> Result<Vec<i64>>;
    /// Leases up to `limit` due messages (queued or deferred and due, or sending with an expired lease) to
    /// `owner` until `until`, leaving out those of the identities that are `waiting` (none while everything
    /// waits).
    async fn lease_due(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
        waiting: &Waiting,
    ) -> Result<Vec<LeasedMessage>>;
    /// Gives back `owner`'s leases of messages it did not attempt: due again at once, not charged an attempt.
    async fn release(&self, owner: &str, ids: &[i64]) -> Result<u64>;
    /// Makes every lease held by an owner starting with `owner_prefix` expire now; returns how many.
    async fn expire_leases(&self, owner_prefix: &str) -> Result<u64>;
    /// Stores attempts' outcomes in one durable commit. An outcome whose lease passed to another owner
    /// updates nothing but the delivery log. A settlement's dead letter is recorded in the same commit when its
    /// outcome was stored: pending, or `recorded` when it is not to be mailed.
    /// Adds `usage` (what identities sent, per minute) to what is kept, in the same commit, and forgets usage
    /// older than two days.
    async fn settle(&self, settlements: &[Settlement], usage: &[Usage]) -> Result<()>;
    /// What identities sent from `since` on, per identity and minute.
    async fn usage_since(&self, since: DateTime<Utc>) -> Result<Vec<Usage>>;
    /// Brings the next attempt of every deferred message due later than `at` forward to `at`; how many.
    async fn deferred_due(&self, at: DateTime<Utc>) -> Result<u64>;
    /// When the next message that is not `waiting` falls due (a queued or deferred one, or an expiring lease).
    async fn next_due(&self, waiting: &Waiting) -> Result<Option<DateTime<Utc>>>;
    async fn messages(&self, filter: &MessageFilter) -> Result<Vec<MessageSummary>>;
    async fn message(&self, id: i64) -> Result<Option<MessageDetail>>;
    /// The message itself, as it is sent (read a part at a time into one buffer).
    async fn message_content(&self, id: i64) -> Result<Option<Vec<u8>>>;
    /// Queues message `id` again now with `recipients`, its retry lifetime restarted, if its status is still
    /// `from` (false when it changed meanwhile, or the message is gone).
    async fn requeue(&self, id: i64, from: Status, recipients: &[Recipient], now: DateTime<Utc>) -> Result<bool>;
    /// Deletes messages in a final status (delivered or failed); returns how many.
    async fn purge(&self, status: Status) -> Result<u64>;
    /// How many messages are in each status.
    async fn queue_counts(&self) -> Result<Vec<(Status, u64)>>;
    /// The message waiting longest, and the last delivered and failed ones.
    async fn queue_ages(&self) -> Result<QueueAges>;

    // OAuth authorizations, one per owner.

    /// An owner's authorization, with its sealed refresh token (none for app-only).
    async fn authorization(&self, owner: Owner) -> Result<Option<(Authorization, Option<Vec<u8>>)>>;
    /// Every authorization, the relay account's first, then the devices' by id.
    async fn authorizations(&self) -> Result<Vec<Authorization>>;
    /// Stores a grant and the refresh token with it, in one commit; clears any recorded failure.
    async fn authorization_granted(&self, owner: Owner, grant: Grant<'_>, at: DateTime<Utc>) -> Result<()>;
    /// Records that someone must sign in again, with the alert event to mail, in one commit.
    async fn authorization_failed(
        &self,
        owner: Owner,
        reason: &str,
        explanation: &str,
        at: DateTime<Utc>,
        alert: &NewEvent,
    ) -> Result<()>;
    /// Deletes an authorization and its refresh token, with the audit entry; `false` when there was none.
    async fn authorization_forget(&self, owner: Owner, audit: &NewAuditEntry) -> Result<bool>;
    /// Records a sign-in under way, dropping expired ones.
    async fn put_pending_sign_in(&self, pending: &PendingSignIn) -> Result<()>;
    /// Takes (and removes) the unexpired sign-in with this `state`, whoever started it; with no state (a pasted
    /// bare code), the newest of `owner`.
    async fn take_pending_sign_in(
        &self,
        state: Option<&str>,
        owner: Owner,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingSignIn>>;

    // Events and notifications.

    /// Records a pending event; returns its id.
    async fn record_event(&self, event: &NewEvent) -> Result<i64>;
    /// The oldest pending events.
    async fn pending_events(&self, limit: u32) -> Result<Vec<EventRecord>>;
    async fn throttle(&self, kind: EventKind, node: &str) -> Result<Option<Throttle>>;
    /// The windows holding counted occurrences that no mail reported yet.
    async fn throttles_with_repeats(&self) -> Result<Vec<ThrottleRecord>>;
    /// Stores an event's handling atomically; returns the event's id and its mail's outbox id.
    async fn handle_event(&self, handling: &EventHandling<'_>) -> Result<(i64, Option<i64>)>;
    async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>>;
    async fn event(&self, id: i64) -> Result<Option<EventRecord>>;
    /// How many events of each kind are in each state.
    async fn event_counts(&self) -> Result<Vec<(EventKind, EventState, u64)>>;

    // Device accounts.

    async fn create_device(&self, device: &NewDevice, audit: &NewAuditEntry) -> Result<i64>;
    async fn devices(&self) -> Result<Vec<Device>>;
    /// The device named `username` (case-insensitive) with its password hash.
    async fn device_for_login(&self, username: &str) -> Result<Option<(Device, String)>>;
    async fn delete_device(&self, id: i64, audit: &NewAuditEntry) -> Result<bool>;
    async fn create_device_session(&self, session: &NewDeviceSession, audit: &NewAuditEntry) -> Result<()>;
    /// The device account and CSRF token of a live session.
    async fn device_session(&self, token_hash: &[u8], now: DateTime<Utc>) -> Result<Option<(Device, String)>>;
    async fn end_device_session(&self, token_hash: &[u8], audit: &NewAuditEntry) -> Result<()>;

    // The cluster.

    /// This node in its cluster; `None` while standalone.
    async fn cluster_self(&self) -> Result<Option<ClusterSelf>>;
    /// Records this node's place in its cluster (`None`: standalone again), with the audit entry when an
    /// operator changed it.
    async fn put_cluster_self(&self, state: Option<&ClusterSelf>, audit: Option<&NewAuditEntry>) -> Result<()>;
    async fn cluster_nodes(&self) -> Result<Vec<ClusterNode>>;
    /// Stores a node (replacing the one of that name), with the audit entry when an operator changed it.
    async fn put_cluster_node(&self, node: &ClusterNode, audit: Option<&NewAuditEntry>) -> Result<()>;
    /// Records a node that presents its join code: the row of that name is updated with `node`'s fields and its
    /// code cleared, only if the code's hash is `code_hash` and it has not expired at `now`; `false` otherwise.
    /// One statement, so that a code is used once however many present it at once.
    async fn join_cluster_node(
        &self,
        node: &ClusterNode,
        code_hash: &[u8],
        now: DateTime<Utc>,
        audit: &NewAuditEntry,
    ) -> Result<bool>;
    /// Records a node's call (its version) and, with `synced`, the revision it took; nothing when the node is gone
    /// (removed meanwhile).
    async fn cluster_node_seen(&self, name: &str, version: &str, at: DateTime<Utc>, synced: Option<i64>) -> Result<()>;
    /// Replaces the whole list (a follower takes the primary's).
    async fn replace_cluster_nodes(&self, nodes: &[ClusterNode]) -> Result<()>;
    /// Deletes a node; `false` when there was none of that name.
    async fn remove_cluster_node(&self, name: &str, audit: &NewAuditEntry) -> Result<bool>;
    /// Every account, API token and device account with its hash.
    async fn identities(&self) -> Result<Identities>;
    /// Makes the accounts, API tokens and device accounts exactly these, under their ids (local sign-in state,
    /// such as lockouts and last use, stays), in one commit with the audit entry.
    async fn replace_identities(&self, identities: &Identities, audit: &NewAuditEntry) -> Result<()>;

    // The daemons that use the database.

    /// Records a daemon's heartbeat (replacing what its name said before), forgetting those not seen for a day.
    async fn peer_seen(&self, peer: &Peer) -> Result<()>;
    /// Every daemon that said it uses the database, by name, with the messages each holds leased.
    async fn peers(&self) -> Result<Vec<Peer>>;
    /// A daemon stopped: it is no longer listed.
    async fn peer_gone(&self, node: &str) -> Result<()>;

    // API tokens.

    async fn create_api_token(&self, name: &str, role: Role, token_hash: &[u8], audit: &NewAuditEntry) -> Result<i64>;
    /// The token with this hash, revoked or not.
    async fn api_token_by_hash(&self, token_hash: &[u8]) -> Result<Option<ApiToken>>;
    async fn api_tokens(&self) -> Result<Vec<ApiToken>>;
    /// Revokes a token; false when there is no such token or it was revoked already.
    async fn revoke_api_token(&self, id: i64, audit: &NewAuditEntry) -> Result<bool>;
    async fn touch_api_token(&self, id: i64, at: DateTime<Utc>) -> Result<()>;
}
