//! Where stored secrets are sent, and who may change that. The relay password and a static access token go to
//! the relay (`smtp.host`, `smtp.port`); the client secret and the refresh tokens to the token endpoint,
//! through the proxy. A caller who may change the configuration but may not see secrets (a network
//! administrator) must not be able to send them somewhere of their choosing:
//! - the OAuth endpoints, the proxy and the API endpoints (`graph.endpoint`, `gmail.endpoint`, where access
//!   tokens go with an API transport) are the administrator's to set by hand; anyone may choose a provider
//!   preset, or an endpoint on the provider's own host (a Google client file's `token_uri`);
//! - moving the relay, or the token endpoint through a preset, clears the secrets that would follow it, so
//!   that they must be entered again.

use super::{EmailConfig, FieldError};
use crate::secret::SecretName;

/// Keys only an administrator may set by hand: where OAuth credentials go.
pub const ADMINISTRATOR_KEYS: &[&str] = &[
    "oauth.authorization_endpoint",
    "oauth.token_endpoint",
    "oauth.device_authorization_endpoint",
    "oauth.proxy_url",
    // Where access tokens go with an API transport.
    "graph.endpoint",
    "gmail.endpoint",
];

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
    // What the chosen provider's preset gives, to tell the provider's own hosts.
    let preset = new.oauth.provider.map(|provider| {
        let mut preset = EmailConfig::default();
        super::preset::apply_provider(&mut preset, provider);
        if let Some(tenant) = new.oauth.tenant.as_deref().filter(|_| provider == super::Provider::Microsoft) {
            super::preset::fill_microsoft_endpoints(&mut preset, tenant);
        }
        preset
    });
    let host = |cfg: &EmailConfig, key: &str| {
        super::keys::get(cfg, key).and_then(|v| url::Url::parse(&v).ok()).and_then(|u| u.host_str().map(str::to_owned))
    };
    for key in edited {
        let moved = super::keys::get(old, key) != super::keys::get(new, key);
        let providers_own = preset
            .as_ref()
            .is_some_and(|p| host(new, key).is_some_and(|h| host(p, key).as_deref() == Some(h.as_str())));
        if ADMINISTRATOR_KEYS.contains(&key) && moved && !providers_own {
            custody.refused.push(FieldError::new(
                key,
                "only an administrator may set where Tidings sends OAuth credentials; choose oauth.provider \
                 (microsoft or google fill in their own endpoints), or ask an administrator",
            ));
        }
    }
    // A service account with domain-wide delegation acts for whichever mailbox of the domain it is told: which one
    // is the administrator's to choose, as is letting it act at all.
    let delegated = |c: &EmailConfig| c.oauth.client_credential == super::ClientCredential::ServiceAccount;
    if delegated(new) && (!delegated(old) || old.mailbox() != new.mailbox()) {
        let field = if delegated(old) { "oauth.account" } else { "oauth.client_credential" };
        custody.refused.push(FieldError::new(
            field,
            "a service account can act for any mailbox of the domain: only an administrator may let it act, and \
             choose the mailbox (oauth.account, or the sender)",
        ));
    }
    let relay_moved = old.smtp.host != new.smtp.host
        || old.smtp.effective_port() != new.smtp.effective_port()
        || old.delivery.transport != new.delivery.transport;
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
    fn only_an_administrator_lets_a_service_account_act_and_chooses_for_whom() {
        let plain = config(&[("sender", "alerts@example.com")]);
        let delegated = config(&[("sender", "alerts@example.com"), ("oauth.client_credential", "service_account")]);
        let c = without_custody(&plain, &delegated, ["oauth.client_credential"], &[]);
        assert_eq!(c.refused[0].field, "oauth.client_credential");
        let ceo = config(&[("sender", "ceo@example.com"), ("oauth.client_credential", "service_account")]);
        let c = without_custody(&delegated, &ceo, ["sender"], &[]);
        assert_eq!(c.refused[0].field, "oauth.account", "the sender is the mailbox when oauth.account is unset");
        let c = without_custody(&delegated, &delegated, ["locale"], &[]);
        assert!(c.refused.is_empty());
    }

    #[test]
    fn an_endpoint_on_the_providers_own_host_is_anyones_to_set() {
        let old = config(&[("oauth.token_endpoint", "https://idp.example.com/t")]);
        let google = |token: &str| {
            let mut cfg = old.clone();
            preset::apply_provider(&mut cfg, crate::config::Provider::Google);
            keys::set(&mut cfg, "oauth.authorization_endpoint", "https://accounts.google.com/o/oauth2/auth").unwrap();
            keys::set(&mut cfg, "oauth.token_endpoint", token).unwrap();
            cfg
        };
        let edited = ["oauth.provider", "oauth.authorization_endpoint", "oauth.token_endpoint"];
        assert!(without_custody(&old, &google("https://oauth2.googleapis.com/token"), edited, &[]).refused.is_empty());
        let c = without_custody(&old, &google("https://evil.example/token"), edited, &[]);
        assert_eq!(c.refused.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["oauth.token_endpoint"]);
        // A proxy is never the provider's own.
        let mut proxied = google("https://oauth2.googleapis.com/token");
        keys::set(&mut proxied, "oauth.proxy_url", "http://evil.example:3128").unwrap();
        let c = without_custody(&old, &proxied, ["oauth.provider", "oauth.proxy_url"], &[]);
        assert_eq!(c.refused.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["oauth.proxy_url"]);
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
