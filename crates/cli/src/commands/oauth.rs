//! `tidings oauth …`: signing in with the provider from the command line, with or without the daemon.

use super::actor;
use crate::cli::{CertificateCommand, OauthCommand};
use anyhow::{Result, anyhow, bail};
use std::{
    io::{BufRead, IsTerminal},
    process::ExitCode,
    time::{Duration, Instant},
};
use tidings_app::App;
use tidings_app::authorization::Owner;
use tidings_oauth::{
    flows,
    http::{ClientAuth, HttpEndpoint},
    status::TokenStatus,
};

pub async fn run(app: &App, command: OauthCommand) -> Result<ExitCode> {
    match command {
        OauthCommand::Login { client_credentials: true, .. } => {
            let account = flows::client_credentials(app, None, &actor()).await.map_err(|e| anyhow!(e))?;
            say!(
                "Tidings is authorized for app-only sending{}.",
                account.map(|a| format!(" as {a}")).unwrap_or_default()
            );
        }
        OauthCommand::Login { device: true, .. } => {
            let signing_in = flows::start_device(app, flows::Owner::Relay).await.map_err(|e| anyhow!(e))?;
            let shown = &signing_in.shown;
            say!("On any device, open {} and enter the code\n\n    {}\n", shown.verification_uri, shown.user_code);
            say!(
                "The code expires at {} ({} minutes). Waiting...",
                signing_in.expires_at.format("%H:%M:%S UTC"),
                shown.expires_in / 60
            );
            let account = signing_in.finish(app, None, &actor()).await.map_err(|e| anyhow!(e))?;
            say!("Tidings is authorized{}.", account.map(|a| format!(" to send as {a}")).unwrap_or_default());
        }
        OauthCommand::Login { paste, wait, .. } => login(app, paste, wait).await?,
        OauthCommand::Status { json } => {
            let report = tidings_oauth::status::report(app, None).await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&tidings_server::http::wire::TokenReport::from(&report))?);
            } else {
                let state = match &report.status {
                    TokenStatus::NotConfigured => "not configured (smtp.auth is not oauth2)".to_owned(),
                    TokenStatus::AuthorizationRequired => {
                        "authorization required: run `tidings oauth login`".to_owned()
                    }
                    TokenStatus::AuthorizationPending { expires_at } => {
                        format!("authorization pending until {expires_at}")
                    }
                    TokenStatus::Acquired => "acquired (a refresh token is stored)".to_owned(),
                    TokenStatus::Active { expires_at } => format!("active until {expires_at}"),
                    TokenStatus::ReauthorizationRequired { reason, explanation } => {
                        format!("re-authorization required\n  provider said: {reason}\n  what to do:    {explanation}")
                    }
                    TokenStatus::Failing { reason, since } => format!("refreshing fails since {since}: {reason}"),
                };
                say!("status:         {state}");
                let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
                    t.map_or("never".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                };
                say!("account:        {}", report.account.as_deref().unwrap_or("(none)"));
                say!("acquired:       {}", when(report.acquired_at));
                say!("last refreshed: {}", when(report.refreshed_at));
            }
        }
        OauthCommand::Check => {
            let config = app.current().await?.config;
            let endpoint = HttpEndpoint::new(&config, ClientAuth::Public).map_err(|e| anyhow!(e))?;
            match endpoint.check().await {
                Ok(()) => say!("Connected: {} answers.", config.oauth.token_endpoint.unwrap_or_default()),
                Err(why) => bail!("not connected: {why}"),
            }
        }
        OauthCommand::Revoke => {
            app.forget_authorization(Owner::Relay, &actor()).await?;
            say!("The stored authorization was deleted. Sign in again with `tidings oauth login`.");
        }
        OauthCommand::Certificate(command) => certificate(app, command).await?,
        OauthCommand::SetupScript { mode } => {
            use tidings_core::oauth::setup;
            let config = app.current().await?.config;
            let mode = match mode.as_deref() {
                Some("app-only") => setup::Mode::AppOnly,
                Some(_) => setup::Mode::Delegated,
                None => {
                    let app_only = app.authorization(Owner::Relay).await?.is_some_and(|a| a.client_credentials);
                    setup::mode_of(&config, app_only)
                }
            };
            print!("{}", setup::script(&config, mode).map_err(|why| anyhow!(why))?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn certificate(app: &App, command: CertificateCommand) -> Result<()> {
    let (made, what) = match command {
        CertificateCommand::Create { days, force } => {
            (app.make_client_certificate(&actor(), days, force).await?, "A new certificate is kept")
        }
        CertificateCommand::Import { file, force } => {
            let pem = tidings_app::files::read_text(&file, tidings_app::files::PEM_LIMIT)
                .map_err(|e| anyhow!("{}: {e}", file.display()))?;
            (app.import_client_certificate(&actor(), &pem, force).await?, "The certificate is kept")
        }
        CertificateCommand::Show { json } => {
            let Some(held) = app.client_certificate().await? else {
                bail!("no client certificate is kept; make one with `tidings oauth certificate create`");
            };
            match json {
                true => say!(
                    "{}",
                    serde_json::to_string_pretty(&tidings_server::http::wire::ClientCertificate::from(&held))?
                ),
                false => print!("{}", held.pem),
            }
            return Ok(());
        }
    };
    eprintln!(
        "{what} (SHA-1 thumbprint {}, valid until {}). Upload this certificate to the app registration \
         (Certificates & secrets > Certificates > Upload certificate), then run \
         `tidings config set oauth.client_credential=certificate`:\n",
        made.sha1_thumbprint(),
        made.not_after.format("%Y-%m-%d")
    );
    print!("{}", made.pem);
    Ok(())
}

async fn login(app: &App, paste: bool, wait: Duration) -> Result<()> {
    let before = app.authorization(Owner::Relay).await?.and_then(|a| a.acquired_at);
    let started = flows::start(app, &flows::Owner::Relay).await.map_err(|e| anyhow!(e))?;
    say!("Open this address in a browser and sign in with the mailbox Tidings sends as:\n\n  {}\n", started.url);
    if paste {
        if std::io::stdin().is_terminal() {
            eprintln!("Then paste here the whole address the browser ended on (or just the code), and press Enter:");
        }
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        let account =
            flows::complete(app, None, &actor(), &answer, &flows::Owner::Relay).await.map_err(|e| anyhow!(e))?;
        say!("Tidings is authorized{}.", account.map(|a| format!(" to send as {a}")).unwrap_or_default());
        return Ok(());
    }
    eprintln!(
        "Waiting for the browser to come back to Tidings at its redirect URI (the daemon must be running and reachable);"
    );
    eprintln!("if it cannot reach Tidings, run `tidings oauth login --paste` instead.");
    let deadline = Instant::now() + wait;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        if let Some(record) = app.authorization(Owner::Relay).await?
            && record.acquired_at != before
            && record.acquired_at.is_some()
        {
            say!("Tidings is authorized{}.", record.account.map(|a| format!(" to send as {a}")).unwrap_or_default());
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no sign-in came back within {}; start again", humantime::format_duration(wait));
        }
    }
}
