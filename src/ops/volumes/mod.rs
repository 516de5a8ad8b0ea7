//! `svirt-pool attach|detach|release`: change who holds a volume, then label it
//! before returning, all under the state lock. Attach and detach calls that wait for
//! the lock together run as one batch with one commit (`batch`, `jobs`).

mod batch;
mod jobs;

use std::path::Path;

use std::os::fd::OwnedFd;
use std::sync::Arc;

use rustix::fs::{FileType, OFlags};

use super::locate::{self, At, Named, Volume};
use super::{Caller, access, guest_for, parse_uuid};
use crate::backend;
use crate::config::{LvmPoolId, Settings};
use crate::decide::context::Context;
use crate::decide::labels::Mode;
use crate::error::{Error, Refusal, Result};
use crate::lock;
use crate::model::Labeled;
use crate::observe::devices;
pub use batch::Batcher;
use jobs::{AttachJob, DetachJob, Done, Job};

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
    match &vol.at {
        At::File { pool, rel } => {
            let dir = settings.dir_pool(*pool);
            access::open_as(caller, &dir.path, rel, dir.cross_filesystems, flags)
        }
        At::Lv { pool } => {
            let node = lv_node(settings, *pool, vol)?;
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
fn lv_node(settings: &Settings, pool: LvmPoolId, vol: &Volume) -> Result<devices::LvNode> {
    let vg = &settings.lvm_pool(pool).vg;
    let uuid = String::from_utf8_lossy(&vol.key);
    devices::enumerate(&|v| v == vg)
        .map_err(|e| Error::failed(format!("udev: {e}")))?
        .into_iter()
        .find(|n| n.lv_uuid == uuid)
        .ok_or_else(|| {
            Refusal::Inactive {
                volume: vol.shown.clone(),
            }
            .into()
        })
}

/// Gives a guest a volume and labels it; on a labeling failure the state is put back.
/// A call alone (the CLI, the libvirt hook): its own batch.
pub fn attach(
    settings: &Settings,
    caller: Caller,
    guest: &str,
    volume: &Path,
    mode: Mode,
) -> Result<Labeled> {
    attach_in(&Batcher::default(), settings, caller, guest, volume, mode)
}

/// [`attach`] in the batches of `batcher` (the agent's, shared with its other calls).
pub fn attach_in(
    batcher: &Batcher,
    settings: &Settings,
    caller: Caller,
    guest: &str,
    volume: &Path,
    mode: Mode,
) -> Result<Labeled> {
    let named = locate::name(settings, volume)?;
    attach_and_open(batcher, settings, caller, guest, named, mode, false).map(|(result, _)| result)
}

/// Attaches several volumes to `guest` in one batch (one commit), as [`attach_in`]
/// each: a domain's disks, for libvirt's hook. The answers come in order; a volume
/// refused does not stop the others (the caller undoes them if it must).
pub fn attach_all(
    batcher: &Batcher,
    settings: &Settings,
    caller: Caller,
    guest: &str,
    volumes: &[(&Path, Mode, Option<Context>)],
) -> Vec<Result<Labeled>> {
    let prepared: Vec<Result<Job>> = volumes
        .iter()
        .map(|(volume, mode, label)| {
            let named = locate::name(settings, volume)?;
            attach_job(
                settings,
                caller,
                guest,
                named,
                (*mode, label.clone()),
                false,
            )
        })
        .collect();
    let (jobs, mut answers): (Vec<Job>, Vec<Option<Result<Labeled>>>) = {
        let mut jobs = Vec::new();
        let answers = prepared
            .into_iter()
            .map(|p| match p {
                Ok(job) => {
                    jobs.push(job);
                    None
                }
                Err(e) => Some(Err(e)),
            })
            .collect();
        (jobs, answers)
    };
    let mut done = batcher.run_all(settings, jobs).into_iter();
    for answer in answers.iter_mut().filter(|a| a.is_none()) {
        *answer = Some(match done.next() {
            Some(Done::Attached(result)) => result.map(|(labeled, _)| labeled),
            Some(Done::Panicked(e)) => Err(e),
            Some(Done::Detached(_)) | None => unreachable!("an attach job ends attached"),
        });
    }
    answers
        .into_iter()
        .map(|a| a.expect("every answer filled"))
        .collect()
}

/// Attaches, and with `want_fd` returns the volume opened as `caller` (with `mode`'s
/// access). A caller other than root must be able to open the volume itself that way,
/// and the attachment then holds exactly the file the caller opened.
pub(super) fn attach_and_open(
    batcher: &Batcher,
    settings: &Settings,
    caller: Caller,
    guest: &str,
    volume: Named,
    mode: Mode,
    want_fd: bool,
) -> Result<(Labeled, Option<OwnedFd>)> {
    let job = attach_job(settings, caller, guest, volume, (mode, None), want_fd)?;
    match batcher.run(settings, job) {
        Done::Attached(result) => result,
        Done::Panicked(e) => Err(e),
        Done::Detached(_) => unreachable!("an attach job ends attached"),
    }
}

/// Takes a volume back from a guest and restores the label it must now carry (a call
/// alone: its own batch).
pub fn detach(settings: &Settings, caller: Caller, guest: &str, volume: &Path) -> Result<Labeled> {
    detach_in(&Batcher::default(), settings, caller, guest, volume)
}

/// [`detach`] in the batches of `batcher`.
pub fn detach_in(
    batcher: &Batcher,
    settings: &Settings,
    caller: Caller,
    guest: &str,
    volume: &Path,
) -> Result<Labeled> {
    let call = prepare_detach(settings, caller, guest, locate::name(settings, volume)?)?;
    batcher.run(settings, call.0).labeled()
}

/// An attach or a detach checked as far as it can be before its batch: the guest's
/// UUID, the volume's pool and key, and for an attach, the caller's own right to open
/// the volume. Run it with [`Call::run`].
pub struct Call(Job);

/// Prepares [`attach`]; may block (see [`prepares_at_once`]).
pub fn prepare_attach(
    settings: &Settings,
    caller: Caller,
    guest: &str,
    volume: Named,
    mode: Mode,
) -> Result<Call> {
    attach_job(settings, caller, guest, volume, (mode, None), false).map(Call)
}

/// An attach's job, in a mode and with the disk's own label when its domain XML gives
/// one; with `want_fd`, it opens the volume as `caller` for the caller.
fn attach_job(
    settings: &Settings,
    caller: Caller,
    guest: &str,
    volume: Named,
    (mode, label): (Mode, Option<Context>),
    want_fd: bool,
) -> Result<Job> {
    let uuid = parse_uuid(guest)?;
    let vol = locate::resolve(settings, volume)?;
    // The caller's own rights, before anything changes (root's are checked too when a
    // descriptor is wanted: it is the one handed out).
    let own = (want_fd || !caller.is_root())
        .then(|| open_as_caller(settings, caller, &vol, mode))
        .transpose()?;
    Ok(Job::Attach(AttachJob {
        caller,
        uuid,
        vol,
        mode,
        label,
        own,
    }))
}

/// Prepares [`detach`]; may block (see [`prepares_at_once`]).
pub fn prepare_detach(
    settings: &Settings,
    caller: Caller,
    guest: &str,
    volume: Named,
) -> Result<Call> {
    let uuid = parse_uuid(guest)?;
    let vol = locate::resolve(settings, volume)?;
    Ok(Call(Job::Detach(DetachJob { caller, uuid, vol })))
}

/// Whether preparing an attach or a detach of `volume` by
/// `caller` is computation only, fit for an async task: root naming a path. An LV is
/// looked up with lvm2, and another caller's rights are checked by opening the volume
/// as that caller (on a thread of its own): both block.
pub fn prepares_at_once(caller: Caller, volume: &Named) -> bool {
    caller.is_root() && !volume.is_lv()
}

impl Call {
    /// Runs the call in the next batch of `batcher` without blocking (the batch runs
    /// on its batch thread) and returns the volume's label.
    pub async fn run(self, batcher: &Arc<Batcher>, settings: &Arc<Settings>) -> Result<Labeled> {
        batcher.submit(settings, self.0).await.labeled()
    }
}

/// Takes every volume back from a guest; returns how many it held.
pub fn release(settings: &Settings, caller: Caller, guest: &str) -> Result<usize> {
    let uuid = parse_uuid(guest)?;
    let _lock = lock::acquire(&settings.state_dir)?;
    let mut store = backend::open(settings)?;
    guest_for(&*store, &uuid, caller)?;
    let released = store.release(&uuid)?;
    let attached = released.iter().filter(|a| a.via.is_none()).count();
    tracing::info!(guest = %uuid, released = attached, "released");
    super::restore::restore_released(settings, &*store, &released)?;
    Ok(attached)
}
