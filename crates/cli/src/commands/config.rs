//! `tidings config …`: the email configuration from the command line. Works whether or not the daemon runs;
//! a running daemon picks changes up within its poll interval.

use super::{actor, first_line, open};
use crate::cli::{ConfigCommand, Global};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use std::{
    io::{BufRead, IsTerminal, Write},
    os::unix::fs::OpenOptionsExt,
    path::Path,
    process::ExitCode,
};
use tidings_app::{
    App, Error,
    settings::{ConfigDocument, Current, GoogleFile, Saved},
};
use tidings_core::{
    config::{advice, keys},
    secret::SecretName,
};

pub async fn run(global: &Global, command: ConfigCommand) -> Result<ExitCode> {
    match command {
        ConfigCommand::Keys => print_keys(),
        other => with_app(&open(global).await?, other).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `tidings config keys`: needs no data directory.
fn print_keys() {
    for k in keys::KEYS {
        say!("{:<36} {}{}", k.key, k.help, if k.secret { " (secret)" } else { "" });
    }
}

/// `config import-google-client|import-google-service-account FILE`.
async fn import_google(app: &App, file: &std::path::Path, kind: GoogleFile) -> Result<()> {
    let text = super::read_file(file, tidings_app::files::DOCUMENT_LIMIT)?;
    let saved = app.import_google(&actor(), tidings_core::account::Role::Administrator, kind, &text).await.map_err(
        |e| match e {
            Error::Input(why) => anyhow!("{}: {why}", file.display()),
            other => refusal(other),
        },
    )?;
    report(app, saved).await
}

async fn with_app(app: &App, command: ConfigCommand) -> Result<()> {
    match command {
        ConfigCommand::Keys => print_keys(),
        ConfigCommand::Show { json } => show(&app.current().await?, json)?,
        ConfigCommand::Set { pairs } => {
            let edits = pairs.iter().map(|p| parse_pair(p)).collect::<Result<Vec<_>>>()?;
            report(app, refused_or(app.update(&actor(), &edits).await)?).await?;
        }
        ConfigCommand::SetSecret { key, file } => {
            match SecretName::from_key(&key) {
                None => bail!(
                    "{key} is not a secret; secrets are smtp.password, oauth.client_secret and oauth.static_access_token (use `tidings config set {key}=VALUE`)"
                ),
                Some(SecretName::OAuthClientCertificate) => bail!(
                    "{key} is made with `tidings oauth certificate create`, or your own imported with `tidings oauth certificate import FILE`"
                ),
                Some(SecretName::ServiceAccountKey) => bail!(
                    "{key} comes from the service account's key file: `tidings config import-google-service-account FILE`"
                ),
                Some(_) => {}
            }
            let value = match file {
                Some(path) => first_line(&path)?,
                None => read_secret(&key)?,
            };
            if value.is_empty() {
                bail!("the value is empty; to clear {key}, run `tidings config set {key}=`");
            }
            report(app, refused_or(app.update(&actor(), &[(key, value)]).await)?).await?;
        }
        ConfigCommand::Validate { file: None } => {
            refused_or(app.validate_current().await)?;
            say!("The configuration in force is valid.");
        }
        ConfigCommand::Validate { file: Some(path) } => {
            let doc = read_document(&path)?;
            refused_or(app.validate_document(&doc).await)?;
            say!("{} is valid; `tidings config import {}` would apply it.", path.display(), path.display());
        }
        ConfigCommand::ImportGoogleClient { file } => import_google(app, &file, GoogleFile::Client).await?,
        ConfigCommand::ImportGoogleServiceAccount { file } => {
            import_google(app, &file, GoogleFile::ServiceAccount).await?;
            say!("Next: `tidings oauth login --client-credentials` obtains the first token.");
        }
        ConfigCommand::Export { with_secrets, output } => {
            let text = serde_json::to_string_pretty(&app.export(with_secrets).await?)? + "\n";
            match output {
                Some(path) => {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&path)
                        .and_then(|mut f| f.write_all(text.as_bytes()))
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("Wrote {}", path.display());
                }
                None => say_part!("{text}"),
            }
            if with_secrets {
                eprintln!("warning: the export holds secrets in clear text; keep it safe and delete it when done");
            }
        }
        ConfigCommand::Test => test_email(app).await?,
        ConfigCommand::FetchCertificate { pin, json } => fetch_certificate(app, pin, json).await?,
        ConfigCommand::Import { file } => {
            let doc = read_document(&file)?;
            report(app, refused_or(app.import(&actor(), &doc).await)?).await?;
        }
    }
    Ok(())
}

/// `KEY=VALUE`, split at the first `=`.
fn parse_pair(pair: &str) -> Result<(String, String)> {
    let (key, value) = pair
        .split_once('=')
        .ok_or_else(|| anyhow!("expected KEY=VALUE, got {pair:?} (an empty VALUE clears the field)"))?;
    Ok((key.trim().to_owned(), value.to_owned()))
}

fn read_document(path: &Path) -> Result<ConfigDocument> {
    let text = super::read_file(path, tidings_app::files::DOCUMENT_LIMIT)?;
    ConfigDocument::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// A secret from the terminal (not echoed) or the first line of standard input.
fn read_secret(key: &str) -> Result<String> {
    if std::io::stdin().is_terminal() {
        return Ok(rpassword::prompt_password(format!("{key}: "))?);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Passes a success through; turns a refused change into an error saying that nothing was saved.
fn refused_or<T>(result: tidings_app::Result<T>) -> Result<T> {
    result.map_err(refusal)
}

fn refusal(e: Error) -> anyhow::Error {
    match e {
        Error::Invalid(errors) => {
            anyhow!("{errors}\nNothing was saved; the configuration in force is unchanged.")
        }
        other => other.into(),
    }
}

/// Prints what a save did, then sends the test email when `admin.test_email_on_save` is on.
async fn report(app: &App, saved: Saved) -> Result<()> {
    if saved.changed.is_empty() {
        say!("Nothing changed (revision {}).", saved.revision);
    } else {
        say!("Saved revision {}: {}", saved.revision, saved.changed.join(", "));
    }
    for warning in saved.warnings {
        eprintln!("warning: {warning}");
    }
    if app.current().await?.config.admin.test_email_on_save {
        test_email(app).await?;
    }
    Ok(())
}

/// Sends a test email and reports the relay's answer; fails when the relay refused it.
/// `tidings config fetch-certificate`: what the relay presents, for an administrator to check and pin.
async fn fetch_certificate(app: &App, pin: bool, json: bool) -> Result<()> {
    let current = app.current().await?;
    let cfg = &current.config;
    let presented = tidings_delivery::certificates::presented(cfg).await.map_err(|e| anyhow!(e))?;
    let (relay, certs) = (&presented.relay, &presented.certificates);
    let own = &certs[0];
    let now = chrono::Utc::now();
    if json {
        let list: Vec<_> = certs
            .iter()
            .map(|c| {
                json!({
                    "subject": c.subject, "issuer": c.issuer, "not_before": c.not_before, "not_after": c.not_after,
                    "names": c.names, "sha256_fingerprint": c.fingerprint, "self_signed": c.self_signed,
                })
            })
            .collect();
        say!("{}", serde_json::to_string_pretty(&json!({ "relay": relay, "certificates": list }))?);
    } else {
        say!("The relay {relay} presents:");
        for (i, c) in certs.iter().enumerate() {
            let when = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
            let state = if c.not_after < now {
                " (EXPIRED)"
            } else if c.not_before > now {
                " (NOT YET VALID)"
            } else {
                ""
            };
            say!("{}", if i == 0 { "  its own certificate:" } else { "  then:" });
            say!("    subject:     {}", crate::output::shown(&c.subject));
            say!(
                "    issuer:      {}{}",
                crate::output::shown(&c.issuer),
                if c.self_signed { " (self-signed)" } else { "" }
            );
            say!("    valid:       {} to {}{state}", when(c.not_before), when(c.not_after));
            say!("    names:       {}", crate::output::shown(&c.names.join(" ")));
            say!("    SHA-256:     {}", c.fingerprint);
        }
    }
    let pinned = cfg.tls.pins(&own.fingerprint);
    if pin && !pinned {
        app.update(&actor(), &[("tls.pinned_certificate".to_owned(), cfg.tls.pinned_with(&own.fingerprint))]).await?;
        eprintln!(
            "Pinned: the relay's certificate {} is trusted from now on (tls.pinned_certificate).",
            own.fingerprint
        );
    } else if pinned {
        eprintln!("This certificate is pinned (tls.pinned_certificate).");
    } else if !json {
        eprintln!(
            "Compare the fingerprint with the relay's own (`openssl x509 -noout -fingerprint -sha256 -in CERT` on \
             the relay); to trust this certificate, run again with --pin."
        );
    }
    Ok(())
}

async fn test_email(app: &App) -> Result<()> {
    let sent = refused_or(app.send_test_email(&actor()).await)?;
    say!("Test email queued as message {} for the admin contacts.", sent.message_id);
    if !app.data_dir().daemon_running() {
        say!(
            "No daemon is running on this data directory: the test email goes out when `tidings serve` starts \
             (`tidings queue show {}` tells what became of it).",
            sent.message_id
        );
        return Ok(());
    }
    let wait = app.current().await?.config.admin.test_email_wait;
    let outcome = app.await_test_outcome(sent.message_id, wait).await?;
    match outcome.result.as_str() {
        "delivered" => say!("Delivered: the relay accepted the test email."),
        "pending" => say!(
            "No answer from the relay within {}; follow it with `tidings queue show {}`.",
            humantime::format_duration(wait),
            sent.message_id
        ),
        result => {
            let reply = outcome.reply.unwrap_or_default();
            let explanation = outcome.explanation.map(|e| format!("\n{e}")).unwrap_or_default();
            let next = if result == "deferred" { "Tidings retries it" } else { "Tidings gave up" };
            bail!("the test email was not delivered ({result}; {next}): {reply}{explanation}");
        }
    }
    Ok(())
}

fn show(current: &Current, as_json: bool) -> Result<()> {
    let cfg = &current.config;
    let secret_state = |present: bool| if present { "set" } else { "not set" };
    let secrets: Vec<(SecretName, bool)> = SecretName::ALL.iter().map(|n| (*n, current.secrets.has(*n))).collect();
    if as_json {
        let secrets: serde_json::Map<_, _> =
            secrets.iter().map(|(n, p)| (n.key().to_owned(), json!(secret_state(*p)))).collect();
        let out = json!({
            "revision": current.revision,
            "saved_at": current.saved_at,
            "saved_by": current.saved_by,
            "config": cfg,
            "secrets": secrets,
            "derived": { "smtp.port": cfg.smtp.effective_port(), "oauth.redirect_uri": cfg.redirect_uri() },
            "warnings": advice::advice(cfg).iter().map(|a| a.text()).collect::<Vec<_>>(),
        });
        say!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    match (&current.saved_at, &current.saved_by) {
        (Some(at), Some(by)) => say!(
            "Email configuration, revision {} (saved {} by {by})\n",
            current.revision,
            at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        _ => say!("Email configuration: nothing saved yet (defaults)\n"),
    }
    for advice in advice::advice(cfg) {
        say!("Warning: {}\n", advice.text());
    }
    for k in keys::KEYS {
        let value = match SecretName::from_key(k.key) {
            Some(name) => secret_state(secrets.iter().any(|(n, p)| *n == name && *p)).to_owned(),
            None => match keys::get(cfg, k.key).unwrap_or_default() {
                v if !v.is_empty() => v,
                _ if k.key == "smtp.port" => format!("(default {})", cfg.smtp.effective_port()),
                _ => "(not set)".into(),
            },
        };
        say!("  {:<36} {value}", k.key);
    }
    let redirect = cfg.redirect_uri().unwrap_or_else(|| "(set public_base_url first)".into());
    say!("  {:<36} {redirect}", "oauth.redirect_uri (derived)");
    Ok(())
}
