//! Structured logs on standard error: human-readable by default, JSON lines with `--log-format json`.

use crate::cli::{Global, LogFormat};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init(global: &Global, daemon: bool) {
    let default = if daemon { "info" } else { "warn" };
    let filter = EnvFilter::try_new(global.log.as_deref().unwrap_or(default)).unwrap_or_else(|e| {
        eprintln!("warning: ignoring log filter {:?}: {e}", global.log.as_deref().unwrap_or_default());
        EnvFilter::new(default)
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match global.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
