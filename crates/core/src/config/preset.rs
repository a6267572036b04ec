//! Provider presets: what choosing Microsoft or Google fills in. Every value can be overridden afterwards.
//!
//! Sources: Microsoft identity platform v2.0 endpoints (`login.microsoftonline.com/{tenant}/oauth2/v2.0/…`) and
//! Exchange Online SMTP AUTH (`smtp.office365.com:587`, STARTTLS, scope `https://outlook.office.com/SMTP.Send`);
//! Google's OAuth 2.0 endpoints and Gmail SMTP (`smtp.gmail.com:465`, implicit TLS, scope
//! `https://mail.google.com/`).

use super::{AuthMethod, EmailConfig, Encryption, Provider, Transport};

/// The tenant used when Microsoft is chosen without one: work and school accounts, where SMTP AUTH lives.
pub const DEFAULT_MICROSOFT_TENANT: &str = "organizations";

/// Fills the OAuth endpoints and scopes of `provider` (for Microsoft, in the configured tenant), and the relay
/// it sends through, into `cfg`. `custom` leaves everything as it is.
pub fn apply_provider(cfg: &mut EmailConfig, provider: Provider) {
    cfg.oauth.provider = Some(provider);
    match provider {
        Provider::Microsoft => {
            let tenant = cfg.oauth.tenant.get_or_insert_with(|| DEFAULT_MICROSOFT_TENANT.into()).clone();
            fill_microsoft_endpoints(cfg, &tenant);
            set_relay(cfg, "smtp.office365.com", 587, Encryption::Starttls);
            apply_transport(cfg);
        }
        Provider::Google => {
            cfg.oauth.tenant = None;
            cfg.oauth.authorization_endpoint = Some("https://accounts.google.com/o/oauth2/v2/auth".into());
            cfg.oauth.token_endpoint = Some("https://oauth2.googleapis.com/token".into());
            cfg.oauth.device_authorization_endpoint = Some("https://oauth2.googleapis.com/device/code".into());
            set_relay(cfg, "smtp.gmail.com", 465, Encryption::Tls);
            apply_transport(cfg);
        }
        Provider::Custom => {}
    }
}

/// The delegated scopes the provider's preset asks for with the configured transport.
pub fn apply_transport(cfg: &mut EmailConfig) {
    let scopes: &[&str] = match (cfg.oauth.provider, cfg.delivery.transport) {
        (Some(Provider::Microsoft), Transport::MicrosoftGraph) => {
            &["https://graph.microsoft.com/Mail.Send", "offline_access"]
        }
        (Some(Provider::Microsoft), _) => &["https://outlook.office.com/SMTP.Send", "offline_access"],
        (Some(Provider::Google), Transport::GmailApi) => &["https://www.googleapis.com/auth/gmail.send"],
        (Some(Provider::Google), _) => &["https://mail.google.com/"],
        _ => return,
    };
    cfg.oauth.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
    if cfg.delivery.transport.is_api() {
        cfg.smtp.auth = AuthMethod::Oauth2;
    }
}

/// The scope of app-only tokens (the client-credentials grant) for the configured transport, at Microsoft.
pub fn microsoft_app_only_scope(cfg: &EmailConfig) -> &'static str {
    match cfg.delivery.transport {
        Transport::MicrosoftGraph => "https://graph.microsoft.com/.default",
        _ => crate::oauth::authorize::MICROSOFT_APP_ONLY_SCOPE,
    }
}

/// Points the Microsoft endpoints at `tenant` (used when only the tenant changes).
pub fn fill_microsoft_endpoints(cfg: &mut EmailConfig, tenant: &str) {
    let base = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0");
    cfg.oauth.authorization_endpoint = Some(format!("{base}/authorize"));
    cfg.oauth.token_endpoint = Some(format!("{base}/token"));
    cfg.oauth.device_authorization_endpoint = Some(format!("{base}/devicecode"));
}

fn set_relay(cfg: &mut EmailConfig, host: &str, port: u32, encryption: Encryption) {
    cfg.smtp.host = Some(host.into());
    cfg.smtp.port = Some(port);
    cfg.smtp.encryption = encryption;
    cfg.smtp.auth = AuthMethod::Oauth2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microsoft_fills_v2_endpoints_for_the_tenant_and_office365_relay() {
        let mut cfg = EmailConfig::default();
        cfg.oauth.tenant = Some("contoso.onmicrosoft.com".into());
        apply_provider(&mut cfg, Provider::Microsoft);
        let o = &cfg.oauth;
        assert_eq!(
            o.authorization_endpoint.as_deref(),
            Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize")
        );
        assert_eq!(
            o.token_endpoint.as_deref(),
            Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token")
        );
        assert_eq!(
            o.device_authorization_endpoint.as_deref(),
            Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode")
        );
        assert_eq!(o.scopes, ["https://outlook.office.com/SMTP.Send", "offline_access"]);
        assert_eq!(cfg.smtp.host.as_deref(), Some("smtp.office365.com"));
        assert_eq!(
            (cfg.smtp.port, cfg.smtp.encryption, cfg.smtp.auth),
            (Some(587), Encryption::Starttls, AuthMethod::Oauth2)
        );
    }

    #[test]
    fn microsoft_without_tenant_uses_organizations() {
        let mut cfg = EmailConfig::default();
        apply_provider(&mut cfg, Provider::Microsoft);
        assert_eq!(cfg.oauth.tenant.as_deref(), Some("organizations"));
        assert!(cfg.oauth.token_endpoint.unwrap().contains("/organizations/"));
    }

    #[test]
    fn the_transport_chooses_the_scopes_and_the_app_only_audience() {
        let mut cfg = EmailConfig::default();
        apply_provider(&mut cfg, Provider::Microsoft);
        assert_eq!(microsoft_app_only_scope(&cfg), "https://outlook.office365.com/.default");
        cfg.delivery.transport = Transport::MicrosoftGraph;
        apply_transport(&mut cfg);
        assert_eq!(cfg.oauth.scopes, ["https://graph.microsoft.com/Mail.Send", "offline_access"]);
        assert_eq!(microsoft_app_only_scope(&cfg), "https://graph.microsoft.com/.default");
        let mut google = EmailConfig::default();
        google.delivery.transport = Transport::GmailApi;
        apply_provider(&mut google, Provider::Google);
        assert_eq!(google.oauth.scopes, ["https://www.googleapis.com/auth/gmail.send"]);
    }

    #[test]
    fn google_fills_its_endpoints_scope_and_gmail_relay() {
        let mut cfg = EmailConfig::default();
        cfg.oauth.tenant = Some("common".into());
        apply_provider(&mut cfg, Provider::Google);
        assert_eq!(cfg.oauth.authorization_endpoint.as_deref(), Some("https://accounts.google.com/o/oauth2/v2/auth"));
        assert_eq!(cfg.oauth.token_endpoint.as_deref(), Some("https://oauth2.googleapis.com/token"));
        assert_eq!(cfg.oauth.scopes, ["https://mail.google.com/"]);
        assert_eq!(cfg.oauth.tenant, None, "Google has no tenant");
        assert_eq!(
            (cfg.smtp.host.as_deref(), cfg.smtp.port, cfg.smtp.encryption),
            (Some("smtp.gmail.com"), Some(465), Encryption::Tls)
        );
    }

    #[test]
    fn custom_changes_nothing_but_the_provider() {
        let mut cfg = EmailConfig::default();
        apply_provider(&mut cfg, Provider::Custom);
        let mut expected = EmailConfig::default();
        expected.oauth.provider = Some(Provider::Custom);
        assert_eq!(cfg, expected);
    }
}
