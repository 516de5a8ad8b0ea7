//! Opening a volume with the caller's own rights, so that nothing the agent does for a
//! caller exceeds what the caller could do itself: the kernel checks owner, group and
//! other bits, POSIX ACLs and the caller's supplementary groups, exactly as for the
//! caller's own `open`.
//!
//! The open runs on a short-lived thread whose credentials (uid, gid, groups) are
//! switched with raw per-thread system calls (glibc's wrappers would switch every
//! thread of the agent). A non-root uid leaves that thread without capabilities, so
//! root's DAC override does not apply. The thread ends after the one open.

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::Caller;
use crate::error::{Error, Result};

/// Opens `rel` beneath the pool root at `pool_root` as `caller`, with `flags` (plus
/// `O_NOFOLLOW | O_CLOEXEC | O_NOCTTY`), never through a symlink or out of the pool.
/// The caller needs search permission on the root's ancestors, as for its own open.
pub fn open_as(
    caller: Caller,
    pool_root: &Path,
    rel: &Path,
    cross_fs: bool,
    flags: OFlags,
) -> Result<OwnedFd> {
    let mut resolve =
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    if !cross_fs {
        resolve |= ResolveFlags::NO_XDEV;
    }
    let open = || -> std::result::Result<OwnedFd, Errno> {
        let root = root_path(pool_root)?;
        rustix::fs::openat2(
            &root,
            rel,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
            resolve,
        )
    };
    as_caller(caller, open)?.map_err(|e| {
        let shown = pool_root.join(rel);
        match e {
            Errno::ACCESS | Errno::PERM => Error::Forbidden(format!(
                "uid {} may not open {} {}: the agent does nothing for a caller that the caller could not do itself",
                caller.uid,
                shown.display(),
                access_word(flags),
            )),
            e => Error::refused(format!("cannot open {}: {e}", shown.display())),
        }
    })
}

/// Removes the file `rel` beneath the pool root as `caller`: the kernel decides, as for
/// the caller's own `unlink` (write permission on the directory, the sticky bit).
/// Refused unless the name is still the file `expected` (statx identity).
pub fn unlink_as(
    caller: Caller,
    pool_root: &Path,
    rel: &Path,
    expected: crate::decide::labels::FileId,
) -> Result<()> {
    let (parent, name) = match (rel.parent(), rel.file_name()) {
        (Some(p), Some(n)) => (p.to_path_buf(), n.to_os_string()),
        _ => {
            return Err(Error::Usage(format!(
                "{} is not a file name",
                rel.display()
            )));
        }
    };
    let unlink = || -> std::result::Result<bool, Errno> {
        let root = root_path(pool_root)?;
        let dir = rustix::fs::openat2(
            &root,
            if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                &parent
            },
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH
                | ResolveFlags::NO_SYMLINKS
                | ResolveFlags::NO_MAGICLINKS
                | ResolveFlags::NO_XDEV,
        )?;
        let file = rustix::fs::openat(
            &dir,
            &name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if crate::fsys::file_id(std::os::fd::AsFd::as_fd(&file)).map_err(|_| Errno::IO)? != expected
        {
            return Ok(false);
        }
        rustix::fs::unlinkat(&dir, &name, rustix::fs::AtFlags::empty())?;
        Ok(true)
    };
    let shown = pool_root.join(rel);
    match as_caller(caller, unlink)? {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::refused(format!(
            "{} was replaced meanwhile; nothing was deleted",
            shown.display()
        ))),
        Err(Errno::ACCESS | Errno::PERM) => Err(Error::Forbidden(format!(
            "uid {} may not delete {}",
            caller.uid,
            shown.display()
        ))),
        Err(e) => Err(Error::refused(format!(
            "cannot delete {}: {e}",
            shown.display()
        ))),
    }
}

/// Opens an absolute path (an LV's device node) as `caller`, not following a final symlink.
pub fn open_path_as(caller: Caller, path: &Path, flags: OFlags) -> Result<OwnedFd> {
    let open = || {
        rustix::fs::openat(
            rustix::fs::CWD,
            path,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
    };
    as_caller(caller, open)?.map_err(|e| match e {
        Errno::ACCESS | Errno::PERM => Error::Forbidden(format!(
            "uid {} may not open {} {}",
            caller.uid,
            path.display(),
            access_word(flags)
        )),
        e => Error::refused(format!("cannot open {}: {e}", path.display())),
    })
}

fn access_word(flags: OFlags) -> &'static str {
    if flags.contains(OFlags::RDWR) {
        "for reading and writing"
    } else {
        "for reading"
    }
}

/// The pool root, opened `O_PATH` as the current thread's user: reaching it needs
/// search permission only, as a path would; never through a symlink.
fn root_path(pool_root: &Path) -> std::result::Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        rustix::fs::CWD,
        pool_root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Runs `f` with `caller`'s uid, gid and groups: here for root, else on a thread of its own
/// (also for checks made as another user, such as the emulator's: the kernel answers
/// `access(2)` for them, ACLs included).
pub fn as_caller<T: Send>(caller: Caller, f: impl FnOnce() -> T + Send) -> Result<T> {
    if caller.is_root() {
        return Ok(f());
    }
    let groups: Vec<rustix::fs::Gid> = crate::users::groups_of(caller.uid)
        .unwrap_or_else(|| vec![caller.gid])
        .into_iter()
        .map(rustix::fs::Gid::from_raw)
        .collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};
            let gid = rustix::fs::Gid::from_raw(caller.gid);
            let uid = rustix::fs::Uid::from_raw(caller.uid);
            // Groups and gid first: once the uid is not root, they cannot change.
            set_thread_groups(&groups)
                .and_then(|()| set_thread_res_gid(gid, gid, gid))
                .and_then(|()| set_thread_res_uid(uid, uid, uid))
                .map_err(|e| Error::failed(format!("switching to uid {}: {e}", caller.uid)))?;
            Ok(f())
        })
        .join()
        .map_err(|_| Error::failed("the thread opening as the caller panicked"))?
    })
}
