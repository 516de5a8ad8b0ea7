//! The `svirt-pool` command: parse arguments, load the config, run the subcommand.

use std::process::ExitCode;

use clap::Parser;
use svirt_pool::cli::{Cli, Command};
use svirt_pool::config::{self, Settings};
use svirt_pool::error::Error;

/// Logs go to stderr (the journal, under systemd). The agent reports at info level;
/// one-shot commands only warn, since their result is on stdout.
fn init_logging(verbose: u8, is_agent: bool) {
    let default = match verbose {
        0 if is_agent => "info",
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, matches!(cli.command, Command::Agent));
    if matches!(cli.command, Command::UdevHook) {
        // Never fail a udev event: the hook reports, and the exit status is 0.
        svirt_pool::hook::main(&config::resolve_path(cli.config));
        return ExitCode::SUCCESS;
    }
    let result = Settings::load(&config::resolve_path(cli.config.clone()))
        .and_then(|s| svirt_pool::cli::commands::run(cli.command, s));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("svirt-pool: {e}");
            ExitCode::from(u8::try_from(Error::exit_code(&e)).unwrap_or(1))
        }
    }
}
