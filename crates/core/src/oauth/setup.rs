//! What the tenant's administrators must set up, written from the configuration in force with its values filled
//! in: for Microsoft, the Entra app registration's settings and the Exchange Online PowerShell of the chosen mode;
//! for Google, the console steps. Printed by `tidings oauth setup-script` and shown on the OAuth page.

use crate::config::{ClientCredential, EmailConfig, Provider, Transport};

/// How Tidings will authenticate, which decides what the tenant must allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A person signs in as the mailbox (authorization code or device code).
    Delegated,
    /// The application itself, with no one signing in (client credentials, or Google's service account).
    AppOnly,
}

/// The set-up for `cfg` in `mode`; an error says what to configure first.
pub fn script(cfg: &EmailConfig, mode: Mode) -> Result<String, String> {
    let client_id =
        cfg.oauth.client_id.as_deref().ok_or("set oauth.client_id first: the script names the application")?;
    let mailbox = cfg.mailbox().ok_or("set sender (or oauth.account) first: the script names the mailbox")?;
    match cfg.oauth.provider {
        Some(Provider::Microsoft) => Ok(microsoft(cfg, mode, client_id, mailbox)),
        Some(Provider::Google) => Ok(google(cfg, mode, client_id, mailbox)),
        _ => Err("choose oauth.provider=microsoft or google: only their set-up is known".into()),
    }
}

fn microsoft(cfg: &EmailConfig, mode: Mode, client_id: &str, mailbox: &str) -> String {
    let graph = cfg.delivery.transport == Transport::MicrosoftGraph;
    let tenant = cfg.oauth.tenant.as_deref().unwrap_or("organizations");
    let mut out = String::new();
    out.push_str("# Microsoft Entra admin center > App registrations > the application ");
    out.push_str(&format!("({client_id}), tenant {tenant}:\n"));
    if let (Mode::Delegated, Some(uri)) = (mode, cfg.redirect_uri()) {
        out.push_str(&format!("#   Authentication > Add a platform > Web > Redirect URI: {uri}\n"));
    }
    let permission = match (mode, graph) {
        (Mode::Delegated, false) => {
            "Office 365 Exchange Online (APIs my organization uses) > Delegated: SMTP.Send; Microsoft Graph > Delegated: offline_access"
        }
        (Mode::Delegated, true) => "Microsoft Graph > Delegated: Mail.Send and offline_access",
        (Mode::AppOnly, false) => {
            "Office 365 Exchange Online (APIs my organization uses) > Application: SMTP.SendAsApp"
        }
        (Mode::AppOnly, true) => {
            "Microsoft Graph > Application: Mail.Send (and Mail.ReadWrite for messages over about 3 MB)"
        }
    };
    out.push_str(&format!("#   API permissions > Add a permission > {permission}; then Grant admin consent.\n"));
    out.push_str(match cfg.oauth.client_credential {
        ClientCredential::Certificate => {
            "#   Certificates & secrets > Certificates > Upload certificate: the file `tidings oauth certificate show` prints.\n"
        }
        _ => "#   Certificates & secrets: a client secret (`tidings config set-secret oauth.client_secret`), or better a certificate (`tidings oauth certificate create`).\n",
    });
    out.push_str("\n# Exchange Online PowerShell, as an Exchange administrator:\nConnect-ExchangeOnline\n");
    match (mode, graph) {
        (Mode::Delegated, false) => {
            out.push_str(&format!("# SMTP AUTH for the mailbox Tidings signs in as (off by default):\nSet-CASMailbox -Identity '{mailbox}' -SmtpClientAuthenticationDisabled $false\n"));
            out.push_str("# Check (SmtpClientAuthenticationDisabled must be False):\n");
            out.push_str(&format!(
                "Get-CASMailbox -Identity '{mailbox}' | Format-List SmtpClientAuthenticationDisabled\n"
            ));
        }
        (Mode::Delegated, true) => {
            out.push_str("# Nothing to enable: Graph's Mail.Send acts as the person who signs in.\n");
        }
        (Mode::AppOnly, _) => {
            let role = if graph { "Application Mail.Send" } else { "Application SMTP.SendAsApp" };
            out.push_str("# The application's service principal in Exchange, from the enterprise application (not the app registration):\n");
            out.push_str(&format!("Connect-MgGraph -Scopes 'Application.Read.All' -TenantId '{tenant}'\n"));
            out.push_str(&format!("$sp = Get-MgServicePrincipal -Filter \"appId eq '{client_id}'\"\n"));
            out.push_str(&format!(
                "New-ServicePrincipal -AppId '{client_id}' -ObjectId $sp.Id -DisplayName 'Tidings'\n"
            ));
            out.push_str("# Only this mailbox, with RBAC for Applications:\n");
            out.push_str(&format!("New-ManagementScope -Name 'Tidings mailbox' -RecipientRestrictionFilter \"PrimarySmtpAddress -eq '{mailbox}'\"\n"));
            out.push_str(&format!(
                "New-ManagementRoleAssignment -App $sp.Id -Role '{role}' -CustomResourceScope 'Tidings mailbox'\n"
            ));
            if !graph {
                out.push_str(&format!("# (or, without RBAC for Applications: Add-MailboxPermission -Identity '{mailbox}' -User $sp.Id -AccessRights FullAccess)\n"));
                out.push_str(&format!(
                    "Set-CASMailbox -Identity '{mailbox}' -SmtpClientAuthenticationDisabled $false\n"
                ));
            }
            out.push_str("# Check (InScope must be True):\n");
            out.push_str(&format!("Test-ServicePrincipalAuthorization -Identity $sp.Id -Resource '{mailbox}'\n"));
        }
    }
    out
}

fn google(cfg: &EmailConfig, mode: Mode, client_id: &str, mailbox: &str) -> String {
    let api = cfg.delivery.transport == Transport::GmailApi;
    let scope = if api { "https://www.googleapis.com/auth/gmail.send" } else { "https://mail.google.com/" };
    let mut out = String::new();
    match mode {
        Mode::Delegated => {
            out.push_str("# Google Cloud console > APIs & Services:\n");
            out.push_str(&format!(
                "#   OAuth consent screen: add the scope {scope}; choose Internal (Workspace), or publish the app\n"
            ));
            out.push_str("#   to production: in Testing, refresh tokens expire after 7 days and sending stops.\n");
            if let Some(uri) = cfg.redirect_uri() {
                out.push_str(&format!(
                    "#   Credentials > the OAuth client {client_id} > Authorized redirect URIs: {uri}\n"
                ));
            }
            out.push_str(&format!("#   Then sign in as {mailbox}: `tidings oauth login`.\n"));
        }
        Mode::AppOnly => {
            let account = cfg.oauth.service_account.as_deref().unwrap_or("the service account");
            out.push_str("# Google Admin console > Security > Access and data control > API controls > Manage Domain Wide Delegation > Add new:\n");
            out.push_str(&format!("#   Client ID: {client_id}   ({account})\n"));
            out.push_str(&format!("#   OAuth scopes: {scope}\n"));
            out.push_str(&format!(
                "# Tidings then acts for {mailbox}, a user of the domain: `tidings oauth login --client-credentials`.\n"
            ));
        }
    }
    if api {
        out.push_str("# Google Cloud console > APIs & Services > Library > Gmail API > Enable.\n");
    }
    out
}

/// The mode the configuration points to: app-only for a service account, else as given.
pub fn mode_of(cfg: &EmailConfig, app_only_authorized: bool) -> Mode {
    if app_only_authorized || cfg.oauth.client_credential == ClientCredential::ServiceAccount {
        Mode::AppOnly
    } else {
        Mode::Delegated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{keys, preset};

    fn microsoft_config() -> EmailConfig {
        let mut cfg = EmailConfig::default();
        cfg.oauth.tenant = Some("contoso.com".into());
        preset::apply_provider(&mut cfg, Provider::Microsoft);
        for (k, v) in [
            ("oauth.client_id", "6731de76-14a6-49ae-97bc-6eba6914391e"),
            ("sender", "alerts@contoso.com"),
            ("public_base_url", "https://tidings.contoso.com"),
        ] {
            keys::set(&mut cfg, k, v).unwrap();
        }
        cfg
    }

    #[test]
    fn every_value_is_filled_in_and_nothing_is_left_as_a_placeholder() {
        let cfg = microsoft_config();
        let delegated = script(&cfg, Mode::Delegated).unwrap();
        assert!(
            delegated
                .contains("Set-CASMailbox -Identity 'alerts@contoso.com' -SmtpClientAuthenticationDisabled $false")
        );
        assert!(delegated.contains("https://tidings.contoso.com/login/smtp-verification/"));
        let app_only = script(&cfg, Mode::AppOnly).unwrap();
        assert!(app_only.contains("appId eq '6731de76-14a6-49ae-97bc-6eba6914391e'"), "{app_only}");
        assert!(
            app_only.contains("'Application SMTP.SendAsApp'")
                && app_only.contains("Test-ServicePrincipalAuthorization")
        );
        let mut graph = cfg.clone();
        graph.delivery.transport = Transport::MicrosoftGraph;
        assert!(script(&graph, Mode::AppOnly).unwrap().contains("'Application Mail.Send'"));
        for text in [delegated, app_only] {
            assert!(!text.contains('<') && !text.contains("TODO") && !text.contains("xxx"), "{text}");
        }
        let mut google = EmailConfig::default();
        preset::apply_provider(&mut google, Provider::Google);
        keys::set(&mut google, "oauth.client_id", "104729384756102938475").unwrap();
        keys::set(&mut google, "sender", "alerts@example.com").unwrap();
        let dwd = script(&google, Mode::AppOnly).unwrap();
        assert!(dwd.contains("Client ID: 104729384756102938475") && dwd.contains("https://mail.google.com/"), "{dwd}");
        assert!(script(&EmailConfig::default(), Mode::Delegated).unwrap_err().contains("oauth.client_id"));
    }
}
