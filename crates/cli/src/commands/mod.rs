//! One module per command. Each turns parsed arguments into calls on the library crates and prints the
//! outcome; none holds logic of its own.

mod api_token;
mod audit;
mod backup;
mod cluster;
mod config;
mod device;
mod docs;
mod doctor;
mod event;
mod expiries;
mod init;
mod oauth;
mod queue;
mod serve;
mod store;

use crate::cli::{Cli, Command, Global};
use anyhow::{Result, anyhow};
use std::{path::Path, process::ExitCode};
use tidings_app::{App, data_dir::DataDir};

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let global = &cli.global;
    match cli.command {
        Command::Init(args) => init::run(global, args).await,
        Command::Serve(args) => serve::run(global, *args).await,
        Command::Config(command) => config::run(global, command).await,
        Command::Audit(args) => audit::run(&open(global).await?, args).await,
        Command::Doctor { json, send_to } => doctor::run(&open(global).await?, json, send_to).await,
        Command::Expiries { json } => expiries::run(&open(global).await?, json).await,
        Command::Completions { shell } => docs::completions(shell),
        Command::Man { dir } => docs::man(&dir),
        Command::Backup { file, force } => backup::backup(global, &file, force).await,
        Command::Restore { file } => backup::restore(global, &file).await,
        Command::Send(args) => queue::send(&open(global).await?, args).await,
        Command::Queue(command) => queue::run(&open(global).await?, command).await,
        Command::ApiToken(command) => api_token::run(&open(global).await?, command).await,
        Command::Oauth(command) => oauth::run(&open(global).await?, command).await,
        Command::Event(command) => event::run(&open(global).await?, command).await,
        Command::Device(command) => device::run(&open(global).await?, command).await,
        Command::Cluster(command) => cluster::run(&open(global).await?, command).await,
        Command::Store(command) => store::run(global, command).await,
    }
}

fn data_dir(global: &Global) -> Result<DataDir> {
    let dir = global
        .data_dir
        .clone()
        .map(DataDir::new)
        .ok_or_else(|| anyhow!("no data directory: give --data-dir DIR or set TIDINGS_DATA_DIR"))?;
    let url = global
        .database_url
        .as_deref()
        .filter(|url| !url.trim().is_empty())
        .map(tidings_store::PostgresUrl::parse)
        .transpose()
        .map_err(|invalid| anyhow!("--database-url: {}", invalid.reason()))?;
    Ok(dir.with_database_url(url))
}

pub(crate) async fn open(global: &Global) -> Result<App> {
    Ok(App::open(data_dir(global)?, global.secret_key.as_deref()).await?)
}

/// Who the audit log names for changes made here: the local user.
fn actor() -> String {
    use std::os::unix::fs::MetadataExt;
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| {
        std::fs::metadata("/proc/self").map(|m| format!("uid={}", m.uid())).unwrap_or_else(|_| "unknown".into())
    });
    format!("cli:{user}")
}

/// Reads a regular text file of at most `limit` bytes; the error names the file and what is wrong with it.
fn read_file(path: &Path, limit: u64) -> Result<String> {
    tidings_app::files::read_text(path, limit).map_err(|why| anyhow!(why))
}

/// Reads the first line of a file, without its line ending.
fn first_line(path: &Path) -> Result<String> {
    let text = read_file(path, tidings_app::files::DOCUMENT_LIMIT)?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}
