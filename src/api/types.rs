//! The wire types of the `io.svirtpool` varlink interface and its errors.

use serde::{Deserialize, Serialize};
use zlink::introspect::CustomType;

use crate::error::Error;
use crate::ops::guests::{AttachmentInfo, GuestInfo};
use crate::ops::report::{HolderStatus, PoolStatus, VolumeStatus};

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
    /// Its size in bytes, when known.
    pub size: Option<u64>,
    /// `qcow2`, `raw`, `iso`, from the file's magic; null for LVs and unreadable files.
    pub format: Option<String>,
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

/// Every error a method of `io.svirtpool` can return.
#[derive(Debug, Clone, PartialEq, Eq, zlink::ReplyError, zlink::introspect::ReplyError)]
#[zlink(interface = "io.svirtpool")]
pub enum ApiError {
    /// The peer may not call this method.
    PermissionDenied {
        /// The method.
        method: String,
        /// Why not.
        reason: String,
    },
    /// A parameter is malformed.
    InvalidArgument {
        /// Which parameter.
        parameter: String,
        /// What is wrong.
        reason: String,
    },
    /// The request was understood and refused; nothing changed.
    Refused {
        /// Why.
        reason: String,
    },
    /// No such guest.
    GuestNotFound {
        /// The UUID asked for.
        uuid: String,
    },
    /// No such pool.
    PoolNotFound {
        /// The name asked for.
        pool: String,
    },
    /// A volume of that name already exists.
    AlreadyExists {
        /// The volume.
        volume: String,
    },
    /// The request failed while being carried out.
    Failed {
        /// Why.
        reason: String,
    },
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Usage(reason) | Error::Config(reason) => ApiError::InvalidArgument {
                parameter: String::new(),
                reason,
            },
            Error::NoSuchGuest(uuid) => ApiError::GuestNotFound { uuid },
            Error::NoSuchPool(pool) => ApiError::PoolNotFound { pool },
            Error::Exists(volume) => ApiError::AlreadyExists { volume },
            Error::Refused(reason) => ApiError::Refused { reason },
            Error::Forbidden(reason) => ApiError::PermissionDenied {
                method: String::new(),
                reason,
            },
            Error::Failed(reason) => ApiError::Failed { reason },
        }
    }
}

impl From<GuestInfo> for Guest {
    fn from(g: GuestInfo) -> Self {
        Guest {
            uuid: g.uuid,
            name: g.name,
            categories: g.categories,
            process_label: g.process_label,
            image_label: g.image_label,
        }
    }
}

impl From<AttachmentInfo> for Attachment {
    fn from(a: AttachmentInfo) -> Self {
        Attachment {
            pool: a.pool,
            volume: a.volume,
            mode: a.mode,
        }
    }
}

impl From<HolderStatus> for Holder {
    fn from(h: HolderStatus) -> Self {
        Holder {
            guest: h.guest,
            name: h.name,
            mode: h.mode,
        }
    }
}

impl Volume {
    /// The picker's view of a status entry; `format` and `size` are filled by the caller.
    pub fn from_status(v: VolumeStatus) -> Self {
        Volume {
            name: v.volume,
            path: v.path,
            address: v.address,
            size: None,
            format: None,
            current_label: v.current,
            desired_label: v.desired,
            state: v.state,
            holders: v.attachments.into_iter().map(Holder::from).collect(),
            drift: v.drift,
            note: v.note,
        }
    }
}

impl Pool {
    /// The picker's view of a pool's status.
    pub fn from_status(p: &PoolStatus) -> Self {
        Pool {
            name: p.name.clone(),
            kind: p.kind.clone(),
            location: p.location.clone(),
            available: p.available,
            volumes: p.volumes.len() as u64,
        }
    }
}
