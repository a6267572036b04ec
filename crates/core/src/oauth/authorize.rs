//! The authorization request: the URL the administrator's browser opens, and whether a flow suits the
//! configuration at all.

use crate::config::{EmailConfig, Provider};
use url::Url;

/// What Google's Gmail SMTP access needs; Google refuses it in the device flow.
pub const GMAIL_SCOPE: &str = "https://mail.google.com/";

/// The scope of Microsoft's app-only SMTP sending (client-credentials grant).
pub const MICROSOFT_APP_ONLY_SCOPE: &str = "https://outlook.office365.com/.default";

/// A flow that cannot work with this configuration, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsuitable(pub String);

/// The authorization-code URL with PKCE (S256) and `state`. Google gets `access_type=offline` and
/// `prompt=consent` so that it issues a refresh token every time; Microsoft's refresh token comes with the
/// `offline_access` scope. `login_hint` preselects the mailbox when one is configured.
pub fn authorization_url(
    cfg: &EmailConfig,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> Result<Url, Unsuitable> {
    let endpoint = cfg.oauth.authorization_endpoint.as_deref().ok_or_else(|| {
        Unsuitable("no authorization endpoint is configured: set oauth.provider (microsoft, google) or oauth.authorization_endpoint".into())
    })?;
    let client_id = client_id(cfg)?;
    let mut url =
        Url::parse(endpoint).map_err(|e| Unsuitable(format!("oauth.authorization_endpoint is not a URL: {e}")))?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("client_id", client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &cfg.oauth.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        if cfg.oauth.provider == Some(Provider::Google) {
            query.append_pair("access_type", "offline").append_pair("prompt", "consent");
        }
        if let Some(account) = cfg.mailbox() {
            query.append_pair("login_hint", account);
        }
    }
    Ok(url)
}

/// Checks that an authorization-code sign-in can start: an authorization endpoint, a client id, and the
/// redirect URI, which comes from `public_base_url`.
pub fn check_code_flow(cfg: &EmailConfig) -> Result<(), Unsuitable> {
    if cfg.oauth.authorization_endpoint.is_none() {
        return Err(Unsuitable(
            "no authorization endpoint is configured: set oauth.provider (microsoft, google) or oauth.authorization_endpoint".into(),
        ));
    }
    client_id(cfg)?;
    if cfg.redirect_uri().is_none() {
        return Err(Unsuitable("set public_base_url first: the redirect URI is derived from it".into()));
    }
    Ok(())
}

/// Checks that the device authorization grant (RFC 8628) can work: an endpoint, a client id, and not Gmail's
/// scope, which Google does not allow in that flow.
pub fn check_device_flow(cfg: &EmailConfig) -> Result<(), Unsuitable> {
    if cfg.oauth.scopes.iter().any(|s| s == GMAIL_SCOPE) {
        return Err(Unsuitable(
            "Google does not allow the Gmail scope (https://mail.google.com/) in the device flow; use the \
             authorization-code flow instead (`tidings oauth login`, or paste the redirect URL)"
                .into(),
        ));
    }
    if cfg.oauth.device_authorization_endpoint.is_none() {
        return Err(Unsuitable(
            "no device authorization endpoint is configured: set oauth.provider=microsoft or oauth.device_authorization_endpoint".into(),
        ));
    }
    client_id(cfg).map(|_| ())
}

/// Checks that the client-credentials grant can work: Microsoft app-only sending needs a specific tenant
/// (not `common`, `organizations` or `consumers`) and a client secret.
pub fn check_client_credentials(cfg: &EmailConfig, has_client_secret: bool) -> Result<(), Unsuitable> {
    client_id(cfg)?;
    if !has_client_secret {
        return Err(Unsuitable(
            "the client-credentials flow needs oauth.client_secret, or oauth.client_credential=certificate with the \
             client's certificate"
                .into(),
        ));
    }
    if cfg.oauth.provider == Some(Provider::Microsoft)
        && matches!(cfg.oauth.tenant.as_deref(), None | Some("common" | "organizations" | "consumers"))
    {
        return Err(Unsuitable(
            "app-only sending needs your tenant's id or domain in oauth.tenant, not common, organizations or consumers"
                .into(),
        ));
    }
    Ok(())
}

fn client_id(cfg: &EmailConfig) -> Result<&str, Unsuitable> {
    cfg.oauth.client_id.as_deref().ok_or_else(|| Unsuitable("set oauth.client_id first".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::preset;
    use std::collections::HashMap;

    fn params(url: &Url) -> HashMap<String, String> {
        url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }

    fn configured(provider: Provider) -> EmailConfig {
        let mut cfg = EmailConfig { sender: Some("alerts@contoso.com".into()), ..Default::default() };
        cfg.oauth.tenant = (provider == Provider::Microsoft).then(|| "contoso.com".into());
        preset::apply_provider(&mut cfg, provider);
        cfg.oauth.client_id = Some("6731de76-14a6-49ae-97bc-6eba6914391e".into());
        cfg
    }

    #[test]
    fn microsoft_authorization_url() {
        let url = authorization_url(
            &configured(Provider::Microsoft),
            "https://t.example.com/login/smtp-verification/",
            "st4te",
            "ch4llenge",
        )
        .unwrap();
        assert_eq!(
            url.as_str().split('?').next(),
            Some("https://login.microsoftonline.com/contoso.com/oauth2/v2.0/authorize")
        );
        let p = params(&url);
        assert_eq!(p["response_type"], "code");
        assert_eq!(p["redirect_uri"], "https://t.example.com/login/smtp-verification/");
        assert_eq!(p["scope"], "https://outlook.office.com/SMTP.Send offline_access");
        assert_eq!(
            (p["state"].as_str(), p["code_challenge"].as_str(), p["code_challenge_method"].as_str()),
            ("st4te", "ch4llenge", "S256")
        );
        assert_eq!(p["login_hint"], "alerts@contoso.com");
        assert!(!p.contains_key("access_type"));
    }

    #[test]
    fn google_asks_for_offline_access_and_consent() {
        let p = params(&authorization_url(&configured(Provider::Google), "https://t/", "s", "c").unwrap());
        assert_eq!(
            (p["access_type"].as_str(), p["prompt"].as_str(), p["scope"].as_str()),
            ("offline", "consent", GMAIL_SCOPE)
        );
    }

    #[test]
    fn missing_pieces_are_named() {
        let err = authorization_url(&EmailConfig::default(), "https://t/", "s", "c").unwrap_err();
        assert!(err.0.contains("oauth.provider"), "{err}");
        let mut cfg = configured(Provider::Microsoft);
        cfg.oauth.client_id = None;
        assert!(authorization_url(&cfg, "https://t/", "s", "c").unwrap_err().0.contains("oauth.client_id"));
    }

    #[test]
    fn the_device_flow_is_refused_for_gmail_up_front() {
        let err = check_device_flow(&configured(Provider::Google)).unwrap_err();
        assert!(err.0.contains("authorization-code flow"), "{err}");
        assert_eq!(check_device_flow(&configured(Provider::Microsoft)), Ok(()));
        let mut custom = configured(Provider::Microsoft);
        custom.oauth.device_authorization_endpoint = None;
        assert!(check_device_flow(&custom).unwrap_err().0.contains("device authorization endpoint"));
    }

    #[test]
    fn client_credentials_need_a_specific_tenant_and_a_secret() {
        let mut cfg = configured(Provider::Microsoft);
        assert_eq!(check_client_credentials(&cfg, true), Ok(()));
        assert!(check_client_credentials(&cfg, false).unwrap_err().0.contains("client_secret"));
        cfg.oauth.tenant = Some("organizations".into());
        assert!(check_client_credentials(&cfg, true).unwrap_err().0.contains("tenant"));
    }

    #[test]
    fn the_code_flow_needs_an_endpoint_a_client_and_a_redirect_uri() {
        let mut cfg = EmailConfig::default();
        assert!(check_code_flow(&cfg).unwrap_err().0.contains("authorization endpoint"));
        cfg.oauth.authorization_endpoint = Some("https://idp.example.com/authorize".into());
        assert!(check_code_flow(&cfg).unwrap_err().0.contains("oauth.client_id"));
        cfg.oauth.client_id = Some("abc".into());
        assert!(check_code_flow(&cfg).unwrap_err().0.contains("public_base_url"));
        cfg.public_base_url = Some("https://tidings.example.com".into());
        assert_eq!(check_code_flow(&cfg), Ok(()));
    }
}
