//! Tidings' delivery: getting outbox messages to the configured relay.
//!
//! - [`smtp`]: the SMTP client. Implicit TLS or required STARTTLS (no fall-back to clear text), certificate
//!   checks as configured, AUTH PLAIN / LOGIN / XOAUTH2 (two-step when the line would pass 512 octets, Gmail's
//!   `334 <JSON>` failure understood), and errors that classify themselves.
//! - [`api`]: sending through Microsoft Graph or the Gmail API instead (`delivery.transport`).
//! - [`token`]: where XOAUTH2 access tokens come from: the [`token::TokenSource`] the OAuth work implements.
//! - [`pool`]: open connections kept for reuse.
//! - [`doctor`]: the path a message takes, walked step by step, stopping at the first that fails.
//! - [`certificates`]: what the relay presents, for an administrator to pin.
//! - [`engine`]: the task that leases due messages, delivers them over pooled connections and settles the
//!   outcome in batches.

pub mod api;
pub mod certificates;
pub mod doctor;
pub mod engine;
pub mod pool;
pub mod smtp;
pub mod token;
