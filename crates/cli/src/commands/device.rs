//! `tidings device …`: device accounts of the SMTP submission gateway.

use super::{actor, first_line};
use crate::cli::DeviceCommand;
use anyhow::{Result, anyhow, bail};
use std::{
    io::{BufRead, IsTerminal},
    process::ExitCode,
};
use tidings_app::{App, Error, authorization};
use tidings_core::secret::SecretString;
use tidings_oauth::flows::{self, Owner};
use tidings_server::http::wire;

pub async fn run(app: &App, command: DeviceCommand) -> Result<ExitCode> {
    match command {
        DeviceCommand::Add { name, addresses, password_file } => {
            let password = match password_file {
                Some(path) => first_line(&path)?,
                None if std::io::stdin().is_terminal() => rpassword::prompt_password(format!("password for {name}: "))?,
                None => {
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            match app.create_device(&actor(), &name, &SecretString::new(password), &addresses).await {
                Ok(id) => say!("Created device account {id} ({name})."),
                Err(Error::Store(tidings_store::Error::DuplicateAccount(_))) => {
                    bail!("a device account named {name:?} exists already; choose another name or remove it first")
                }
                Err(e) => return Err(e.into()),
            }
        }
        DeviceCommand::List { json } => {
            let devices = app.devices_with_mailboxes().await?;
            if json {
                say!(
                    "{}",
                    serde_json::to_string_pretty(
                        &devices.iter().map(|d| wire::Device::new(&d.device, d.mailbox.as_ref())).collect::<Vec<_>>()
                    )?
                );
            } else if devices.is_empty() {
                say!("No device accounts.");
            } else {
                for d in devices {
                    let mailbox = match &d.mailbox {
                        None => String::new(),
                        Some(m) if m.failure.is_some() => {
                            format!("  [mailbox {}: sign in again]", m.account.as_deref().unwrap_or_default())
                        }
                        Some(m) => format!("  [mailbox {} connected]", m.account.as_deref().unwrap_or_default()),
                    };
                    say!("{:>4}  {:<24} {}{mailbox}", d.device.id, d.device.username, d.device.addresses.join(" "));
                }
            }
        }
        DeviceCommand::Connect { id, device_code } => connect(app, id, device_code).await?,
        DeviceCommand::Disconnect { id } => {
            let device = app.device(id).await?;
            if !app.forget_authorization(authorization::Owner::Device(device.id), &actor()).await? {
                bail!("device account {} has no mailbox token", device.username);
            }
            say!("Deleted the mailbox token of device account {}.", device.username);
        }
        DeviceCommand::Remove { id } => {
            if !app.delete_device(&actor(), id).await? {
                bail!("there is no device account {id} (`tidings device list` shows them)");
            }
            say!("Deleted device account {id}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Signs a device account's own mailbox in: the device-code flow, or the authorization code with the answer
/// pasted (or completed by the daemon's redirect page).
async fn connect(app: &App, id: i64, device_code: bool) -> Result<()> {
    let device = app.device(id).await?;
    let owner = Owner::Device(device.clone());
    let connected = |mailbox: Option<String>| {
        say!(
            "Device account {} is connected{}.",
            device.username,
            mailbox.map(|m| format!(" to send as {m}")).unwrap_or_default()
        )
    };
    if device_code {
        let signing_in = flows::start_device(app, owner).await.map_err(|e| anyhow!(e))?;
        let shown = &signing_in.shown;
        say!("On any device, open {} and enter the code\n\n    {}\n", shown.verification_uri, shown.user_code);
        say!("Sign in as the account's own mailbox. Waiting...");
        connected(signing_in.finish(app, None, &actor()).await.map_err(|e| anyhow!(e))?);
        return Ok(());
    }
    let before = app.mailbox_of(&device.username).await?.and_then(|m| m.acquired_at);
    let started = flows::start(app, &owner).await.map_err(|e| anyhow!(e))?;
    say!("Open this address in a browser and sign in as the account's own mailbox:\n\n  {}\n", started.url);
    if std::io::stdin().is_terminal() {
        eprintln!(
            "Then paste the whole address the browser ended on (or just the code) and press Enter; or press Enter once \
             the browser shows that the mailbox is connected."
        );
    }
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim().is_empty() {
        match app.mailbox_of(&device.username).await? {
            Some(m) if m.acquired_at != before => connected(m.account),
            _ => bail!(
                "the mailbox is not connected yet; run the command again and paste the address the browser ended on"
            ),
        }
    } else {
        connected(flows::complete(app, None, &actor(), &answer, &owner).await.map_err(|e| anyhow!(e))?);
    }
    Ok(())
}
