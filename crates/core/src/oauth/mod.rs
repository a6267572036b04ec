//! OAuth 2.0 as Tidings speaks it with Microsoft Entra ID, Google and other servers: the pure part.
//!
//! - [`pkce`]: code verifiers and S256 challenges, and `state` values.
//! - [`authorize`]: the authorization URL, with each provider's extras, and the device-flow checks.
//! - [`redirect`]: reading what the browser came back with, or what an administrator pasted.
//! - [`response`]: the token endpoint's and device endpoint's answers, including provider spellings.
//! - [`error`]: what a provider's error means (try later, or an administrator must act) and what to do,
//!   with Microsoft's AADSTS codes and Google's testing-mode expiry explained.
//!
//! - [`lifetime`]: how long a refresh token lives unused at each provider.
//!
//! No HTTP here: the OAuth client that sends these requests lives at the edge.

pub mod authorize;
pub mod claims;
pub mod error;
pub mod lifetime;
pub mod pkce;
pub mod redirect;
pub mod response;
pub mod setup;
