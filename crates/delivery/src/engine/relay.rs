//! The relay settings of a configuration: what delivery connects to and how it authenticates.

use crate::{
    smtp::{RelayAuth, RelaySettings, tls},
    token::TokenSource,
};
use std::sync::Arc;
use tidings_app::{App, host_name, settings::Current};
use tidings_core::Invalid;
use tidings_core::{EmailConfig, config::AuthMethod, secret::SecretName};

/// Builds the relay settings from a configuration; errors say what to configure.
pub async fn relay_settings(
    app: &App,
    current: &Current,
    tokens: Arc<dyn TokenSource>,
) -> Result<RelaySettings, Invalid> {
    let cfg = &current.config;
    // Off the async threads: it reads the CA bundle.
    let options = cfg.tls.clone();
    let tls = tokio::task::spawn_blocking(move || tls::client_config(&options)).await.map_err(|e| e.to_string())??;
    let relay = match cfg.delivery.transport.is_api() {
        true => api_relay(cfg, tls.clone())?,
        false => looking_at(cfg)?,
    };
    let auth = match cfg.smtp.auth {
        AuthMethod::None => RelayAuth::None,
        AuthMethod::Password => {
            let password = app
                .secret(SecretName::SmtpPassword)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("smtp.password is not set")?;
            RelayAuth::Password { username: cfg.smtp.username.clone().unwrap_or_default(), password }
        }
        AuthMethod::Oauth2 => {
            let user = cfg.mailbox().ok_or("set oauth.account or sender")?.to_owned();
            RelayAuth::OAuth2 { user, tokens }
        }
    };
    Ok(RelaySettings { auth, tls, verify_certificates: cfg.tls.verify_certificates, ..relay })
}

/// The configured relay, without authentication and trusting any certificate: for looking at what it
/// presents ([`crate::smtp::Connection::fetch_certificates`]), never for sending. [`relay_settings`] adds the
/// authentication and the trust.
pub fn looking_at(cfg: &EmailConfig) -> Result<RelaySettings, Invalid> {
    Ok(RelaySettings {
        host: cfg.smtp.host.clone().ok_or("no SMTP relay is configured (set smtp.host)")?,
        port: u16::try_from(cfg.smtp.effective_port()).map_err(|_| "smtp.port is out of range")?,
        encryption: cfg.smtp.encryption,
        auth: RelayAuth::None,
        tls: tls::accept_any(),
        verify_certificates: false,
        timeout: cfg.delivery.timeout,
        helo_name: helo_name(),
        api: None,
    })
}

/// Where a provider's HTTP API is, as relay settings (the API's host and port stand for the relay's in the log),
/// with the HTTP client trusting `tls`.
fn api_relay(cfg: &EmailConfig, tls: Arc<rustls::ClientConfig>) -> Result<RelaySettings, Invalid> {
    use tidings_core::config::Transport;
    let endpoint = match cfg.delivery.transport {
        Transport::GmailApi => &cfg.gmail.endpoint,
        _ => &cfg.graph.endpoint,
    };
    let url = tidings_core::net::validate_url(endpoint, tidings_core::net::UrlKind::Endpoint)?;
    // The API is reached as the OAuth endpoints are: through oauth.proxy_url when one is set.
    let client = crate::api::http_client(cfg, &tls)?;
    let api = crate::api::ApiSettings {
        transport: cfg.delivery.transport,
        endpoint: endpoint.trim_end_matches('/').to_owned(),
        client,
    };
    Ok(RelaySettings {
        host: url.host_str().unwrap_or_default().to_owned(),
        port: url.port_or_known_default().unwrap_or(443),
        encryption: if url.scheme() == "https" {
            tidings_core::config::Encryption::Tls
        } else {
            tidings_core::config::Encryption::None
        },
        auth: RelayAuth::None,
        tls,
        verify_certificates: cfg.tls.verify_certificates,
        timeout: cfg.delivery.timeout,
        helo_name: helo_name(),
        api: Some(Arc::new(api)),
    })
}

/// This machine's name for EHLO.
fn helo_name() -> String {
    host_name().unwrap_or_else(|| "tidings.localdomain".into())
}
