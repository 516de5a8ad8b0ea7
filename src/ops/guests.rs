//! `svirt-pool guest define|show|list|undefine`.

use serde::{Deserialize, Serialize};

use super::{parse_uuid, volumes};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::lock;
use crate::state::{Guest, Store};

/// A guest as the CLI prints it and the API returns it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GuestInfo {
    /// libvirt's domain UUID.
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// Its MCS pair, `cA,cB`.
    pub categories: String,
    /// The label its QEMU runs as.
    pub process_label: String,
    /// The label of its private images.
    pub image_label: String,
    /// What it holds (`guest show` only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attachments: Option<Vec<AttachmentInfo>>,
}

/// One volume a guest holds.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AttachmentInfo {
    /// The pool's name.
    pub pool: String,
    /// The path in a dir pool, or the LV uuid.
    pub volume: String,
    /// `rw`, `ro` or `shared`.
    pub mode: String,
}

fn guest_json(settings: &Settings, g: &Guest) -> GuestInfo {
    let contexts = &settings.selinux.contexts;
    GuestInfo {
        uuid: g.uuid.clone(),
        name: g.name.clone(),
        categories: g.pair.to_string(),
        process_label: contexts.process_label(g.pair).to_string(),
        image_label: contexts.image_label(g.pair).to_string(),
        attachments: None,
    }
}

/// Defines a guest (or returns the existing one).
pub fn define(settings: &Settings, uuid: &str, name: Option<&str>) -> Result<GuestInfo> {
    let uuid = parse_uuid(uuid)?;
    if let Some(n) = name
        && (n.is_empty() || n.chars().any(char::is_control))
    {
        return Err(Error::Usage(format!(
            "name {n:?} must be non-empty and have no control characters"
        )));
    }
    let _lock = lock::acquire(&settings.state_dir)?;
    let mut store = Store::open(&settings.state_dir)?;
    let (guest, created) = store.define_guest(&uuid, name, &settings.selinux.categories)?;
    if created {
        tracing::info!(uuid = %guest.uuid, pair = %guest.pair, "guest defined");
    }
    Ok(guest_json(settings, &guest))
}

fn known_guest(store: &Store, uuid: &str) -> Result<Guest> {
    store
        .guest(uuid)?
        .ok_or_else(|| Error::NoSuchGuest(uuid.to_owned()))
}

/// One guest with its attachments.
pub fn show(settings: &Settings, uuid: &str) -> Result<GuestInfo> {
    let uuid = parse_uuid(uuid)?;
    lock::ensure_state_dir(&settings.state_dir)?;
    let store = Store::open(&settings.state_dir)?;
    let guest = known_guest(&store, &uuid)?;
    let mut json = guest_json(settings, &guest);
    json.attachments = Some(
        store
            .attachments(Some(&uuid))?
            .into_iter()
            .map(|a| AttachmentInfo {
                pool: a.pool,
                volume: String::from_utf8_lossy(&a.volume).into_owned(),
                mode: a.mode.as_str().to_owned(),
            })
            .collect(),
    );
    Ok(json)
}

/// Every guest.
pub fn list(settings: &Settings) -> Result<Vec<GuestInfo>> {
    lock::ensure_state_dir(&settings.state_dir)?;
    let store = Store::open(&settings.state_dir)?;
    Ok(store
        .guests()?
        .iter()
        .map(|g| guest_json(settings, g))
        .collect())
}

/// Forgets a guest; with `force`, releases its volumes first (in the same transaction).
/// Returns how many volumes were released.
pub fn undefine(settings: &Settings, uuid: &str, force: bool) -> Result<usize> {
    let uuid = parse_uuid(uuid)?;
    let _lock = lock::acquire(&settings.state_dir)?;
    let mut store = Store::open(&settings.state_dir)?;
    let released = store.undefine_guest(&uuid, force)?;
    tracing::info!(uuid, released = released.len(), "guest undefined");
    volumes::restore_released(settings, &store, &released)?;
    Ok(released.len())
}
