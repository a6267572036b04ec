//! `tidings device …`: device accounts of the SMTP submission gateway.

use super::{actor, first_line};
use crate::cli::DeviceCommand;
use anyhow::{Result, bail};
use std::{
    io::{BufRead, IsTerminal},
    process::ExitCode,
};
use tidings_app::{App, Error};
use tidings_core::secret::SecretString;

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
                Ok(id) => println!("Created device account {id} ({name})."),
                Err(Error::Store(tidings_store::Error::DuplicateAccount(_))) => {
                    bail!("a device account named {name:?} exists already; choose another name or remove it first")
                }
                Err(e) => return Err(e.into()),
            }
        }
        DeviceCommand::List { json } => {
            let devices = app.devices().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&devices)?);
            } else if devices.is_empty() {
                println!("No device accounts.");
            } else {
                for d in devices {
                    println!("{:>4}  {:<24} {}", d.id, d.username, d.addresses.join(" "));
                }
            }
        }
        DeviceCommand::Remove { id } => {
            if !app.delete_device(&actor(), id).await? {
                bail!("there is no device account {id} (`tidings device list` shows them)");
            }
            println!("Deleted device account {id}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
