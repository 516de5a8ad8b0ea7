//! `svirt-pool attach|detach|release`: change who holds a volume, then label it
//! before returning, all under the state lock.

use std::path::Path;

use std::os::fd::OwnedFd;

use rustix::fs::{FileType, OFlags};

use super::chains::{chain_of, check_chain_readable, label_chain};
use super::locate::{Volume, locate};
use super::{Caller, access, guest_for, parse_uuid};
use crate::apply::filecon;
use crate::config::Settings;
use crate::decide::labels::{FileId, Mode};
use crate::error::{Error, Result};
use crate::fsys::{self, NodeKind, OpenError};
use crate::lock;
use crate::model::Labeled;
use crate::observe::devices;
use crate::reconcile::{Apply, NotLabeled, Outcome, Reconciler, SkipReason};
use crate::state::{Attachment, Store};

/// Refuses a file that must not be handed to a guest: anything but a regular file
/// with one link, reached without a symlink or mount point, on a filesystem that stores
/// labels. Returns which file it is, so the attachment holds that file and no later one
/// of the same name. (An LV needs no such check: its node is verified when labeled.)
fn check_attachable(rec: &mut Reconciler<'_>, vol: &Volume) -> Result<Option<FileId>> {
    let Some(rel) = &vol.rel else {
        return Ok(None);
    };
    let pool = &rec.settings().pools[vol.pool];
    let cross_fs = pool.dir().is_some_and(|d| d.cross_filesystems);
    let root = rec
        .root(vol.pool)
        .map_err(|e| Error::failed(format!("pool {}: {e}", pool.name)))?;
    let refuse = |why: String| Error::refused(format!("cannot attach {}: {why}", vol.shown));
    let node = fsys::open_beneath(root, rel, cross_fs)
        .map(|opened| opened.node)
        .map_err(|e| match e {
            OpenError::Symlink => refuse("it is or goes through a symlink".into()),
            e => refuse(e.to_string()),
        })?;
    match node.kind {
        NodeKind::Regular { links: 1 } => {}
        NodeKind::Regular { links } => {
            return Err(refuse(format!(
                "it has {links} hard links (one may be a file outside the pool)"
            )));
        }
        NodeKind::Symlink => return Err(refuse("it is a symlink".into())),
        _ => return Err(refuse("it is not a regular file".into())),
    }
    use std::os::fd::AsFd;
    filecon::read(node.fd.as_fd()).map_err(|e| refuse(e.to_string()))?;
    Ok(Some(node.file))
}

/// The access a guest gets to a volume attached in `mode`.
pub fn access_flags(mode: Mode) -> OFlags {
    match mode {
        Mode::Ro => OFlags::RDONLY,
        Mode::Rw | Mode::Shared => OFlags::RDWR,
    }
}

/// Opens the volume as `caller` would (with `mode`'s access): refused unless the
/// caller's own rights allow it. For an LV, its node must be present.
fn open_as_caller(
    settings: &Settings,
    caller: Caller,
    vol: &Volume,
    mode: Mode,
) -> Result<OwnedFd> {
    let flags = access_flags(mode) | OFlags::NONBLOCK;
    match &vol.rel {
        Some(rel) => {
            let dir = settings.pools[vol.pool].dir().expect("a dir pool");
            access::open_as(caller, &dir.path, rel, dir.cross_filesystems, flags)
        }
        None => {
            let node = lv_node(settings, vol)?;
            let fd = access::open_path_as(caller, &node.devnode, flags)?;
            let st = rustix::fs::fstat(&fd).map_err(Error::failed)?;
            if FileType::from_raw_mode(st.st_mode) != FileType::BlockDevice
                || st.st_rdev != node.devnum
            {
                return Err(Error::refused(format!(
                    "{} is not the LV's block device",
                    node.devnode.display()
                )));
            }
            Ok(fd)
        }
    }
}

/// The node of an active LV named by a user.
fn lv_node(settings: &Settings, vol: &Volume) -> Result<devices::LvNode> {
    let vg = &settings.pools[vol.pool].lvm().expect("an lvm pool").vg;
    let uuid = String::from_utf8_lossy(&vol.key);
    devices::enumerate(&|v| v == vg)
        .map_err(|e| Error::failed(format!("udev: {e}")))?
        .into_iter()
        .find(|n| n.lv_uuid == uuid)
        .ok_or_else(|| Error::refused(format!("{} is inactive: activate it first", vol.shown)))
}

/// Which file a descriptor is (inode and birth time).
pub(super) fn file_of(fd: &OwnedFd) -> Result<FileId> {
    use std::os::fd::AsFd;
    fsys::file_id(fd.as_fd()).map_err(Error::failed)
}

/// Gives a guest a volume and labels it; on a labeling failure the state is put back.
pub fn attach(
    settings: &Settings,
    caller: Caller,
    guest: &str,
    volume: &Path,
    mode: Mode,
) -> Result<Labeled> {
    attach_and_open(settings, caller, guest, volume, mode, false).map(|(result, _)| result)
}

/// Attaches, and with `want_fd` returns the volume opened as `caller` (with `mode`'s
/// access). A caller other than root must be able to open the volume itself that way,
/// and the attachment then holds exactly the file the caller opened.
pub(super) fn attach_and_open(
    settings: &Settings,
    caller: Caller,
    guest: &str,
    volume: &Path,
    mode: Mode,
    want_fd: bool,
) -> Result<(Labeled, Option<OwnedFd>)> {
    let uuid = parse_uuid(guest)?;
    let vol = locate(settings, volume)?;
    let pool_name = settings.pools[vol.pool].name.clone();
    // The caller's own rights, before anything changes (root's are checked too when a
    // descriptor is wanted: it is the one handed out).
    let own = (want_fd || !caller.is_root())
        .then(|| open_as_caller(settings, caller, &vol, mode))
        .transpose()?;
    let _lock = lock::acquire(&settings.state_dir)?;
    let mut store = Store::open(&settings.state_dir)?;
    let mut rec = Reconciler::new(settings, Apply::Write);
    guest_for(&store, &uuid, caller)?;
    let file = check_attachable(&mut rec, &vol)?;
    let changed = || {
        Error::refused(format!(
            "{} was replaced while it was being attached; nothing was attached",
            vol.shown
        ))
    };
    if let (Some(fd), Some(file)) = (&own, file)
        && file_of(fd)? != file
    {
        return Err(changed());
    }
    let chain = chain_of(&mut rec, &vol)?;
    if !caller.is_root() {
        check_chain_readable(settings, caller, &vol, &chain)?;
    }
    let att = Attachment {
        guest: uuid.clone(),
        pool: pool_name.clone(),
        volume: vol.key.clone(),
        mode,
        file,
        via: None,
    };
    // State first, label second: after a crash in between, a rescan converges. The
    // backing files of an overlay are read by the guest whatever its mode: held `ro`.
    let holds: Vec<(Vec<u8>, Option<FileId>)> = chain
        .iter()
        .map(|l| (l.rel.as_os_str().as_encoded_bytes().to_vec(), Some(l.file)))
        .collect();
    let previous = store.attach_overlay(&att, &holds)?;
    let ex = rec.reconcile_volume(vol.pool, &vol.key, &store.holders(&pool_name, &vol.key)?);
    let result = match (&ex.outcome, vol.rel.is_none()) {
        // An inactive LV keeps its attachment; the node is labeled when it appears.
        (Outcome::Missing, true) => Ok(None),
        // libvirt labeled it for a running domain: recorded, labeled once libvirt lets go.
        (Outcome::Skipped(SkipReason::HeldByLibvirt), _) => Ok(None),
        // The name holds another file than the one checked: its label is not this one's.
        _ if file.is_some() && ex.file != file => {
            Err(NotLabeled::Skipped(SkipReason::Changed).to_string())
        }
        _ => match ex.labeled() {
            Ok(label) => label_chain(&mut rec, &store, vol.pool, &chain)?
                .map(|()| Some(label))
                .map_err(|e| e.to_string()),
            Err(why) => Err(why.to_string()),
        },
    };
    match result {
        Ok(label) => {
            tracing::info!(guest = %uuid, volume = %vol.shown.escape_debug(), %mode,
                uid = caller.uid, label = ?label, "attached");
            let note = match (&ex.outcome, label.is_none()) {
                (Outcome::Skipped(SkipReason::HeldByLibvirt), _) => Some(
                    "held by libvirt for a running domain: labeled when libvirt restores it"
                        .to_string(),
                ),
                (_, true) => {
                    Some("inactive: its node is labeled when the LV is activated".to_string())
                }
                (_, false) => None,
            };
            Ok((
                Labeled {
                    volume: vol.shown,
                    label,
                    note,
                },
                own,
            ))
        }
        Err(why) => {
            // Put the state back as it was, and the label with it; say if that failed too.
            let restored = match previous {
                Some(old) => store
                    .attach_overlay(&Attachment { mode: old, ..att }, &holds)
                    .map(drop),
                None => store.detach(&uuid, &pool_name, &vol.key).map(drop),
            }
            .and_then(|()| store.holders(&pool_name, &vol.key))
            .map(|holders| rec.reconcile_volume(vol.pool, &vol.key, &holders))
            .and_then(|ex| {
                let chain = label_chain(&mut rec, &store, vol.pool, &chain)?;
                Ok(ex
                    .labeled()
                    .map_err(|e| e.to_string())
                    .and(chain.map_err(|e| e.to_string())))
            });
            let rollback = match restored {
                Ok(Ok(_)) => String::new(),
                Ok(Err(e)) => format!("; restoring its label failed too: {e}"),
                Err(e) => format!("; putting the state back failed too: {e}"),
            };
            Err(Error::failed(format!(
                "cannot label {}: {why}; the attachment was not recorded{rollback}",
                vol.shown
            )))
        }
    }
}

/// Takes a volume back from a guest and restores the label it must now carry.
pub fn detach(settings: &Settings, caller: Caller, guest: &str, volume: &Path) -> Result<Labeled> {
    let uuid = parse_uuid(guest)?;
    let vol = locate(settings, volume)?;
    let pool_name = &settings.pools[vol.pool].name;
    let _lock = lock::acquire(&settings.state_dir)?;
    let mut store = Store::open(&settings.state_dir)?;
    guest_for(&store, &uuid, caller)?;
    let (mode, backing) = store.detach(&uuid, pool_name, &vol.key)?;
    if mode.is_none() {
        return Err(Error::refused(format!(
            "guest {uuid} does not hold {}",
            vol.shown
        )));
    }
    let mut rec = Reconciler::new(settings, Apply::Write);
    let ex = rec.reconcile_volume(vol.pool, &vol.key, &store.holders(pool_name, &vol.key)?);
    tracing::info!(guest = %uuid, volume = %vol.shown.escape_debug(), "detached");
    // The backing files it read go back to rest unless another overlay still uses them.
    let unrestored = restore_each(settings, &store, &backing)?;
    if !unrestored.is_empty() {
        return Err(Error::failed(format!(
            "detached {} from guest {uuid}, but backing files could not be restored: {}",
            vol.shown,
            list(&unrestored)
        )));
    }
    match (&ex.outcome, ex.labeled()) {
        (Outcome::Missing, _) => Ok(Labeled {
            volume: vol.shown,
            label: None,
            note: Some("it has no file or node now".into()),
        }),
        (_, Ok(label)) => Ok(Labeled {
            volume: vol.shown,
            label: Some(label),
            note: None,
        }),
        (_, Err(why)) => Err(Error::failed(format!(
            "detached {} from guest {uuid}, but its label could not be restored: {why}",
            vol.shown
        ))),
    }
}

/// Takes every volume back from a guest; returns how many it held.
pub fn release(settings: &Settings, caller: Caller, guest: &str) -> Result<usize> {
    let uuid = parse_uuid(guest)?;
    let _lock = lock::acquire(&settings.state_dir)?;
    let mut store = Store::open(&settings.state_dir)?;
    guest_for(&store, &uuid, caller)?;
    let released = store.release(&uuid)?;
    let attached = released.iter().filter(|a| a.via.is_none()).count();
    tracing::info!(guest = %uuid, released = attached, "released");
    restore_released(settings, &store, &released)?;
    Ok(attached)
}

/// A released volume whose label could not be restored, and why.
#[derive(Debug, thiserror::Error)]
#[error("{location} {}: {why}", .attachment.volume.escape_ascii())]
pub struct Unrestored<'a> {
    /// The attachment that was removed.
    pub attachment: &'a Attachment,
    /// Where its pool is (a directory, or `VG name`).
    pub location: String,
    /// Why its label is not the resting one.
    pub why: NotLabeled,
}

/// Relabels volumes whose attachments were just removed (the lock must be held); tries
/// every one and returns those whose label could not be restored.
pub fn restore_each<'a>(
    settings: &Settings,
    store: &Store,
    released: &'a [Attachment],
) -> Result<Vec<Unrestored<'a>>> {
    let mut rec = Reconciler::new(settings, Apply::Write);
    let mut failures = Vec::new();
    for att in released {
        let Some(idx) = settings.pools.iter().position(|p| p.name == att.pool) else {
            tracing::warn!(pool = %att.pool, "released a volume of a pool that is no longer configured");
            continue;
        };
        let ex = rec.reconcile_volume(idx, &att.volume, &store.holders(&att.pool, &att.volume)?);
        if let (false, Err(why)) = (ex.outcome == Outcome::Missing, ex.labeled()) {
            failures.push(Unrestored {
                attachment: att,
                location: settings.pools[idx].location(),
                why,
            });
        }
    }
    Ok(failures)
}

/// Relabels volumes whose attachments were just removed (the lock must be held).
///
/// Tries every volume and reports every failure, not only the first.
pub fn restore_released(settings: &Settings, store: &Store, released: &[Attachment]) -> Result<()> {
    let failures = restore_each(settings, store, released)?;
    if failures.is_empty() {
        return Ok(());
    }
    Err(Error::failed(format!(
        "released, but some labels could not be restored: {}",
        list(&failures)
    )))
}

/// Every failure on one line (an error message is one line in logs and replies).
pub fn list(failures: &[Unrestored<'_>]) -> String {
    let shown: Vec<String> = failures.iter().map(ToString::to_string).collect();
    shown.join("; ")
}
