//! Operations that create or open volumes for a client through descriptors: import a
//! file the client opened, create a save image for a guest, open a volume for hot-plug.
//! The agent never opens a path on a user's behalf outside a pool.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::volumes;
use super::{Caller, guest_for, parse_uuid, shown};
use crate::apply::filecon;
use crate::backend;
use crate::config::{DirPoolId, Settings};
use crate::decide::labels::Mode as AttachMode;
use crate::error::{Error, Result};
use crate::fsys;
use crate::lock;
use crate::model::Labeled;
use crate::reconcile::{Apply, Outcome, Reconciler};
use crate::registry::Attachment;

/// A new volume's name: one path component, not hidden, not `.`/`..`, at most 255 bytes.
pub fn check_new_name(name: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::Usage(format!("name {name:?} {why}")));
    if name.is_empty() || name.len() > 255 {
        return bad("must be 1 to 255 bytes");
    }
    if name.contains('/') || name.contains('\0') {
        return bad("must be a file name, without '/'");
    }
    if name.starts_with('.') {
        return bad("must not start with '.'");
    }
    if name.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    Ok(())
}

/// The index of dir pool `pool`.
pub(super) fn dir_pool(settings: &Settings, pool: &str) -> Result<DirPoolId> {
    let idx = settings
        .pools
        .iter()
        .position(|p| p.name == pool)
        .ok_or_else(|| Error::NoSuchPool(pool.to_owned()))?;
    settings.dir_pool_id(idx).ok_or_else(|| {
        Error::refused(format!(
            "pool {pool:?} is an LVM pool: create LVs with lvcreate"
        ))
    })
}

/// An unnamed file in the pool's root directory (`O_TMPFILE`): nothing is visible in
/// the pool until it is complete and linked.
pub(super) fn unnamed_file(root: impl AsFd, mode: u32) -> Result<OwnedFd> {
    rustix::fs::openat(
        root,
        ".",
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )
    .map_err(|e| Error::failed(format!("cannot create a file in the pool: {e}")))
}

/// Gives the unnamed file `fd` its name, refusing an existing one, and makes the new
/// directory entry durable.
pub(super) fn link_into_place(
    fd: &OwnedFd,
    root: &OwnedFd,
    name: &str,
    shown_path: &str,
) -> Result<()> {
    rustix::fs::linkat(
        rustix::fs::CWD,
        fsys::proc_fd_path(fd.as_fd()),
        root,
        name,
        AtFlags::SYMLINK_FOLLOW,
    )
    .map_err(|e| match e {
        rustix::io::Errno::EXIST => Error::Exists(shown_path.to_owned()),
        e => Error::failed(format!("cannot link {shown_path}: {e}")),
    })?;
    rustix::fs::fsync(root).map_err(|e| Error::failed(format!("fsync of the pool directory: {e}")))
}

/// The least a passed pipe must bring in every `api.idle_timeout`: a client that sends
/// one byte at a time, never quite idle, holds no worker thread for ever either.
const PIPE_MIN_BYTES: usize = 64 << 10;

/// Copies a pipe to its end, giving up when it brings less than [`PIPE_MIN_BYTES`] in
/// any window of `window` (nothing at all included).
fn copy_from_pipe(src: OwnedFd, to: &OwnedFd, window: std::time::Duration) -> std::io::Result<()> {
    use std::io::Write;
    use std::time::Instant;
    let flags = rustix::fs::fcntl_getfl(&src)?;
    rustix::fs::fcntl_setfl(&src, flags | OFlags::NONBLOCK)?;
    let mut out = File::from(to.try_clone()?);
    let mut buf = vec![0u8; 1 << 16];
    let (mut since, mut brought) = (Instant::now(), 0usize);
    loop {
        let left = window.saturating_sub(since.elapsed());
        if left.is_zero() {
            if brought < PIPE_MIN_BYTES {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the passed pipe brought {brought} bytes in {} s, less than the {} KiB \
                         it must bring in every api.idle_timeout_secs",
                        window.as_secs(),
                        PIPE_MIN_BYTES >> 10
                    ),
                ));
            }
            (since, brought) = (Instant::now(), 0);
            continue;
        }
        match rustix::io::read(&src, &mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                out.write_all(&buf[..n])?;
                brought += n;
            }
            Err(rustix::io::Errno::AGAIN) => {
                let mut fds = [rustix::event::PollFd::new(
                    &src,
                    rustix::event::PollFlags::IN,
                )];
                let timeout =
                    rustix::event::Timespec::try_from(left).unwrap_or(rustix::event::Timespec {
                        tv_sec: 1,
                        tv_nsec: 0,
                    });
                rustix::event::poll(&mut fds, Some(&timeout))?;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Copies everything readable from `src` into the pool as `name`, with the pool's
/// resting label. A reflink when the filesystem can, else a copy; fsynced, then
/// renamed into place atomically (linked from an unnamed file).
/// The new file is owned by `caller`.
pub fn import(
    settings: &Settings,
    caller: Caller,
    pool: &str,
    name: &str,
    src: OwnedFd,
) -> Result<Labeled> {
    check_new_name(name)?;
    let id = dir_pool(settings, pool)?;
    let idx = id.index();
    let st = rustix::fs::fstat(&src)
        .map_err(|e| Error::failed(format!("fstat of the passed fd: {e}")))?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile | FileType::Fifo => {}
        _ => {
            return Err(Error::Usage(
                "the passed fd is not a regular file or a pipe".into(),
            ));
        }
    }
    let dir = settings.dir_pool(id);
    let path = dir.path.join(name);
    let shown_path = shown(&path);
    let root = fsys::open_pool_root(&dir.path).map_err(Error::failed)?;
    if fsys::exists_beneath(root.as_fd(), Path::new(name)) {
        return Err(Error::Exists(shown_path));
    }
    let is_pipe = FileType::from_raw_mode(st.st_mode) == FileType::Fifo;
    let expected = if is_pipe {
        0
    } else {
        u64::try_from(st.st_size).unwrap_or(0)
    };
    super::quota::check_room(settings, caller, root.as_fd(), expected)?;
    // The copy (minutes for a large ISO) goes into an unnamed file, without the lock:
    // nothing in the pool or the state changes until it is linked. The file is the
    // caller's before a byte is written, and the bytes are written by a thread with the
    // caller's rights: its quota is charged, and root's reserved blocks are not used.
    let tmp = unnamed_file(&root, 0o644)?;
    give_to(&tmp, caller, &shown_path)?;
    let idle = settings.api.idle_timeout;
    let cloned = super::access::as_caller(caller, || -> Result<bool> {
        let cloned = !is_pipe && rustix::fs::ioctl_ficlone(&tmp, &src).is_ok();
        if is_pipe {
            copy_from_pipe(src, &tmp, idle)
                .map_err(|e| Error::failed(format!("copying into {shown_path}: {e}")))?;
        } else if !cloned {
            let mut from = File::from(src);
            let mut to = File::from(tmp.try_clone().map_err(Error::failed)?);
            std::io::copy(&mut from, &mut to)
                .map_err(|e| Error::failed(format!("copying into {shown_path}: {e}")))?;
        }
        Ok(cloned)
    })??;
    // A pipe's length is known only now.
    if is_pipe {
        let size = rustix::fs::fstat(&tmp).map_or(0, |s| u64::try_from(s.st_size).unwrap_or(0));
        super::quota::check_room(settings, caller, root.as_fd(), size)?;
    }
    rustix::fs::fsync(&tmp).map_err(|e| Error::failed(format!("fsync of {shown_path}: {e}")))?;
    let _lock = lock::acquire(&settings.state_dir)?;
    link_into_place(&tmp, &root, name, &shown_path)?;
    let mut rec = Reconciler::new(settings, Apply::Write);
    let ex = rec.reconcile_path(idx, Path::new(name), &[]);
    tracing::info!(pool, name, reflink = cloned, "imported");
    match ex.outcome {
        Outcome::Unchanged | Outcome::Relabeled => Ok(Labeled {
            volume: shown_path,
            label: ex.desired.map(|c| c.to_string()),
            note: None,
        }),
        other => Err(Error::failed(format!(
            "imported {shown_path}, but labeling it: {other:?}"
        ))),
    }
}

/// Creates an empty save image `name` in dir pool `pool`, owned by `caller`, labeled
/// for `guest` (which `caller` must own) and recorded as its `rw` volume before it
/// becomes visible; returns it open read-write. A failure after it got its name removes
/// it again: nothing is left behind labeled for the guest.
pub fn create_save_image(
    settings: &Settings,
    caller: Caller,
    guest: &str,
    pool: &str,
    name: &str,
) -> Result<(Labeled, OwnedFd)> {
    let uuid = parse_uuid(guest)?;
    check_new_name(name)?;
    let id = dir_pool(settings, pool)?;
    let dir = settings.dir_pool(id);
    let shown_path = shown(&dir.path.join(name));
    let _lock = lock::acquire(&settings.state_dir)?;
    let mut store = backend::open(settings)?;
    let g = guest_for(&*store, &uuid, caller)?;
    let label = settings.selinux.contexts.image_label(g.pair);
    let root = fsys::open_pool_root(&dir.path).map_err(Error::failed)?;
    let file = unnamed_file(&root, 0o600)?;
    give_to(&file, caller, &shown_path)?;
    filecon::write(file.as_fd(), &label)
        .map_err(|e| Error::failed(format!("labeling {shown_path}: {e}")))?;
    link_into_place(&file, &root, name, &shown_path)?;
    let id = super::file_of(&file)?;
    // After a crash here the file rests on the next scan: it fails closed.
    let recorded = store.attach(&Attachment {
        guest: uuid.clone(),
        pool: pool.to_owned(),
        volume: name.as_bytes().to_vec(),
        mode: AttachMode::Rw,
        file: Some(id),
        via: None,
        host: None,
        label: None,
    });
    if let Err(e) = recorded {
        // Only while the name still holds our file: never remove someone else's.
        let ours = rustix::fs::statat(&root, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| st.st_ino == id.ino);
        if ours {
            let _ = rustix::fs::unlinkat(&root, name, AtFlags::empty());
        }
        return Err(e);
    }
    tracing::info!(guest = %uuid, path = %shown_path.escape_debug(), uid = caller.uid, "save image created");
    let result = Labeled {
        volume: shown_path,
        label: Some(label.to_string()),
        note: None,
    };
    Ok((result, file))
}

/// Makes `caller` the owner of a file the agent created for it.
pub(super) fn give_to(file: &OwnedFd, caller: Caller, shown_path: &str) -> Result<()> {
    if caller.is_root() {
        return Ok(());
    }
    rustix::fs::fchown(
        file,
        Some(rustix::fs::Uid::from_raw(caller.uid)),
        Some(rustix::fs::Gid::from_raw(caller.gid)),
    )
    .map_err(|e| Error::failed(format!("giving {shown_path} to uid {}: {e}", caller.uid)))
}

/// Attaches a volume to a guest (labeling it), then hands it to the client open:
/// read-only for `ro`, read-write otherwise. The descriptor is the one opened with the
/// caller's own rights (never root's on a member's behalf) and is the very file the
/// attachment holds; an LV's node must be the block device udev names.
pub fn open(
    batcher: &volumes::Batcher,
    settings: &Settings,
    caller: Caller,
    guest: &str,
    volume: super::locate::Named,
    mode: AttachMode,
) -> Result<(Labeled, OwnedFd)> {
    let (result, fd) =
        volumes::attach_and_open(batcher, settings, caller, guest, volume, mode, true)?;
    let fd = fd.expect("attach_and_open opens when asked");
    // Hand-out descriptors block like the caller's own would.
    let flags = rustix::fs::fcntl_getfl(&fd).map_err(Error::failed)?;
    rustix::fs::fcntl_setfl(&fd, flags - OFlags::NONBLOCK).map_err(Error::failed)?;
    Ok((result, fd))
}
