//! The replies of the `io.svirtpool` methods (wire names as served), and the
//! conversions from what the operations return.

// zlink's derives generate public items without docs.
#![allow(missing_docs)]

use serde::{Deserialize, Serialize};
use zlink::introspect;

use super::types::*;
use crate::config::Settings;
use crate::model::EventKind;

/// Reply of `ListPools`.
#[derive(Debug, Serialize, Deserialize, introspect::Type)]
pub struct PoolsReply {
    /// Every managed pool.
    pub pools: Vec<Pool>,
}

/// Reply of `ListVolumes`.
#[derive(Debug, Serialize, Deserialize, introspect::Type)]
pub struct VolumesReply {
    /// One page of volumes, by name.
    pub volumes: Vec<Volume>,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<String>,
}

/// Reply of `CheckPath`.
#[derive(Debug, Serialize, Deserialize, introspect::Type)]
pub struct PathCheckReply {
    /// What the emulator may do at each component.
    pub check: PathCheck,
}

/// Reply of `DefineGuest`.
#[derive(Debug, Serialize, Deserialize, introspect::Type)]
pub struct GuestReply {
    /// The guest.
    pub guest: Guest,
}

/// Reply of `GetGuest`.
#[derive(Debug, Serialize, Deserialize, introspect::Type)]
pub struct GuestDetailReply {
    /// The guest.
    pub guest: Guest,
    /// What it holds.
    pub attachments: Vec<Attachment>,
}

/// Reply of `ListGuests`.
#[derive(Debug, Serialize, Deserialize, introspect::Type)]
pub struct GuestsReply {
    /// One page of guests, in UUID order.
    pub guests: Vec<Guest>,
    /// The UUID to pass as `after` for the next page, when there is one.
    pub next: Option<String>,
}

/// Reply of `UndefineGuest` and `Release`.
#[derive(Debug, Serialize, Deserialize, introspect::Type)]
pub struct ReleasedReply {
    /// How many volumes were released.
    pub released: u64,
}

/// Reply of `LibvirtHook`.
#[derive(Debug, Serialize, Deserialize, introspect::Type)]
pub struct HookReply {
    /// What was done, in one line.
    pub summary: String,
}

/// Reply of `Attach`, `Detach`, `Import`, `CreateSaveImage` and `Open`.
#[derive(Debug, Serialize, Deserialize, introspect::Type)]
pub struct LabeledReply {
    /// What was done to the volume.
    pub result: Labeled,
}

/// One item of `Monitor`.
#[derive(Debug, Clone, Serialize, Deserialize, introspect::Type)]
pub struct EventReply {
    /// The change.
    pub event: Event,
}

pub(super) fn labeled(result: Labeled) -> LabeledReply {
    LabeledReply { result }
}

/// The event telling `Monitor` clients what a change did to a volume.
pub(super) fn volume_event(kind: EventKind, pool: String, r: &Labeled) -> Event {
    Event::new(kind, pool, r.volume.clone(), r.label.clone())
}

/// The pool a volume path or `VG/LV` belongs to, for events.
pub(super) fn pool_of(settings: &Settings, volume: &crate::ops::locate::Named) -> String {
    volume.pool_name(settings).to_owned()
}
