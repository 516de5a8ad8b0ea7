//! The registry: who holds what. Guests and their MCS pairs, the pairs they run with,
//! the volumes they hold and the backing files those read, with the rules that keep
//! them apart (no two guests share a pair; one `rw` holder of a private volume).
//!
//! The operations (`ops`), the agent and the libvirt hook use it only through this
//! interface, so the backend is a choice made in one place (`backend::open`): a host alone
//! keeps it in its SQLite state (`state::Store`); hosts that share storage will keep
//! it in a store they share. The contract every backend must meet is written as tests
//! against the interface (`contract.rs`).

use std::collections::HashMap;

use crate::decide::context::{CategorySet, Context, Pair};
use crate::decide::labels::{FileId, Holder, Mode};
use crate::decide::mcs;
use crate::error::{Error, Refusal, Result};

#[cfg(test)]
pub(crate) mod contract;

/// A guest the agent knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guest {
    /// libvirt's domain UUID, lower case.
    pub uuid: String,
    /// Its name (the UUID when none was given).
    pub name: String,
    /// Its MCS pair.
    pub pair: Pair,
    /// The uid that defined it (root's guests: 0). Only it and root may change what
    /// the guest holds.
    pub owner: u32,
    /// The pair libvirt runs it with, when that is not `pair` (a libvirt domain with its
    /// own SELinux label): its volumes carry this one while it is set.
    pub run_pair: Option<Pair>,
    /// Whether libvirt's qemu hook defined or attached it.
    pub via_libvirt: bool,
}

impl Guest {
    /// The pair its volumes carry now.
    pub fn effective_pair(&self) -> Pair {
        crate::decide::context::effective_pair(self.pair, self.run_pair)
    }

    /// Whether the user `uid` may act for this guest (attach, detach, release,
    /// undefine, redefine): root, and the user who defined it.
    pub fn may_act(&self, uid: u32) -> bool {
        uid == 0 || self.owner == uid
    }
}

/// One attachment: a guest holds a volume of a pool in a mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The guest's UUID.
    pub guest: String,
    /// The pool's name.
    pub pool: String,
    /// The volume's path relative to the pool root, as bytes.
    pub volume: Vec<u8>,
    /// How the guest uses it.
    pub mode: Mode,
    /// The file attached (dir pools); `None` for LVs.
    pub file: Option<FileId>,
    /// Held read-only as the backing file of this overlay (below the same pool root),
    /// not attached by itself.
    pub via: Option<Vec<u8>>,
    /// The host of the cluster it is held on, when not this one (read back from a
    /// shared pool); `None` for this host's. A new attachment is always this host's.
    pub host: Option<String>,
    /// The disk's own label from its domain XML (`<source><seclabel>`), carried
    /// instead of the one its mode decides; `None` for the mode's.
    pub label: Option<Context>,
}

/// Adds what the release of one pin took to `released`: the backing-file holds of
/// the guest's `held` volume (an overlay), then its attachment of it when it had one.
/// `host`: the host that held it, when another ([`Attachment::host`]).
pub(crate) fn add_released_pin(
    released: &mut Vec<Attachment>,
    (guest, pool, held, host): (String, &str, Vec<u8>, Option<String>),
    (mode, backing): (Option<Mode>, Vec<Attachment>),
) {
    released.extend(backing);
    if let Some(mode) = mode {
        released.push(Attachment {
            guest,
            pool: pool.to_owned(),
            volume: held,
            mode,
            file: None,
            via: None,
            host,
            label: None,
        });
    }
}

/// Each hold once: a guest may hold a file both as an attachment and as the backing
/// file of an overlay in the same mode, or on two hosts while it migrates (the label
/// counts the guest once; this host's holder is kept before another host's).
pub(crate) fn dedup_holders(holders: &mut Vec<Holder>) {
    holders.sort_by(|a, b| {
        let key = |h: &Holder| {
            (
                h.guest.clone(),
                h.mode,
                h.file.map(|f| (f.ino, f.btime_ns)),
                h.host.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    holders.dedup_by(|later, earlier| {
        later.guest == earlier.guest && later.mode == earlier.mode && later.file == earlier.file
    });
}

/// Whether `att.guest` may hold `att.volume` in its mode beside `holders`: the label
/// decision's rule ([`crate::decide::labels::check_attach`]) as the registry's refusal.
pub(crate) fn check_held(holders: &[Holder], att: &Attachment) -> Result<()> {
    crate::decide::labels::check_attach(holders, &att.guest, att.mode, att.label.as_ref()).map_err(
        |why| {
            Refusal::Held {
                volume: att.volume.escape_ascii().to_string(),
                why,
            }
            .into()
        },
    )
}

/// Every attachment: pool name → volume path → holders.
pub type HolderIndex = HashMap<String, HashMap<Vec<u8>, Vec<Holder>>>;

/// Whether `owner` (0: root) may define a guest that exists already as `guest`: its
/// owner and root may, but root never takes a member's guest by defining it (a member
/// may have defined the UUID of a libvirt domain, readable with `virsh -r`, first).
pub fn may_redefine(guest: &Guest, owner: u32) -> Result<()> {
    if !guest.may_act(owner) {
        return Err(Error::Forbidden(format!(
            "guest {} belongs to another user (uid {})",
            guest.uuid, guest.owner
        )));
    }
    if owner == 0 && guest.owner != 0 {
        return Err(Refusal::MembersGuest {
            uuid: guest.uuid.clone(),
            owner: guest.owner,
        }
        .into());
    }
    Ok(())
}

/// Whether member `owner`, who has `held` guests, may define one more when `used` pairs
/// of `categories` are in use (guests' own and the other pairs domains run with): at
/// most `quota` guests, and never one of the last pairs, kept for root.
pub fn member_may_define(
    owner: u32,
    held: u32,
    quota: u32,
    used: usize,
    categories: &CategorySet,
) -> Result<()> {
    if held >= quota {
        return Err(Refusal::GuestQuota { uid: owner, held }.into());
    }
    let total = mcs::pair_count(categories);
    let reserve = mcs::root_reserve(total);
    if total.saturating_sub(used) <= reserve {
        return Err(Refusal::PairsReserved {
            free: total.saturating_sub(used),
            total,
            reserve,
        }
        .into());
    }
    Ok(())
}

/// Guests and their pairs.
pub trait Guests {
    /// Defines a guest for `owner`, or returns the existing one with the same UUID.
    ///
    /// A new guest gets a random free pair from `categories`; `name` updates the name
    /// of an existing guest. A guest of another owner is refused (root's define of a
    /// member's guest too: see [`Guests::take_over_guest`]), and an owner other than root
    /// may hold at most `quota` guests (so no one user can take every pair). Returns
    /// the guest and whether it was created.
    fn define_guest(
        &mut self,
        uuid: &str,
        name: Option<&str>,
        categories: &CategorySet,
        owner: u32,
        quota: u32,
    ) -> Result<(Guest, bool)>;

    /// Makes a member's guest root's, with a fresh pair and no run pair, in one
    /// transaction: a libvirt domain with this UUID is root's, and never runs under a
    /// guest a member can detach, nor a pair a member chose. Its attachments stay, to be
    /// released (and their labels restored) by the caller. Returns the uid it belonged
    /// to; `None` when it is root's or absent.
    fn take_over_guest(&mut self, uuid: &str, categories: &CategorySet) -> Result<Option<u32>>;

    /// The guest with this UUID.
    fn guest(&self, uuid: &str) -> Result<Option<Guest>>;

    /// Up to `limit` guests in UUID order, after UUID `after` (a page of a listing:
    /// each page costs the same, however far into the list it is).
    fn guests_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<Guest>>;

    /// Every guest, ordered by name then UUID.
    fn guests(&self) -> Result<Vec<Guest>>;

    /// Sets the pair a guest runs with (`None`: its own again). Refused when another
    /// guest holds that pair, as its own or as the one it runs with: two guests with one
    /// pair could open each other's volumes.
    fn set_run_pair(&mut self, uuid: &str, pair: Option<Pair>) -> Result<()>;

    /// Records that libvirt's hook manages this guest.
    fn mark_via_libvirt(&mut self, uuid: &str) -> Result<()>;

    /// The guests libvirt's hook manages.
    fn libvirt_guests(&self) -> Result<Vec<Guest>>;

    /// Forgets a guest that holds nothing (its pair becomes free); refused while it holds
    /// something. Its volumes' labels must have been restored first.
    fn forget_guest(&mut self, uuid: &str) -> Result<()>;
}

/// Who holds each volume, and the backing files held with it.
pub trait Holds {
    /// Everyone holding a volume.
    fn holders(&self, pool: &str, volume: &[u8]) -> Result<Vec<Holder>>;

    /// Every attachment of every volume, for a scan.
    fn holder_index(&self) -> Result<HolderIndex>;

    /// Every attachment of every volume of the pools whose holders can be read now,
    /// and the names of the pools whose holders cannot (a cluster's shared pools while
    /// etcd does not answer): their volumes must be left as they are, never taken for
    /// unheld (that would strip the labels of running guests).
    fn holder_index_available(&self) -> Result<(HolderIndex, Vec<String>)> {
        Ok((self.holder_index()?, Vec::new()))
    }

    /// Every attachment, optionally of one guest only.
    fn attachments(&self, guest: Option<&str>) -> Result<Vec<Attachment>>;

    /// Records that `guest` holds a volume in `mode`, if the other holders allow it.
    ///
    /// Attachments of this name that hold another file (one deleted or replaced since)
    /// are dropped first: attachments follow files, not names. Check and insert are one
    /// transaction. Returns the previous mode, if the guest already held this file. An
    /// attachment `via` an overlay records a backing-file hold instead.
    fn attach(&mut self, att: &Attachment) -> Result<Option<Mode>>;

    /// Records `att` (a qcow2 overlay) and that its guest reads every file of its
    /// backing `chain` (below the same pool root, with their file identities), in one
    /// transaction: refused if any of them is held `rw`, by anyone.
    fn attach_overlay(
        &mut self,
        att: &Attachment,
        chain: &[(Vec<u8>, Option<FileId>)],
    ) -> Result<Option<Mode>>;

    /// Removes one attachment (and, for an overlay, the guest's holds on its backing
    /// files); returns its mode (`None` if there was none) and the backing holds removed.
    fn detach(
        &mut self,
        guest: &str,
        pool: &str,
        volume: &[u8],
    ) -> Result<(Option<Mode>, Vec<Attachment>)>;

    /// Releases the holds on `volume` of `pool` that only read access gave: read-only
    /// attachments of it, and overlays on it, by guests of members who do not own the
    /// file (owner `owner`). Guests of root and of the owner are never released. Part
    /// of the caller's transaction (a savepoint). Returns the attachments removed, each
    /// overlay's backing-file holds with it (docs/api.md, "Read access never pins").
    fn release_pins(&mut self, pool: &str, volume: &[u8], owner: u32) -> Result<Vec<Attachment>>;

    /// Removes every attachment of `guest` on this host; returns them, its backing-file
    /// holds last (with `via` set). Its holds on other hosts of a cluster stay.
    fn release(&mut self, guest: &str) -> Result<Vec<Attachment>>;

    /// Reads at once what calls about these guests and `(pool, volume)`s are about to
    /// read, so that a batch of them costs one round trip to a store that is far (a
    /// cluster's etcd), not one per call: later reads are served from it, and a read of
    /// a volume's holders takes it once (the next one asks again). A store on this
    /// host has nothing to gain.
    fn prefetch(&mut self, guests: &[&str], volumes: &[(&str, &[u8])]) -> Result<()> {
        let _ = (guests, volumes);
        Ok(())
    }

    /// Marks `guest` as migrating to this host (libvirt's `migrate begin` on the
    /// destination): until [`Holds::end_migration`], it may hold here the private
    /// volumes of shared pools it holds on the source. A host alone has nothing to mark.
    fn begin_migration(&mut self, guest: &str) -> Result<()> {
        let _ = guest;
        Ok(())
    }

    /// Ends a migration of `guest` to this host, succeeded or failed.
    fn end_migration(&mut self, guest: &str) -> Result<()> {
        let _ = guest;
        Ok(())
    }
}

/// Several changes committed together: attach and detach calls that wait together
/// share one durable commit.
pub trait Batches {
    /// Starts a batch: until [`Batches::commit_batch`], `attach`, `attach_overlay` and
    /// `detach` write into one transaction, so a batch of calls costs one durable
    /// commit. Dropped without a commit (an error), the connection rolls it back.
    fn begin_batch(&mut self) -> Result<()>;

    /// Commits the batch begun by [`Batches::begin_batch`] (one `fsync`).
    fn commit_batch(&mut self) -> Result<()>;

    /// Whether a batch begun by [`Batches::begin_batch`] is still open: SQLite rolls the
    /// whole transaction back itself on some errors (a full disk, an I/O error).
    fn in_batch(&self) -> bool;

    /// Rolls back a batch begun by [`Batches::begin_batch`], if one is open.
    fn rollback_batch(&mut self);
}

/// The whole registry.
pub trait Registry: Guests + Holds + Batches {}

impl<T: Guests + Holds + Batches + ?Sized> Registry for T {}
