//! Tidings' OAuth 2.0 token management.
//!
//! - [`access_tokens`]: the [`access_tokens::TokenManager`], which delivery asks for access tokens. It keeps the access
//!   token in memory, refreshes it ahead of expiry in the background, lets one refresh run at a time, stores a
//!   rotated refresh token at once, retries passing failures and reports when an administrator must act.
//! - [`status`]: the token status shown to administrators.
//! - [`vault`]: the data directory's [`access_tokens::Vault`]: the refresh token sealed in the database.
//! - [`http`]: the provider's token endpoint over HTTPS; [`source`]: what the daemon hands delivery (the
//!   manager once authorized, with an endpoint that follows the configuration in force).
//!
//! The manager reaches the provider through a [`access_tokens::TokenEndpoint`] and keeps the refresh token in a
//! [`access_tokens::Vault`], so that it can be tested under a paused clock.

pub mod access_tokens;
pub mod flows;
pub mod http;
pub mod mailbox;
pub mod source;
pub mod status;
pub mod vault;
