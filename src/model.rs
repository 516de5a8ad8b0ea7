//! The shapes a user sees, one type per concept, shared by the operations, the API
//! (these are its wire types: the names are the varlink type and field names) and the
//! CLI's JSON. The stored records (`state::Guest`, `state::Attachment`) are what the
//! database keeps; these are how they are shown.

use serde::{Deserialize, Serialize};
use zlink::introspect::CustomType;

/// A managed pool.
#[derive(Debug, Clone, Serialize, Deserialize, CustomType, PartialEq, Eq)]
pub struct Pool {
    /// Its name.
    pub name: String,
    /// `dir` or `lvm`.
    pub kind: String,
    /// Its directory, or `VG name`.
    pub location: String,
    /// Whether it could be read.
    pub available: bool,
    /// How many volumes it has.
    pub volumes: u64,
    /// Its size in bytes (the filesystem's, or the VG's), when it could be read.
    pub capacity: Option<u64>,
    /// Bytes in use (libvirt's `allocation`).
    pub allocation: Option<u64>,
    /// Bytes a new volume can use (libvirt's `available`; `available` here says
    /// whether the pool could be read).
    pub free: Option<u64>,
}

/// One guest holding a volume.
#[derive(Debug, Clone, Serialize, Deserialize, CustomType, PartialEq, Eq)]
pub struct Holder {
    /// The guest's UUID.
    pub guest: String,
    /// The guest's name.
    pub name: String,
    /// `rw`, `ro` or `shared`.
    pub mode: String,
    /// The host of the cluster that holds it, when not this one (a shared pool's
    /// volume); null on this host and on a host alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Holder {
    /// Its guest's name, with the host when that is another (`web on host b`).
    pub fn shown(&self) -> String {
        match &self.host {
            Some(host) => format!("{} on host {host}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A volume of a pool, as the picker shows it.
#[derive(Debug, Clone, Serialize, Deserialize, CustomType, PartialEq, Eq)]
pub struct Volume {
    /// Its path inside a dir pool, or `VG/LV`.
    pub name: String,
    /// Its file, or its LV node (empty when the LV is inactive).
    pub path: String,
    /// What to pass as `volume` to Attach, Detach or Open it: its path, or
    /// `base64:BYTES` when the path is not UTF-8 (`name` and `path` show it lossily).
    pub address: String,
    /// Its length in bytes (an LV's size), when known.
    pub size: Option<u64>,
    /// `qcow2`, `raw`, `iso`, `vmdk`, `vdi`, `vhdx` from the file's magic (`raw` for
    /// LVs); null for unreadable files.
    pub format: Option<String>,
    /// Its virtual size in bytes (qcow2 header; else its length), as libvirt's
    /// `capacity`.
    pub capacity: Option<u64>,
    /// Bytes it occupies on disk (blocks; an LV's size), as libvirt's `allocation`.
    pub allocation: Option<u64>,
    /// Its backing chain, nearest first (qcow2 overlays).
    pub backing: Vec<BackingFile>,
    /// Names of the guests that hold it, or hold an overlay on it.
    pub used_by: Vec<String>,
    /// Its label now.
    pub current_label: Option<String>,
    /// The label it must carry.
    pub desired_label: Option<String>,
    /// `free`, `rw by G`, `shared by A, B`, `ro by A, B`.
    pub state: String,
    /// Who holds it.
    pub holders: Vec<Holder>,
    /// Whether the current label differs from the desired one.
    pub drift: bool,
    /// Why it is skipped, failed or missing.
    pub note: Option<String>,
}

/// One backing file of an overlay.
#[derive(Debug, Clone, Serialize, Deserialize, CustomType, PartialEq, Eq)]
pub struct BackingFile {
    /// Its path (or `base64:` address when not UTF-8).
    pub path: String,
    /// Its format.
    pub format: String,
}

/// A guest and its labels.
#[derive(Debug, Clone, Serialize, Deserialize, CustomType, PartialEq, Eq)]
pub struct Guest {
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
}

/// One volume a guest holds.
#[derive(Debug, Clone, Serialize, Deserialize, CustomType, PartialEq, Eq)]
pub struct Attachment {
    /// The pool's name.
    pub pool: String,
    /// The path in a dir pool, or the LV uuid.
    pub volume: String,
    /// `rw`, `ro` or `shared`.
    pub mode: String,
}

/// What a change did to a volume.
#[derive(Debug, Clone, Serialize, Deserialize, CustomType, PartialEq, Eq)]
pub struct Labeled {
    /// The volume as named.
    pub volume: String,
    /// Its label now; null when it has no file or node now.
    pub label: Option<String>,
    /// Why it has no label now.
    pub note: Option<String>,
}

/// A change seen by the agent, streamed by `Monitor`.
#[derive(Debug, Clone, Serialize, Deserialize, CustomType, PartialEq, Eq)]
pub struct Event {
    /// `appeared` (a new volume), `relabeled`, `attached`, `detached`, `released`,
    /// `imported`, `created`, `undefined`, or `lagged` (this client missed `volume` events).
    pub kind: String,
    /// The pool's name.
    pub pool: String,
    /// The volume (path in a dir pool, `VG/LV`), empty for pool events.
    pub volume: String,
    /// The label it carries now, when known.
    pub label: Option<String>,
}

/// What an [`Event`] says happened (its `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A new volume.
    Appeared,
    /// The agent changed a volume's label.
    Relabeled,
    /// A guest got a volume.
    Attached,
    /// A guest let a volume go.
    Detached,
    /// A guest let every volume go.
    Released,
    /// An ISO was copied into a pool.
    Imported,
    /// A volume was created.
    Created,
    /// A volume was deleted.
    Deleted,
    /// A guest was forgotten.
    Undefined,
    /// This client missed events (`volume` says how many).
    Lagged,
}

impl EventKind {
    /// The name `Event.kind` carries.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Appeared => "appeared",
            EventKind::Relabeled => "relabeled",
            EventKind::Attached => "attached",
            EventKind::Detached => "detached",
            EventKind::Released => "released",
            EventKind::Imported => "imported",
            EventKind::Created => "created",
            EventKind::Deleted => "deleted",
            EventKind::Undefined => "undefined",
            EventKind::Lagged => "lagged",
        }
    }
}

impl Event {
    /// An event of `kind` about `volume` of `pool`.
    pub fn new(kind: EventKind, pool: String, volume: String, label: Option<String>) -> Event {
        Event {
            kind: kind.as_str().into(),
            pool,
            volume,
            label,
        }
    }
}

/// Whether the emulator can reach a file, component by component (`CheckPath`).
#[derive(Debug, Clone, Serialize, Deserialize, CustomType, PartialEq, Eq)]
pub struct PathCheck {
    /// The file, as given.
    pub path: String,
    /// The user QEMU runs as, with its uid and gid.
    pub emulator: String,
    /// The process label checked (the guest's, or the base `svirt_t` context).
    pub process_label: String,
    /// Who answered for SELinux: `kernel`, `policy file`, or why nobody could.
    pub selinux: String,
    /// Every directory on the way, then the file.
    pub steps: Vec<PathStep>,
    /// Whether nothing blocks it.
    pub reachable: bool,
    /// The first component that blocks it.
    pub blocked_at: Option<String>,
    /// What blocks it there.
    pub reason: Option<String>,
    /// What to do about it.
    pub fix: Option<String>,
}

/// One component of a [`PathCheck`].
#[derive(Debug, Clone, Serialize, Deserialize, CustomType, PartialEq, Eq)]
pub struct PathStep {
    /// The component's path.
    pub path: String,
    /// `dir`, `file`, `other` or `missing`.
    pub kind: String,
    /// Its SELinux label, when it has one.
    pub label: Option<String>,
    /// Whether `label` is file_contexts' default, not the file's own (SELinux disabled
    /// and the file unlabeled: the label a relabel would give it).
    pub label_is_default: bool,
    /// What the emulator's user may do by DAC (mode bits, ACLs, groups): `search` for
    /// directories, `read` and `write` for the file.
    pub dac_allowed: Vec<String>,
    /// What it may not.
    pub dac_denied: Vec<String>,
    /// What the guest's process label may do by the policy (`search`; `read`, `open`,
    /// `write`).
    pub selinux_allowed: Vec<String>,
    /// What it may not.
    pub selinux_denied: Vec<String>,
}
