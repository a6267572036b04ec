//! `tidings init`.

use super::{data_dir, first_line};
use crate::cli::{Global, InitArgs};
use anyhow::Result;
use std::process::ExitCode;
use tidings_app::{App, InitOptions};
use tidings_core::secret::SecretString;

pub async fn run(global: &Global, args: InitArgs) -> Result<ExitCode> {
    let dir = data_dir(global)?;
    let admin_password = args.admin_password_file.as_deref().map(first_line).transpose()?.map(SecretString::new);
    let join_key = match &args.join_key {
        Some(path) => {
            let text = super::read_file(path, 1024)?;
            Some(tidings_app::cipher::SecretKey::from_base64(&text, &format!("--join-key {}", path.display()))?)
        }
        None => None,
    };
    if join_key.is_some() && global.secret_key.is_some() {
        anyhow::bail!("give the key once: --join-key or TIDINGS_SECRET_KEY, not both");
    }
    let options = InitOptions {
        key_from_env: global.secret_key.clone(),
        admin_username: args.admin_user,
        admin_password,
        join_key,
    };
    let done = App::init(dir.clone(), options).await?;
    if done.joined {
        say!("Initialised {} for the database {}, which other nodes use already", dir.root().display(), dir.store());
        say!("  no account was created: sign in with the accounts the database has");
        return Ok(ExitCode::SUCCESS);
    }
    say!("Initialised {}", dir.root().display());
    if dir.store().is_shared() {
        say!("  database: {} (give every other node the same key: tidings init --join-key FILE)", dir.store());
    }
    if global.secret_key.is_none() {
        say!("  secret key: {} (back it up: without it, stored secrets cannot be read)", dir.key_file().display());
    }
    say!("  administrator account: {}", done.admin_username);
    if let Some(password) = done.generated_password {
        say!("  password: {} (shown once; keep it safe)", password.expose());
    }
    Ok(ExitCode::SUCCESS)
}
