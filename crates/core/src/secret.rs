//! Secret values and the names of the secrets Tidings stores.
//!
//! A [`SecretString`] never shows its value through `Debug` or `Display`, and wipes its memory when dropped; the
//! only way to read it is [`SecretString::expose`], which makes every use easy to find.

use std::fmt;
use zeroize::Zeroizing;

/// A secret text: a password, a client secret, a refresh token.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret itself. Call it only where the value leaves for its one legitimate use.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

/// The secrets that belong to the email configuration, by their configuration key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretName {
    /// `smtp.password`: the relay password for `password` authentication.
    SmtpPassword,
    /// `oauth.client_secret`: the OAuth client (application) secret.
    OAuthClientSecret,
    /// `oauth.static_access_token`: a fixed access token, used while no OAuth authorization is stored.
    StaticAccessToken,
    /// `oauth.client_certificate`: the OAuth client's certificate and private key (PEM), for client assertions.
    OAuthClientCertificate,
    /// `oauth.service_account_key`: a Google service account's private key (PEM), for JWT bearer grants.
    ServiceAccountKey,
}

impl SecretName {
    pub const ALL: [SecretName; 5] = [
        SecretName::SmtpPassword,
        SecretName::OAuthClientSecret,
        SecretName::StaticAccessToken,
        SecretName::OAuthClientCertificate,
        SecretName::ServiceAccountKey,
    ];

    /// The configuration key, which is also the name the secret is stored under.
    pub fn key(self) -> &'static str {
        match self {
            SecretName::SmtpPassword => "smtp.password",
            SecretName::OAuthClientSecret => "oauth.client_secret",
            SecretName::StaticAccessToken => "oauth.static_access_token",
            SecretName::OAuthClientCertificate => "oauth.client_certificate",
            SecretName::ServiceAccountKey => "oauth.service_account_key",
        }
    }

    /// A private key: it leaves the node only sealed, and is made or imported rather than typed.
    pub fn is_private_key(self) -> bool {
        matches!(self, SecretName::OAuthClientCertificate | SecretName::ServiceAccountKey)
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|name| name.key() == key)
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = SecretString::new("hunter2-very-secret");
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(secret.expose(), "hunter2-very-secret");
    }

    #[test]
    fn names_round_trip_through_keys() {
        for name in SecretName::ALL {
            assert_eq!(SecretName::from_key(name.key()), Some(name));
        }
        assert_eq!(SecretName::from_key("smtp.host"), None);
    }
}
