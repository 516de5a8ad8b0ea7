//! The staging directory versions before the watched-link protocol made in each dir
//! pool's root: its name, and whether an entry is one. Walks, watches and listings skip
//! it; `apply::legacy_staging` recovers what it holds.

use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// The staging directory older versions made in the root of each dir pool. Walks,
/// watches and listings skip it when it is root's and mode 0700 ([`is_legacy_staging`]).
pub const STAGING_DIR: &str = ".svirt-pool";

/// Whether the entry `name` of the pool root `root` is an older agent's staging
/// directory: named [`STAGING_DIR`], root's, mode 0700. Anything else of that name
/// (a user's directory) is an ordinary part of the pool.
pub fn is_legacy_staging(root: BorrowedFd<'_>, name: &[u8]) -> bool {
    name == STAGING_DIR.as_bytes()
        && open_staging(root, OFlags::PATH)
            .and_then(|fd| rustix::fs::fstat(&fd))
            .is_ok_and(|st| st.st_uid == 0 && st.st_mode & 0o077 == 0)
}

/// Opens the pool root's [`STAGING_DIR`] as a directory, through openat2 like every
/// other lookup below a pool: a user may have created it in a writable pool root, and
/// a mount on it (a FUSE server that never answers) is refused, never entered.
pub(crate) fn open_staging(root: BorrowedFd<'_>, flags: OFlags) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        root,
        STAGING_DIR,
        flags | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV,
    )
}
