//! `tidings audit`.

use crate::{cli::AuditArgs, output::shown};
use anyhow::Result;
use std::process::ExitCode;
use tidings_app::App;
use tidings_server::http::wire;

pub async fn run(app: &App, args: AuditArgs) -> Result<ExitCode> {
    let entries = app.store().audit(args.limit).await?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&wire::all::<_, wire::AuditEntry>(&entries))?);
        return Ok(ExitCode::SUCCESS);
    }
    for e in entries {
        let fields = e.fields.join(", ");
        let (actor, action, fields) = (shown(&e.actor), shown(&e.action), shown(&fields));
        say!("{}  {:<16} {:<28} {}", e.at.format("%Y-%m-%d %H:%M:%S UTC"), actor, action, fields);
    }
    Ok(ExitCode::SUCCESS)
}
