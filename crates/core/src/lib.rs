//! Tidings' domain core: what the email configuration is and what makes it valid.
//!
//! Everything here is a value or a pure function: no file, network, SQL, HTTP or SMTP. The edges (storage, the
//! daemon, the CLI) read and write; this crate decides.
//!
//! - [`config`]: the administrator's email configuration, the dotted keys that edit it, provider presets,
//!   Google's client-file import and validation.
//! - [`address`] and [`net`]: the syntax of mail addresses, host names and URLs, shared by validation.
//! - [`secret`]: secret values that never print, and the names of the secrets Tidings keeps.
//! - [`message`] and [`outbox`]: messages to send, and how delivery attempts settle them.
//! - [`oauth`]: the OAuth 2.0 protocol's pure part: PKCE, authorization URLs, redirects, responses, errors.
//! - [`notify`]: the event catalogue, localized notification templates, throttling, the daily notice's slot.
//! - [`submission`]: the SMTP submission server's protocol (commands, session, data, SASL), without IO.
//! - [`account`]: roles and user names.
//! - [`invalid`]: why a value was refused, the error of every parser and validator here.
//! - [`audit`]: what an audit-log entry records.
//! - [`glance`]: what the status page says at a glance: each part's level and the action that fits.
//! - [`cluster`]: node roles, the join code, the keys that stay a node's own, what a follower says.

pub mod account;
pub mod address;
pub mod audit;
pub mod cluster;
pub mod config;
pub mod glance;
pub mod invalid;
pub mod message;
pub mod net;
pub mod notify;
pub mod oauth;
pub mod outbox;
pub mod secret;
pub mod submission;

pub use config::{EmailConfig, FieldError, ValidationErrors};
pub use invalid::Invalid;
