//! `tidings`: the daemon and the administrator's command line, in one binary.
//!
//! `main` only parses the command line, sets up logging and hands over to [`commands`]; everything a command
//! does lives in the library crates, so that the API and the web interface do the same thing.

/// `println!` for the commands, through [`output`]: a closed pipe ends the command quietly.
macro_rules! say {
    () => { $crate::output::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` for the commands, through [`output`].
macro_rules! say_part {
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*)) };
}

mod allocator;
mod cli;
mod commands;
mod logging;
mod output;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    allocator::large_buffers_go_back();
    let cli = cli::Cli::parse();
    logging::init(&cli.global, cli.command.is_daemon());
    let workers = cli.command.workers();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
