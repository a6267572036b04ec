//! Where stored secrets are sent, and who may change that. The relay password and a static access token go to
//! the relay (`smtp.host`, `smtp.port`); the client secret and the refresh tokens to the token endpoint,
//! through the proxy. A caller who may change the configuration but may not see secrets (a network
//! administrator) must not be able to send them somewhere of their choosing:
//! - the OAuth endpoints and the proxy are the administrator's to set by hand (a provider preset, whose
//!   endpoints are the provider's own, is anyone's to choose);
//! - moving the relay, or the token endpoint through a preset, clears the secrets that would follow it, so
//!   that they must be entered again.

use super::{EmailConfig, FieldError};
use crate::secret::SecretName;

/// Keys only an administrator may set by hand: where OAuth credentials go.
pub const ADMINISTRATOR_KEYS: &[&str] =
    &["oauth.authorization_endpoint", "oauth.token_endpoint", "oauth.device_authorization_endpoint", "oauth.proxy_url"];

/// What a change made without the right to choose where secrets go must also do, or may not do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Custody {
    /// Edits refused: a destination set by hand.
    pub refused: Vec<FieldError>,
    /// Stored secrets to clear, with the key whose change made them follow.
    pub clear: Vec<(SecretName, &'static str)>,
    /// The refresh tokens (the relay account's and the device accounts' own) must be forgotten: the token
    /// endpoint moved.
    pub forget_authorizations: bool,
}

/// Compares `old` with `new`, the result of edits to `edited` keys that set the secrets in `set`.
pub fn without_custody<'a>(
    old: &EmailConfig,
    new: &EmailConfig,
    edited: impl IntoIterator<Item = &'a str>,
    set: &[SecretName],
) -> Custody {
    let mut custody = Custody::default();
    for key in edited {
        if ADMINISTRATOR_KEYS.contains(&key) && super::keys::get(old, key) != super::keys::get(new, key) {
            custody.refused.push(FieldError::new(
                key,
                "only an administrator may set where Tidings sends OAuth credentials; choose oauth.provider \
                 (microsoft or google fill in their own endpoints), or ask an administrator",
            ));
        }
    }
    let relay_moved = old.smtp.host != new.smtp.host || old.smtp.effective_port() != new.smtp.effective_port();
    let endpoint_moved =
        old.oauth.token_endpoint != new.oauth.token_endpoint || old.oauth.proxy_url != new.oauth.proxy_url;
    let follows = [
        (SecretName::SmtpPassword, relay_moved, "smtp.host"),
        (SecretName::StaticAccessToken, relay_moved, "smtp.host"),
        (SecretName::OAuthClientSecret, endpoint_moved, "oauth.token_endpoint"),
    ];
    for (secret, moved, because) in follows {
        if moved && !set.contains(&secret) {
            custody.clear.push((secret, because));
        }
    }
    custody.forget_authorizations = endpoint_moved;
    custody
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{keys, preset};

    fn config(pairs: &[(&str, &str)]) -> EmailConfig {
        let mut cfg = EmailConfig::default();
        for (k, v) in pairs {
            keys::set(&mut cfg, k, v).unwrap_or_else(|e| panic!("{k}: {e}"));
        }
        cfg
    }

    #[test]
    fn endpoints_by_hand_are_refused_and_moved_secrets_are_cleared() {
        let old = config(&[("smtp.host", "smtp.example.com"), ("oauth.token_endpoint", "https://idp.example.com/t")]);
        let new = config(&[("smtp.host", "evil.example"), ("oauth.token_endpoint", "https://evil.example/t")]);
        let c = without_custody(&old, &new, ["smtp.host", "oauth.token_endpoint"], &[]);
        assert_eq!(c.refused.len(), 1);
        assert_eq!(c.refused[0].field, "oauth.token_endpoint");
        let cleared: Vec<SecretName> = c.clear.iter().map(|(s, _)| *s).collect();
        assert_eq!(cleared, [SecretName::SmtpPassword, SecretName::StaticAccessToken, SecretName::OAuthClientSecret]);
        assert!(c.forget_authorizations);

        // A new password given with the new relay is kept; the port counts as the relay too.
        let new = config(&[
            ("smtp.host", "smtp.example.com"),
            ("smtp.port", "2525"),
            ("oauth.token_endpoint", "https://idp.example.com/t"),
        ]);
        let c = without_custody(&old, &new, ["smtp.port", "smtp.password"], &[SecretName::SmtpPassword]);
        assert_eq!(c.clear, [(SecretName::StaticAccessToken, "smtp.host")]);
        assert!(c.refused.is_empty() && !c.forget_authorizations);

        // Nothing that matters moved: nothing to do.
        let c = without_custody(&old, &old, ["locale"], &[]);
        assert_eq!(c, Custody::default());
    }

    #[test]
    fn a_preset_is_anyones_to_choose_but_what_followed_the_old_endpoint_is_cleared() {
        let old = config(&[("oauth.token_endpoint", "https://idp.example.com/t")]);
        let mut new = old.clone();
        preset::apply_provider(&mut new, crate::config::Provider::Google);
        let c = without_custody(&old, &new, ["oauth.provider"], &[]);
        assert!(c.refused.is_empty(), "{:?}", c.refused);
        assert!(c.clear.iter().any(|(s, _)| *s == SecretName::OAuthClientSecret) && c.forget_authorizations);
    }
}
