//! `tidings store copy`.

use super::data_dir;
use crate::cli::{Global, StoreCommand};
use anyhow::{Result, anyhow, bail};
use std::{path::PathBuf, process::ExitCode};
use tidings_store::{Database, PostgresUrl};

pub async fn run(global: &Global, command: StoreCommand) -> Result<ExitCode> {
    let StoreCommand::Copy { to, force } = command;
    let dir = data_dir(global)?;
    let source = dir.store();
    if !source.is_shared() && dir.daemon_running() {
        bail!(
            "a daemon is running on {}: stop it first, or the messages it accepts during the copy would stay behind",
            dir.root().display()
        );
    }
    if !source.is_shared() && !dir.database().exists() {
        bail!("{} has no database to copy", dir.root().display());
    }
    let target = if to.contains("://") {
        Database::Postgres(PostgresUrl::parse(&to).map_err(|invalid| anyhow!("--to: {}", invalid.reason()))?)
    } else {
        let path = PathBuf::from(&to);
        Database::Sqlite(if path.is_dir() { path.join("tidings.db") } else { path })
    };
    let copied = tidings_store::copy::copy(&source, &target, force).await?;
    say!("Copied {source} to {target}:");
    for (table, rows) in copied.tables.iter().filter(|(_, rows)| *rows > 0) {
        say!("  {table}: {rows}");
    }
    say!("Every row arrived (counted on both sides). The secrets are sealed with this data directory's key:");
    match &target {
        Database::Postgres(_) => say!(
            "  run this node with --database-url (or TIDINGS_DATABASE_URL), and give other nodes the key with \
             `tidings init --join-key {}`",
            dir.key_file().display()
        ),
        Database::Sqlite(_) => {
            say!("  a data directory that uses this file needs the same key ({})", dir.key_file().display())
        }
    }
    Ok(ExitCode::SUCCESS)
}
