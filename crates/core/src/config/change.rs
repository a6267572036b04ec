//! Applying an administrator's edits (`key=value` pairs) to the configuration: presets first, then explicit
//! values, then validation of the result as a whole.

use super::{EmailConfig, FieldError, Provider, ValidationErrors, keys, preset, validate};
use crate::secret::{SecretName, SecretString};

/// What to do with a stored secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretUpdate {
    Set(SecretString),
    Clear,
}

/// The result of a valid set of edits, ready to be stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes {
    pub config: EmailConfig,
    pub secrets: Vec<(SecretName, SecretUpdate)>,
    /// The keys whose value changed, for the audit log (secrets by name only). Empty when nothing changed.
    pub changed: Vec<String>,
}

/// Applies `edits` to `current` and validates the result. `present` tells which secrets are stored now.
///
/// Order matters and is fixed, whatever order the edits come in: `oauth.tenant`, then `oauth.provider` (which
/// fills that provider's preset), then every other key, so that explicit values override the preset.
pub fn apply(
    current: &EmailConfig,
    edits: &[(String, String)],
    present: validate::SecretsPresent,
) -> Result<Changes, ValidationErrors> {
    let mut cfg = current.clone();
    let mut errors = Vec::new();
    let edit_of = |key: &str| edits.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str());

    if let Some(tenant) = edit_of("oauth.tenant") {
        set_or_collect(&mut cfg, "oauth.tenant", tenant, &mut errors);
    }
    if let Some(provider) = edit_of("oauth.provider") {
        set_or_collect(&mut cfg, "oauth.provider", provider, &mut errors);
        if let Some(chosen) = cfg.oauth.provider
            && current.oauth.provider != Some(chosen)
        {
            preset::apply_provider(&mut cfg, chosen);
        }
    }
    if edit_of("oauth.tenant").is_some()
        && cfg.oauth.provider == Some(Provider::Microsoft)
        && let Some(tenant) = cfg.oauth.tenant.clone()
    {
        preset::fill_microsoft_endpoints(&mut cfg, &tenant);
    }

    if let Some(transport) = edit_of("delivery.transport") {
        set_or_collect(&mut cfg, "delivery.transport", transport, &mut errors);
        if cfg.delivery.transport != current.delivery.transport {
            preset::apply_transport(&mut cfg);
        }
    }

    let mut secrets: Vec<(SecretName, SecretUpdate)> = Vec::new();
    for (key, value) in edits {
        if key == "oauth.tenant" || key == "oauth.provider" || key == "delivery.transport" {
            continue;
        }
        if let Some(name) = SecretName::from_key(key) {
            let update = if value.is_empty() {
                SecretUpdate::Clear
            } else {
                SecretUpdate::Set(SecretString::new(value.clone()))
            };
            secrets.retain(|(n, _)| *n != name);
            secrets.push((name, update));
        } else {
            set_or_collect(&mut cfg, key, value, &mut errors);
        }
    }

    let mut after = present;
    for (name, update) in &secrets {
        after.set(*name, matches!(update, SecretUpdate::Set(_)));
    }
    if let Err(ValidationErrors(more)) = validate(&cfg, after) {
        let fresh: Vec<FieldError> =
            more.into_iter().filter(|e| !errors.iter().any(|seen| seen.field == e.field)).collect();
        errors.extend(fresh);
    }
    if !errors.is_empty() {
        return Err(ValidationErrors(errors));
    }

    let mut changed: Vec<String> = keys::KEYS
        .iter()
        .filter(|k| !k.secret && keys::get(current, k.key) != keys::get(&cfg, k.key))
        .map(|k| k.key.to_owned())
        .collect();
    secrets.retain(|(name, update)| matches!(update, SecretUpdate::Set(_)) || present.has(*name));
    changed.extend(secrets.iter().map(|(name, _)| name.key().to_owned()));
    Ok(Changes { config: cfg, secrets, changed })
}

fn set_or_collect(cfg: &mut EmailConfig, key: &str, value: &str, errors: &mut Vec<FieldError>) {
    if let Err(message) = keys::set(cfg, key, value) {
        errors.push(FieldError::new(key, message));
    }
}

/// What choosing a provider in `edits` would change besides the keys the edits set themselves: each key with
/// its value now and the preset's, for the administrator to see before saving (and keep theirs if they wish).
/// Empty when the edits choose no new provider.
pub fn preset_effect(current: &EmailConfig, edits: &[(String, String)]) -> Vec<(String, String, String)> {
    let edit_of = |key: &str| edits.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let mut after = current.clone();
    if let Some(tenant) = edit_of("oauth.tenant") {
        let _ = keys::set(&mut after, "oauth.tenant", tenant);
    }
    let Some(chosen) = edit_of("oauth.provider").and_then(|p| {
        let mut probe = current.clone();
        keys::set(&mut probe, "oauth.provider", p).ok()?;
        probe.oauth.provider
    }) else {
        return Vec::new();
    };
    if current.oauth.provider == Some(chosen) {
        return Vec::new();
    }
    after.oauth.provider = Some(chosen);
    preset::apply_provider(&mut after, chosen);
    if chosen == Provider::Microsoft
        && let Some(tenant) = after.oauth.tenant.clone()
    {
        preset::fill_microsoft_endpoints(&mut after, &tenant);
    }
    keys::KEYS
        .iter()
        .filter(|k| !k.secret && !matches!(k.key, "oauth.provider" | "oauth.tenant") && edit_of(k.key).is_none())
        .filter_map(|k| {
            let (now, then) = (keys::get(current, k.key)?, keys::get(&after, k.key)?);
            (now != then).then(|| (k.key.to_owned(), now, then))
        })
        .collect()
}

/// What the audit log records of a change: each plain key with its old and new value (`locale: en → fr`), a
/// secret only as changed (`oauth.client_secret: changed`), never its value.
pub fn audited(before: &EmailConfig, after: &EmailConfig, changed: &[String]) -> Vec<String> {
    let shown = |v: Option<String>| v.filter(|v| !v.is_empty()).unwrap_or_else(|| "(none)".into());
    changed
        .iter()
        .map(|key| {
            let secret = keys::KEYS.iter().any(|k| k.key == key && k.secret);
            if secret {
                format!("{key}: changed")
            } else {
                format!("{key}: {} → {}", shown(keys::get(before, key)), shown(keys::get(after, key)))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthMethod, Encryption, SecretsPresent};

    const GUID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";

    fn edits(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_microsoft_setup_in_one_command() {
        let changes = apply(
            &EmailConfig::default(),
            &edits(&[
                ("sender", "alerts@contoso.com"),
                ("oauth.client_id", GUID),
                ("oauth.provider", "microsoft"),
                ("oauth.tenant", "contoso.com"),
            ]),
            SecretsPresent::default(),
        )
        .unwrap();
        let cfg = &changes.config;
        assert_eq!(cfg.smtp.auth, AuthMethod::Oauth2);
        assert_eq!(cfg.smtp.host.as_deref(), Some("smtp.office365.com"));
        assert_eq!(
            cfg.oauth.token_endpoint.as_deref(),
            Some("https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token")
        );
        for key in ["sender", "smtp.host", "smtp.port", "smtp.auth", "oauth.provider", "oauth.tenant", "oauth.scopes"] {
            assert!(changes.changed.iter().any(|c| c == key), "{key} in {:?}", changes.changed);
        }
    }

    #[test]
    fn explicit_values_override_the_preset_whatever_their_order() {
        let changes = apply(
            &EmailConfig::default(),
            &edits(&[
                ("smtp.port", "25"),
                ("smtp.encryption", "tls"),
                ("oauth.provider", "google"),
                ("oauth.client_id", "x.apps.googleusercontent.com"),
                ("sender", "a@example.com"),
            ]),
            SecretsPresent::default(),
        )
        .unwrap();
        assert_eq!((changes.config.smtp.port, changes.config.smtp.encryption), (Some(25), Encryption::Tls));
        assert_eq!(changes.config.smtp.host.as_deref(), Some("smtp.gmail.com"));
    }

    #[test]
    fn changing_only_the_tenant_moves_the_microsoft_endpoints() {
        let first = apply(
            &EmailConfig::default(),
            &edits(&[("sender", "a@contoso.com"), ("oauth.provider", "microsoft"), ("oauth.client_id", GUID)]),
            SecretsPresent::default(),
        )
        .unwrap();
        let mut cfg = first.config;
        cfg.smtp.port = Some(2525);
        let second = apply(&cfg, &edits(&[("oauth.tenant", GUID)]), SecretsPresent::default()).unwrap();
        assert!(second.config.oauth.authorization_endpoint.unwrap().contains(GUID));
        assert_eq!(second.config.smtp.port, Some(2525), "the relay stays as overridden");
        assert_eq!(
            second.changed,
            [
                "oauth.tenant",
                "oauth.authorization_endpoint",
                "oauth.token_endpoint",
                "oauth.device_authorization_endpoint"
            ]
        );
    }

    #[test]
    fn choosing_the_same_provider_again_keeps_overrides() {
        let mut cfg = EmailConfig::default();
        preset::apply_provider(&mut cfg, Provider::Google);
        cfg.sender = Some("a@example.com".into());
        cfg.oauth.client_id = Some("id".into());
        cfg.smtp.port = Some(587);
        let changes = apply(&cfg, &edits(&[("oauth.provider", "google")]), SecretsPresent::default()).unwrap();
        assert_eq!(changes.config.smtp.port, Some(587));
        assert!(changes.changed.is_empty());
    }

    #[test]
    fn secrets_are_separated_and_named_in_changes() {
        let changes = apply(
            &EmailConfig::default(),
            &edits(&[
                ("sender", "a@example.com"),
                ("smtp.host", "smtp.example.com"),
                ("smtp.auth", "password"),
                ("smtp.username", "dev"),
                ("smtp.password", "s3cret"),
            ]),
            SecretsPresent::default(),
        )
        .unwrap();
        assert_eq!(changes.secrets, vec![(SecretName::SmtpPassword, SecretUpdate::Set(SecretString::new("s3cret")))]);
        assert!(changes.changed.contains(&"smtp.password".to_owned()));
        assert!(!format!("{changes:?}").contains("s3cret"));
    }

    #[test]
    fn clearing_a_secret_that_is_not_set_is_no_change() {
        let changes =
            apply(&EmailConfig::default(), &edits(&[("oauth.client_secret", "")]), SecretsPresent::default()).unwrap();
        assert!(changes.secrets.is_empty() && changes.changed.is_empty());
    }

    #[test]
    fn clearing_a_required_secret_is_refused() {
        let mut cfg = EmailConfig::default();
        for (k, v) in [
            ("sender", "a@example.com"),
            ("smtp.host", "h.example.com"),
            ("smtp.auth", "password"),
            ("smtp.username", "u"),
        ] {
            keys::set(&mut cfg, k, v).unwrap();
        }
        let present = SecretsPresent { smtp_password: true, ..Default::default() };
        let err = apply(&cfg, &edits(&[("smtp.password", "")]), present).unwrap_err();
        assert!(err.has("smtp.password"), "{err}");
    }

    #[test]
    fn parse_errors_and_validation_errors_come_together() {
        let err = apply(
            &EmailConfig::default(),
            &edits(&[("smtp.port", "x"), ("smtp.hots", "a"), ("sender", "nope"), ("admin.time_zone", "Nowhere")]),
            SecretsPresent::default(),
        )
        .unwrap_err();
        for field in ["smtp.port", "smtp.hots", "sender", "admin.time_zone"] {
            assert!(err.has(field), "{field}: {err}");
        }
        assert!(err.to_string().contains("unknown key"));
    }

    #[test]
    fn choosing_a_provider_says_what_its_preset_would_change() {
        let mut current = EmailConfig::default();
        current.smtp.host = Some("mail.example.com".into());
        current.smtp.port = Some(25);
        let edits =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>();
        let effect = preset_effect(&current, &edits(&[("oauth.provider", "microsoft")]));
        let host = effect.iter().find(|(k, _, _)| k == "smtp.host").expect("the relay host changes");
        assert_eq!((host.1.as_str(), host.2.as_str()), ("mail.example.com", "smtp.office365.com"));
        assert!(effect.iter().any(|(k, _, _)| k == "smtp.port"), "{effect:?}");
        // A key the administrator sets in the same edit keeps its value: the preset does not touch it.
        let kept =
            preset_effect(&current, &edits(&[("oauth.provider", "microsoft"), ("smtp.host", "mail.example.com")]));
        assert!(!kept.iter().any(|(k, _, _)| k == "smtp.host"), "{kept:?}");
        assert!(preset_effect(&current, &edits(&[("sender", "a@example.com")])).is_empty(), "no provider chosen");
    }
}
