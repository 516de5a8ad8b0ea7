//! The `svirt-pool` command: parse arguments, load the config, run the subcommand.

use std::process::ExitCode;

use clap::Parser;
use svirt_pool::cli::{Cli, Command};
use svirt_pool::config::{self, Checks, Settings};
use svirt_pool::error::Error;

/// Logs go to stderr (the journal, under systemd). The agent reports at info level;
/// one-shot commands only warn, since their result is on stdout. Every field and
/// message is written with its control characters escaped, so no text a user chose (a
/// file name with a newline) can forge a log line, whichever call site logs it.
fn init_logging(verbose: u8, is_agent: bool) {
    use tracing_subscriber::field::MakeExt;
    let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        let text = svirt_pool::escape_controls(&text);
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{field}={text}")
        }
    })
    .delimited(" ");
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
        .fmt_fields(fields)
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
    // libvirt waits for its hook at every domain start: the hook parses the config
    // and checks its syntax, and leaves the checks against the system (which load the
    // policy's file_contexts, about 12 ms) to the agent and `scan`, which run them at
    // start. Labeling loads file_contexts itself when a resting label needs it.
    let checks = match cli.command {
        Command::LibvirtHook { .. } => Checks::Syntax,
        _ => Checks::Full,
    };
    let result =
        Settings::load_with(&config::resolve_path(cli.config.clone()), checks).and_then(|s| {
            let out = svirt_pool::cli::commands::Output {
                json: cli.json,
                quiet: cli.quiet,
            };
            svirt_pool::cli::commands::run(cli.command, out, s)
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("svirt-pool: {e}");
            ExitCode::from(u8::try_from(Error::exit_code(&e)).unwrap_or(1))
        }
    }
}
