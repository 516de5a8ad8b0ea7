//! The error type of commands, and how each kind maps to an exit status.

use std::fmt;

use crate::decide::context::{CategorySet, Pair};
use crate::decide::labels::{AttachRefusal, Mode};

/// A failed command. The kind decides the exit status: 2 for usage or config
/// errors, 1 for a refused or failed operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line was wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The configuration file was wrong (exit 2).
    #[error("{0}")]
    Config(String),
    /// The request was understood and refused; nothing was changed (exit 1).
    #[error("{0}")]
    Refused(Box<Refusal>),
    /// A volume of that name already exists (exit 1).
    #[error("{0} already exists")]
    Exists(String),
    /// The guest with this UUID is not defined (exit 1).
    #[error("guest {0} is not defined")]
    NoSuchGuest(String),
    /// No pool of this name is configured (exit 1).
    #[error("pool {0:?} is not configured")]
    NoSuchPool(String),
    /// The caller may not act on this guest or file (exit 1).
    #[error("{0}")]
    Forbidden(String),
    /// The request failed while being carried out (exit 1).
    #[error("{0}")]
    Failed(String),
    /// Another host changed what a batch of changes read before the batch committed;
    /// nothing of it was written, and it may be tried again from the start (exit 1).
    #[error("{0}")]
    Conflict(String),
    /// The state database failed (exit 1); the SQLite error is kept as the source.
    #[error("state database: {0}")]
    State(#[from] rusqlite::Error),
}

impl Error {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Config(_) => 2,
            Error::Refused(_)
            | Error::Exists(_)
            | Error::NoSuchGuest(_)
            | Error::NoSuchPool(_)
            | Error::Forbidden(_)
            | Error::Failed(_)
            | Error::Conflict(_)
            | Error::State(_) => 1,
        }
    }

    /// A refusal that its message says all of ([`Refusal::Other`]).
    pub fn refused(msg: impl fmt::Display) -> Self {
        Refusal::Other(msg.to_string()).into()
    }

    /// A failure with the given message.
    pub fn failed(msg: impl fmt::Display) -> Self {
        Error::Failed(msg.to_string())
    }
}

impl From<Refusal> for Error {
    fn from(why: Refusal) -> Self {
        // Boxed: a refusal is rare, and every `Result` of the crate carries the size of
        // its error.
        Error::Refused(Box::new(why))
    }
}

/// Why a request was refused, by kind: callers match the kind, never its text, and a
/// refusal's message is written here once.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Another guest holds the volume in a mode this attach cannot share.
    #[error("volume {volume} {why}")]
    Held {
        /// The volume, as its pool keys it.
        volume: String,
        /// Who holds it, and how.
        why: AttachRefusal,
    },
    /// An overlay a guest holds reads the volume as its backing file: no one may
    /// write it.
    #[error(
        "volume {volume} is the backing file of {overlay} held by guest {guest}: it cannot be attached rw"
    )]
    BackingOfOverlay {
        /// The backing file.
        volume: String,
        /// The overlay on it.
        overlay: String,
        /// The guest holding the overlay.
        guest: String,
    },
    /// The guest holds the volume `rw` on another host of the cluster (or asks `rw`
    /// where it holds it there), and is not migrating here.
    #[error(
        "volume {volume} is attached to guest {guest} on host {host}: a guest holds a \
         private volume on a second host only while it migrates there"
    )]
    OnOtherHost {
        /// The volume.
        volume: String,
        /// The guest.
        guest: String,
        /// The host that holds it.
        host: String,
    },
    /// A backing file of the overlay being attached is held `rw`.
    #[error("backing file {volume} of {overlay} is attached rw to guest {guest}")]
    BackingWritten {
        /// The backing file.
        volume: String,
        /// The overlay being attached.
        overlay: String,
        /// The guest that writes the backing file.
        guest: String,
    },
    /// A member has as many guests as `api.max_guests_per_user` allows.
    #[error("uid {uid} already has {held} guests, the most api.max_guests_per_user allows")]
    GuestQuota {
        /// The member.
        uid: u32,
        /// How many guests it has.
        held: u32,
    },
    /// The pairs still free are kept for root's guests.
    #[error(
        "only {free} of the {total} MCS pairs are free, and the last {reserve} are kept for root's guests"
    )]
    PairsReserved {
        /// Pairs free.
        free: usize,
        /// Pairs in all.
        total: usize,
        /// Pairs kept for root.
        reserve: usize,
    },
    /// Every pair of the categories is in use.
    #[error("no free MCS pair is left: all {total} pairs of categories {categories} are in use")]
    PairsExhausted {
        /// Pairs in all.
        total: usize,
        /// The categories pairs are drawn from.
        categories: CategorySet,
    },
    /// Another guest holds the pair, as its own or as the one it runs with.
    #[error("pair {pair} is held by guest {name} ({uuid})")]
    PairTaken {
        /// The pair.
        pair: Pair,
        /// The other guest's name.
        name: String,
        /// The other guest's UUID.
        uuid: String,
    },
    /// A guest that still holds volumes cannot be forgotten.
    #[error(
        "guest {uuid} still has {count} attachment(s); detach them, or use --force to release them"
    )]
    GuestHolds {
        /// The guest.
        uuid: String,
        /// How many volumes it holds.
        count: usize,
    },
    /// Root defined the UUID of a member's guest.
    #[error(
        "guest {uuid} was defined by uid {owner}, not root: root's define never reuses a member's \
         guest; undefine it first (svirt-pool guest undefine --force {uuid}); libvirt's qemu hook \
         takes it over by itself"
    )]
    MembersGuest {
        /// The guest.
        uuid: String,
        /// The member who defined it.
        owner: u32,
    },
    /// A member owns as many volumes at a pool's root as `api.max_volumes_per_user`
    /// allows.
    #[error(
        "uid {uid} already owns {count} volumes in this pool, the most api.max_volumes_per_user allows"
    )]
    VolumeQuota {
        /// The member.
        uid: u32,
        /// How many it owns.
        count: u64,
    },
    /// A member's volumes at a pool's root would pass `api.max_volume_bytes_per_user`.
    #[error(
        "uid {uid}'s volumes in this pool already have {total} bytes; {bytes} more would pass \
         api.max_volume_bytes_per_user ({limit})"
    )]
    ByteQuota {
        /// The member.
        uid: u32,
        /// The sizes of its volumes, added.
        total: u64,
        /// The size asked for.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The pool's filesystem would pass into the space kept for root.
    #[error(
        "the pool's filesystem would have less than {percent} % of its space or inodes free, \
         which are kept for root (api.reserve_percent)"
    )]
    Reserve {
        /// `api.reserve_percent`.
        percent: u8,
    },
    /// A detach named a volume the guest does not hold.
    #[error("guest {guest} does not hold {volume}")]
    NotHeld {
        /// The guest.
        guest: String,
        /// The volume, as named.
        volume: String,
    },
    /// The file a caller opened is not the one at the name any more.
    #[error("{volume} was replaced while it was being attached; nothing was attached")]
    Replaced {
        /// The volume, as named.
        volume: String,
    },
    /// A managed volume group has no LV of that name.
    #[error("volume group {vg} has no LV {lv:?}")]
    NoSuchLv {
        /// The volume group.
        vg: String,
        /// The LV's name.
        lv: String,
    },
    /// The LV has no device node: it is not active.
    #[error("{volume} is inactive: activate it first")]
    Inactive {
        /// The LV, as `VG/LV`.
        volume: String,
    },
    /// A volume a guest holds cannot be deleted.
    #[error(
        "cannot delete {path}: held {mode} by guest {guest} (directly or through an overlay on it)"
    )]
    InUse {
        /// The volume.
        path: String,
        /// A guest holding it.
        guest: String,
        /// How.
        mode: Mode,
    },
    /// A path named as a volume is in no configured pool.
    #[error("{path} is not inside any configured pool")]
    NotInPool {
        /// The path, as the user gave it (normalized).
        path: String,
    },
    /// A refusal its message says all of.
    #[error("{0}")]
    Other(String),
}

/// Shorthand for results of commands.
pub type Result<T, E = Error> = std::result::Result<T, E>;
