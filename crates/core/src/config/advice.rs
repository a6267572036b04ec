//! What an administrator should know about a valid configuration: settings that work today and will stop
//! working on a known date. Shown on every save, by `config show`, the API and the configuration page.

use super::{AuthMethod, EmailConfig, Provider};

/// One piece of advice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advice {
    /// A password against Microsoft 365's SMTP, which Microsoft turns off.
    PasswordToMicrosoft,
}

impl Advice {
    /// The interface's catalogue key.
    pub fn key(self) -> &'static str {
        match self {
            Advice::PasswordToMicrosoft => "advice.password_to_microsoft",
        }
    }

    /// In English, for the CLI, the API and the logs.
    pub fn text(self) -> &'static str {
        match self {
            Advice::PasswordToMicrosoft => {
                "smtp.auth is password against Microsoft 365: Microsoft disables SMTP AUTH with passwords (Basic \
                 authentication) by default for existing tenants at the end of December 2026, and sending then fails \
                 with 535 5.7.139. Move to OAuth 2.0 now: oauth.provider=microsoft and a sign-in (docs/providers.md), \
                 or Microsoft Graph (delivery.transport=microsoft_graph) where SMTP AUTH is off altogether."
            }
        }
    }
}

/// The advice that applies to `cfg`.
pub fn advice(cfg: &EmailConfig) -> Vec<Advice> {
    let host = cfg.smtp.host.as_deref().unwrap_or("").to_ascii_lowercase();
    let microsoft = cfg.oauth.provider == Some(Provider::Microsoft)
        || host.ends_with(".office365.com")
        || host.ends_with(".outlook.com");
    let mut out = Vec::new();
    if microsoft && cfg.smtp.auth == AuthMethod::Password && !cfg.delivery.transport.is_api() {
        out.push(Advice::PasswordToMicrosoft);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_against_microsofts_smtp_is_advised_against() {
        let mut cfg = EmailConfig::default();
        cfg.smtp.host = Some("smtp.office365.com".into());
        cfg.smtp.auth = AuthMethod::Password;
        assert_eq!(advice(&cfg), [Advice::PasswordToMicrosoft]);
        assert!(Advice::PasswordToMicrosoft.text().contains("December 2026"));
        cfg.smtp.auth = AuthMethod::Oauth2;
        assert!(advice(&cfg).is_empty());
        cfg.smtp.auth = AuthMethod::Password;
        cfg.smtp.host = Some("mail.example.com".into());
        assert!(advice(&cfg).is_empty(), "another relay's password is its own affair");
    }
}
