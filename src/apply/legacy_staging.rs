//! Files that versions before the watched-link protocol left in a pool's staging
//! directory.
//!
//! Those versions labeled a file in a directory others can write by moving its name
//! into `POOL/.svirt-pool` (root's, mode 0700) for the write, and wrote its path down
//! beside it first (`TMP.origin`). A crash in between left the file there. The write
//! protocol no longer moves names ([`super::sole_link`]); this module only puts back
//! what an older agent left, before a full scan, so an upgrade loses no file. It
//! never creates the directory.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use crate::fsys::staging::{STAGING_DIR, open_staging};

/// The name of the file that records where staged file `tmp` came from.
fn origin_name(tmp: &OsStr) -> OsString {
    let mut name = tmp.to_os_string();
    name.push(".origin");
    name
}

/// Puts back every file a crash left in the pool's staging directory, by the origin
/// written down before it moved (beside its name if the name was taken meanwhile).
/// Files without an origin are reported and left there; the directory is removed once
/// it is empty. Called before a full scan.
pub fn recover(root: BorrowedFd<'_>, cross_fs: bool) {
    let Ok(staging) = open_staging(root, OFlags::RDONLY) else {
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
    // Empty now (ENOTEMPTY otherwise: what has no origin stays, reported above).
    let _ = rustix::fs::unlinkat(root, STAGING_DIR, AtFlags::REMOVEDIR);
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
