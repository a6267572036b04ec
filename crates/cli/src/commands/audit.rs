//! `tidings audit`.

use crate::cli::AuditArgs;
use anyhow::Result;
use std::process::ExitCode;
use tidings_app::App;

pub async fn run(app: &App, args: AuditArgs) -> Result<ExitCode> {
    let entries = app.store().audit(args.limit).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    for e in entries {
        println!("{}  {:<16} {:<28} {}", e.at.format("%Y-%m-%d %H:%M:%S UTC"), e.actor, e.action, e.fields.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
