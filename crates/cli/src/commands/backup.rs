//! `tidings backup FILE [--force]` and `tidings restore FILE`: the data directory in one archive while the
//! daemon runs, and back into an empty directory (the rules are `tidings_app::backup`'s).

use super::{data_dir, open};
use crate::cli::Global;
use anyhow::Result;
use std::{path::Path, process::ExitCode};

pub async fn backup(global: &Global, file: &Path, force: bool) -> Result<ExitCode> {
    let app = open(global).await?;
    let key = app.data_dir().secret_key(global.secret_key.as_deref())?;
    let made = app.backup(file, &key, force).await?;
    if made.database {
        say!("Backed up to {} ({} bytes): the database and the key.", file.display(), made.bytes);
    } else {
        say!(
            "Backed up the key to {}. The database is on PostgreSQL: back it up with pg_dump (docs/operations.md, \
             \"Backups\").",
            file.display()
        );
    }
    say!("The archive holds the key that opens every stored secret: keep it as safe as the data directory.");
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(global: &Global, file: &Path) -> Result<ExitCode> {
    let dir = data_dir(global)?;
    let app = tidings_app::backup::restore(file, &dir).await?;
    let current = app.current().await?;
    say!(
        "Restored into {}: configuration revision {}, every stored secret opened with the archive's key.",
        dir.root().display(),
        current.revision
    );
    Ok(ExitCode::SUCCESS)
}
