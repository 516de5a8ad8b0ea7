//! What each CLI subcommand does, on top of config, state, labels and the reconciler.

mod guests;
mod report;
mod volumes;

use std::path::Path;

use crate::cli::{Command, GuestCommand};
use crate::config::Settings;
use crate::error::{Error, Result};

/// Runs one subcommand with validated settings.
pub fn run(command: Command, settings: Settings) -> Result<()> {
    match command {
        Command::Agent => crate::agent::run(settings),
        Command::Scan { json } => report::scan(&settings, json),
        Command::Status { json, all } => report::status(&settings, json, all),
        Command::Guest(GuestCommand::Define { uuid, name }) => {
            guests::define(&settings, &uuid, name.as_deref())
        }
        Command::Guest(GuestCommand::Show { uuid }) => guests::show(&settings, &uuid),
        Command::Guest(GuestCommand::List) => guests::list(&settings),
        Command::Guest(GuestCommand::Undefine { uuid, force }) => {
            guests::undefine(&settings, &uuid, force)
        }
        Command::Attach {
            guest,
            volume,
            mode,
        } => volumes::attach(&settings, &guest, &volume, mode.into()),
        Command::Detach { guest, volume } => volumes::detach(&settings, &guest, &volume),
        Command::Release { guest } => volumes::release(&settings, &guest),
        Command::UdevHook => unreachable!("the udev hook runs without full settings"),
    }
}

/// A guest UUID from the command line, in libvirt's lower-case hyphenated form.
fn parse_uuid(input: &str) -> Result<String> {
    uuid::Uuid::try_parse(input)
        .map(|u| u.hyphenated().to_string())
        .map_err(|e| Error::Usage(format!("--guest/--uuid {input:?} is not a UUID: {e}")))
}

/// Prints a value as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(Error::failed)?;
    println!("{text}");
    Ok(())
}

/// A path as people read it (invalid UTF-8 shown with replacement characters).
fn shown(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
