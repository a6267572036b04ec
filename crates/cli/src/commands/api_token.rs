//! `tidings api-token …`.

use super::actor;
use crate::cli::ApiTokenCommand;
use anyhow::{Result, bail};
use std::process::ExitCode;
use tidings_app::App;
use tidings_core::account::Role;
use tidings_server::http::wire;

pub async fn run(app: &App, command: ApiTokenCommand) -> Result<ExitCode> {
    match command {
        ApiTokenCommand::Create { name, role } => {
            let role: Role = role.parse().map_err(anyhow::Error::from)?;
            let created = app.create_api_token(&actor(), &name, role).await?;
            say!("{}", created.token.expose());
            eprintln!("Token {} ({name}, {role}) created. It is shown only now: store it safely.", created.id);
        }
        ApiTokenCommand::List { json } => {
            let tokens = app.api_tokens().await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&wire::all::<_, wire::ApiToken>(&tokens))?);
            } else {
                for t in tokens {
                    let state = match (t.revoked_at, t.last_used_at) {
                        (Some(at), _) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                        (None, Some(at)) => format!("last used {}", at.format("%Y-%m-%d %H:%M")),
                        (None, None) => "never used".into(),
                    };
                    say!("{:>4}  {:<24} {:<22} {state}", t.id, t.name, t.role.as_str());
                }
            }
        }
        ApiTokenCommand::Revoke { id } => {
            if !app.revoke_api_token(&actor(), id).await? {
                bail!("no active token {id} (see `tidings api-token list`)");
            }
            say!("Token {id} revoked.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
