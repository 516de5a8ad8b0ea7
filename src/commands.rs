//! The CLI subcommands: run the operation, print its result for people or as JSON.

use crate::cli::{Command, GuestCommand};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::ops::{self, guests, report, volumes};

/// Prints a value as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(Error::failed)?;
    println!("{text}");
    Ok(())
}

/// Runs one subcommand with validated settings.
pub fn run(command: Command, settings: Settings) -> Result<()> {
    let s = &settings;
    match command {
        Command::Agent => crate::agent::run(settings),
        Command::Scan { json } => {
            let r = report::scan(s)?;
            if json {
                print_json(&r)?;
            } else {
                for (name, summary) in &r.pools {
                    println!("pool {name}: {summary}");
                }
                println!("total: {}", r.total);
            }
            match r.errors.is_empty() {
                true => Ok(()),
                false => Err(Error::failed(r.errors.join("\n"))),
            }
        }
        Command::Status { json, all } => {
            let pools = report::status(s)?;
            if json {
                return print_json(&serde_json::json!({ "pools": pools }));
            }
            pools.iter().for_each(|p| report::print_pool(p, all));
            Ok(())
        }
        Command::Guest(GuestCommand::Define { uuid, name }) => {
            print_json(&guests::define(s, &uuid, name.as_deref())?)
        }
        Command::Guest(GuestCommand::Show { uuid }) => print_json(&guests::show(s, &uuid)?),
        Command::Guest(GuestCommand::List) => print_json(&guests::list(s)?),
        Command::Guest(GuestCommand::Undefine { uuid, force }) => {
            let released = guests::undefine(s, &uuid, force)?;
            let uuid = ops::parse_uuid(&uuid)?;
            println!("undefined guest {uuid}; released {released} volume(s)");
            Ok(())
        }
        Command::Attach {
            guest,
            volume,
            mode,
        } => {
            let mode = mode.into();
            let r = volumes::attach(s, &guest, &volume, mode)?;
            let uuid = ops::parse_uuid(&guest)?;
            let what = r.label.or(r.note).unwrap_or_default();
            println!("attached {} to guest {uuid} ({mode}): {what}", r.volume);
            Ok(())
        }
        Command::Detach { guest, volume } => {
            let r = volumes::detach(s, &guest, &volume)?;
            let uuid = ops::parse_uuid(&guest)?;
            let what = r.label.or(r.note).unwrap_or_default();
            println!("detached {} from guest {uuid}: {what}", r.volume);
            Ok(())
        }
        Command::Release { guest } => {
            let released = volumes::release(s, &guest)?;
            let uuid = ops::parse_uuid(&guest)?;
            println!("released {released} volume(s) of guest {uuid}");
            Ok(())
        }
        Command::UdevHook => unreachable!("the udev hook runs without full settings"),
    }
}
