//! Writing a pool file's label only while every link of the file is inside the pool.
//!
//! A file opened through a pool name can have other links, and whoever may write the
//! directory can remove or replace the pool name after the open: the opened inode is
//! then left with one link, outside the pool (`/etc/shadow`), and `fstat` says
//! `nlink == 1`. No single read of the link count can tell "one link, in the pool" from
//! "one link, elsewhere", so the write happens only when the one link is a name nobody
//! but root can change (docs/labels.md, "Writing a label safely"):
//!
//! - **Sealed directory** (owned by root, no group or other write bit, no ACL entry that
//!   grants write): nobody but root can change the name we opened the file through, so
//!   if the file has one link it is that name, and it is labeled through the
//!   descriptor.
//! - **Any other directory**: the name is moved (`renameat2(RENAME_NOREPLACE)`) into the
//!   pool's staging directory ([`STAGING_DIR`], root's, mode 0700, on the pool root's
//!   filesystem), where nobody else can change it. If the moved name is our inode and
//!   the inode has one link, that link is ours; the label is written, and the name moved
//!   back. If someone took the name meanwhile, the file comes back as
//!   `NAME.svirt-pool-INODE-RANDOM` (nothing is ever deleted).
//!
//! A link added after the check needs a name or descriptor of the file itself: it makes
//! a second name for a pool file, never a pool name for an outside file.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use crate::apply::filecon::{self, LabelError};
use crate::decide::context::Context;

/// The agent's private directory in the root of each dir pool (root's, mode 0700).
/// Walks and watches skip it.
pub const STAGING_DIR: &str = ".svirt-pool";

/// Why a label was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The file has more than one link (one may be outside the pool).
    HardLinks,
    /// The name no longer holds the file that was examined (replaced or removed).
    Changed,
    /// The staging directory cannot be used; the message says why.
    Staging(String),
    /// Writing the label failed.
    Label(LabelError),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::HardLinks => f.write_str("it has more than one hard link"),
            WriteError::Changed => f.write_str("it was replaced or removed while being labeled"),
            WriteError::Staging(why) => write!(f, "cannot label it safely: {why}"),
            WriteError::Label(e) => e.fmt(f),
        }
    }
}

/// Where a regular file of a dir pool was found.
#[derive(Clone, Copy)]
pub struct Place<'a> {
    /// The pool's root directory (where the staging directory lives).
    pub root: BorrowedFd<'a>,
    /// The directory holding the name.
    pub dir: BorrowedFd<'a>,
    /// The file's name in `dir`.
    pub name: &'a OsStr,
    /// The file's path below the pool root (written down while the file is staged, so
    /// that a crash in between never loses its name).
    pub rel: &'a Path,
    /// Whether `dir` is sealed ([`sealed`]), when the caller decided it once for the
    /// whole directory (a walk); `None`: decided here, and only if a label is written.
    pub dir_sealed: Option<bool>,
}

/// Writes `label` on the regular file `fd`, found as `place`, by the protocol above.
///
/// The caller has seen, on the descriptor, a regular file with one link (the plan
/// refuses anything else): in a sealed directory that is all it takes, and no further
/// system call is spent on the hot path of a scan.
pub fn write(place: Place<'_>, fd: BorrowedFd<'_>, label: &Context) -> Result<(), WriteError> {
    if place.dir_sealed.unwrap_or_else(|| sealed(place.dir)) {
        // Opened through this name, which only root can change: its one link is it.
        return filecon::write(fd, label).map_err(WriteError::Label);
    }
    let st = rustix::fs::fstat(fd).map_err(io_failure)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(WriteError::Changed);
    }
    if st.st_nlink != 1 {
        return Err(WriteError::HardLinks);
    }
    let id = (st.st_dev, st.st_ino);
    let staging = open_staging(place.root, st.st_dev)?;
    let tmp = staging_name(st.st_ino);
    // Where it came from, written before it moves: if the agent dies while the file is
    // staged, `recover` puts it back. (No fsync: this guards against a crash of the
    // process, whose writes the page cache keeps; after a power loss an orphan is
    // reported, never deleted.)
    let origin = origin_name(&tmp);
    rustix::fs::openat(
        &staging,
        &origin,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .and_then(|f| rustix::io::write(&f, place.rel.as_os_str().as_bytes()).map(drop))
    .map_err(|e| WriteError::Staging(format!("writing its origin down: {e}")))?;
    rustix::fs::renameat_with(
        place.dir,
        place.name,
        &staging,
        &tmp,
        RenameFlags::NOREPLACE,
    )
    .inspect_err(|_| {
        let _ = rustix::fs::unlinkat(&staging, &origin, AtFlags::empty());
    })
    .map_err(|e| match e {
        Errno::NOENT => WriteError::Changed,
        Errno::XDEV => {
            WriteError::Staging("its directory is on another filesystem than the pool root".into())
        }
        e => WriteError::Staging(format!("moving it aside: {e}")),
    })?;
    // Only root can change names in the staging directory: if ours is the file's one
    // link, no other link exists while we write.
    let outcome = match identity_at(staging.as_fd(), &tmp) {
        Some(now) if now != id => Err(WriteError::Changed),
        None => Err(WriteError::Changed),
        Some(_) => match rustix::fs::fstat(fd) {
            Ok(st) if st.st_nlink == 1 => filecon::write(fd, label).map_err(WriteError::Label),
            Ok(_) => Err(WriteError::HardLinks),
            Err(e) => Err(io_failure(e)),
        },
    };
    if put_back(&staging, &tmp, place.dir, place.name, st.st_ino) {
        let _ = rustix::fs::unlinkat(&staging, &origin, AtFlags::empty());
    }
    outcome
}

/// The name of the file that records where staged file `tmp` came from.
fn origin_name(tmp: &OsStr) -> OsString {
    let mut name = tmp.to_os_string();
    name.push(".origin");
    name
}

/// Puts back every file a crash left in the pool's staging directory, by the origin
/// written down before it moved (beside its name if the name was taken meanwhile).
/// Files without an origin are reported and left there. Called before a full scan.
pub fn recover(root: BorrowedFd<'_>, cross_fs: bool) {
    let Ok(staging) = rustix::fs::openat(
        root,
        STAGING_DIR,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return; // none: nothing was ever staged
    };
    let Ok(st) = rustix::fs::fstat(&staging) else {
        return;
    };
    if st.st_uid != 0 || st.st_mode & 0o077 != 0 {
        return; // not ours: the write protocol refuses it too, and says so
    }
    let Ok(mut entries) = rustix::fs::Dir::read_from(&staging) else {
        return;
    };
    let mut staged = Vec::new();
    while let Some(Ok(entry)) = entries.read() {
        let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string();
        if name != "." && name != ".." && !name.as_bytes().ends_with(b".origin") {
            staged.push(name);
        }
    }
    for tmp in staged {
        let origin = origin_name(&tmp);
        let mut buf = vec![0u8; 4096];
        let rel = rustix::fs::openat(
            &staging,
            &origin,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .and_then(|f| rustix::io::read(&f, &mut buf))
        .map(|n| PathBuf::from(OsString::from_vec(buf[..n].to_vec())));
        let Ok(rel) = rel else {
            tracing::error!(staged = %crate::logname(&tmp),
                "a file in the pool's .svirt-pool directory has no origin: left there");
            continue;
        };
        let (Some(name), parent) = (rel.file_name(), rel.parent().unwrap_or(Path::new(""))) else {
            continue;
        };
        let Ok(dir) = crate::fsys::open_dir_beneath(root, parent, cross_fs) else {
            tracing::error!(staged = %crate::logname(&tmp), origin = %crate::logpath(&rel),
                "cannot reach the directory a staged file came from: left there");
            continue;
        };
        let ino =
            rustix::fs::statat(&staging, &tmp, AtFlags::SYMLINK_NOFOLLOW).map_or(0, |s| s.st_ino);
        if put_back(&staging, &tmp, dir.as_fd(), name, ino) {
            let _ = rustix::fs::unlinkat(&staging, &origin, AtFlags::empty());
            tracing::warn!(path = %crate::logpath(&rel),
                "put back a file a crash left in the pool's staging directory");
        }
    }
}

/// Whether nobody but root can add, remove or rename entries of `dir`.
pub fn sealed(dir: BorrowedFd<'_>) -> bool {
    let Ok(st) = rustix::fs::fstat(dir) else {
        return false;
    };
    st.st_uid == 0 && st.st_mode & 0o022 == 0 && !acl_grants_write(dir)
}

/// Whether `dir` has a POSIX ACL whose mask lets named users or groups write.
fn acl_grants_write(dir: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 1024];
    match rustix::fs::fgetxattr(dir, "system.posix_acl_access", &mut buf) {
        Ok(n) => acl_allows_write(&buf[..n]),
        Err(Errno::NODATA | Errno::NOTSUP) => false,
        // Unknown (too large, unreadable): assume the worst.
        Err(_) => true,
    }
}

/// The decision on a `system.posix_acl_access` value: a u32 version, then entries of
/// u16 tag, u16 permissions, u32 id (little endian). Extended entries (named users and
/// groups, the owning group) are limited by the mask entry; no mask, no extended entry.
fn acl_allows_write(acl: &[u8]) -> bool {
    const ACL_MASK: u16 = 0x10;
    const WRITE: u16 = 0x02;
    let Some(entries) = acl.get(4..) else {
        return true;
    };
    entries
        .chunks_exact(8)
        .find(|e| u16::from_le_bytes([e[0], e[1]]) == ACL_MASK)
        .is_some_and(|e| u16::from_le_bytes([e[2], e[3]]) & WRITE != 0)
}

/// (device, inode) of the entry `name` of `dir`, not following a symlink.
fn identity_at(dir: BorrowedFd<'_>, name: &OsStr) -> Option<(u64, u64)> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .ok()
        .map(|st| (st.st_dev, st.st_ino))
}

/// The pool's staging directory, created on first use; refused unless it is root's,
/// mode 0700, a real directory, on the filesystem the file is on.
fn open_staging(root: BorrowedFd<'_>, dev: u64) -> Result<OwnedFd, WriteError> {
    let bad = |why: String| WriteError::Staging(format!("{STAGING_DIR} in the pool root {why}"));
    match rustix::fs::mkdirat(root, STAGING_DIR, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        // No label could be written there either: say so, as for any other file.
        Err(Errno::ROFS) => return Err(WriteError::Label(LabelError::ReadOnly)),
        Err(e) => return Err(bad(format!("cannot be created: {e}"))),
    }
    let fd = rustix::fs::openat(
        root,
        STAGING_DIR,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| bad(format!("cannot be opened ({e}): remove it")))?;
    let st = rustix::fs::fstat(&fd).map_err(io_failure)?;
    if st.st_uid != 0 || st.st_mode & 0o077 != 0 {
        return Err(bad("is not root's directory of mode 0700: remove it".into()));
    }
    if st.st_dev != dev {
        return Err(bad("is on another filesystem than the file".into()));
    }
    Ok(fd)
}

/// A name in the staging directory no other call uses.
fn staging_name(ino: u64) -> OsString {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    OsString::from(format!("{ino:x}-{}-{n}", std::process::id()))
}

/// Moves the staged file back to its name, or beside it (`NAME.svirt-pool-INODE-RANDOM`)
/// when someone took the name meanwhile. Nothing is overwritten or deleted. The suffix
/// is random so that a writer of the directory cannot take every name beside it in
/// advance and keep another user's file hidden in the staging directory. Returns
/// whether it left the staging directory.
fn put_back(staging: &OwnedFd, tmp: &OsStr, dir: BorrowedFd<'_>, name: &OsStr, ino: u64) -> bool {
    let back =
        |to: &OsStr| rustix::fs::renameat_with(staging, tmp, dir, to, RenameFlags::NOREPLACE);
    let mut result = back(name);
    let mut moved_to = name.to_os_string();
    for _ in 0..16 {
        if result != Err(Errno::EXIST) {
            break;
        }
        let random: u64 = rand::random();
        let mut beside = name.as_bytes().to_vec();
        beside.extend_from_slice(format!(".svirt-pool-{ino}-{random:016x}").as_bytes());
        moved_to = OsString::from_vec(beside);
        result = back(&moved_to);
    }
    match result {
        Ok(()) if moved_to == name => true,
        Ok(()) => {
            tracing::warn!(
            name = %crate::logname(name),
            moved_to = %crate::logname(&moved_to),
            "a file took this name while it was being labeled: the labeled file was put beside it"
            );
            true
        }
        Err(e) => {
            tracing::error!(
            name = %crate::logname(name),
            staged = %crate::logname(tmp),
            error = %e,
            "cannot put a labeled file back: it is in the pool's .svirt-pool directory"
            );
            false
        }
    }
}

fn io_failure(e: Errno) -> WriteError {
    WriteError::Label(LabelError::Io(std::io::Error::from(e).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ACL value: USER_OBJ rwx, USER(1000) rwx, GROUP_OBJ r-x, MASK `mask`, OTHER r-x.
    fn acl(mask: u16) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 7u16, u32::MAX),
            (2, 7, 1000),
            (4, 5, u32::MAX),
            (0x10, mask, u32::MAX),
            (0x20, 5, u32::MAX),
        ] {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    #[test]
    fn the_acl_mask_decides_whether_named_entries_may_write() {
        assert!(!acl_allows_write(&acl(5)), "mask r-x");
        assert!(acl_allows_write(&acl(7)), "mask rwx");
        assert!(acl_allows_write(&acl(2)), "mask -w-");
        assert!(acl_allows_write(&[2, 0]), "truncated: assume the worst");
        // Only the three base entries (no mask): the mode bits say it all.
        assert!(!acl_allows_write(&acl(7)[..4 + 8]));
    }
}
