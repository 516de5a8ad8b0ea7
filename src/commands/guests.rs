//! `svirt-pool guest define|show|list|undefine`.

use serde::Serialize;

use super::{parse_uuid, print_json, volumes};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::lock;
use crate::state::{Guest, Store};

/// A guest as the CLI prints it.
#[derive(Serialize)]
struct GuestJson {
    uuid: String,
    name: String,
    categories: String,
    process_label: String,
    image_label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    attachments: Option<Vec<AttachmentJson>>,
}

#[derive(Serialize)]
struct AttachmentJson {
    pool: String,
    volume: String,
    mode: &'static str,
}

fn guest_json(settings: &Settings, g: &Guest) -> GuestJson {
    let contexts = &settings.selinux.contexts;
    GuestJson {
        uuid: g.uuid.clone(),
        name: g.name.clone(),
        categories: g.pair.to_string(),
        process_label: contexts.process_label(g.pair).to_string(),
        image_label: contexts.image_label(g.pair).to_string(),
        attachments: None,
    }
}

/// Defines a guest (or returns the existing one) and prints it.
pub fn define(settings: &Settings, uuid: &str, name: Option<&str>) -> Result<()> {
    let uuid = parse_uuid(uuid)?;
    if let Some(n) = name
        && (n.is_empty() || n.chars().any(char::is_control))
    {
        return Err(Error::Usage(format!(
            "--name {n:?} must be non-empty and have no control characters"
        )));
    }
    let _lock = lock::acquire(&settings.state_dir)?;
    let mut store = Store::open(&settings.state_dir)?;
    let (guest, created) = store.define_guest(&uuid, name, &settings.selinux.categories)?;
    if created {
        tracing::info!(uuid = %guest.uuid, pair = %guest.pair, "guest defined");
    }
    print_json(&guest_json(settings, &guest))
}

fn known_guest(store: &Store, uuid: &str) -> Result<Guest> {
    store
        .guest(uuid)?
        .ok_or_else(|| Error::refused(format!("guest {uuid} is not defined")))
}

/// Prints one guest with its attachments.
pub fn show(settings: &Settings, uuid: &str) -> Result<()> {
    let uuid = parse_uuid(uuid)?;
    lock::ensure_state_dir(&settings.state_dir)?;
    let store = Store::open(&settings.state_dir)?;
    let guest = known_guest(&store, &uuid)?;
    let mut json = guest_json(settings, &guest);
    json.attachments = Some(
        store
            .attachments(Some(&uuid))?
            .into_iter()
            .map(|a| AttachmentJson {
                pool: a.pool,
                volume: String::from_utf8_lossy(&a.volume).into_owned(),
                mode: a.mode.as_str(),
            })
            .collect(),
    );
    print_json(&json)
}

/// Prints every guest.
pub fn list(settings: &Settings) -> Result<()> {
    lock::ensure_state_dir(&settings.state_dir)?;
    let store = Store::open(&settings.state_dir)?;
    let guests: Vec<GuestJson> = store
        .guests()?
        .iter()
        .map(|g| guest_json(settings, g))
        .collect();
    print_json(&guests)
}

/// Forgets a guest; with `force`, releases its volumes first (in the same transaction).
pub fn undefine(settings: &Settings, uuid: &str, force: bool) -> Result<()> {
    let uuid = parse_uuid(uuid)?;
    let _lock = lock::acquire(&settings.state_dir)?;
    let mut store = Store::open(&settings.state_dir)?;
    let released = store.undefine_guest(&uuid, force)?;
    tracing::info!(uuid, released = released.len(), "guest undefined");
    volumes::restore_released(settings, &store, &released)?;
    println!(
        "undefined guest {uuid}; released {} volume(s)",
        released.len()
    );
    Ok(())
}
