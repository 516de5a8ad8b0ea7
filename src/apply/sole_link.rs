//! Writing a pool file's label only while every link of the file is inside the pool.
//!
//! A file opened through a pool name can have other links, and whoever may write the
//! directory can remove or replace the pool name after the open: the opened inode is
//! then left with one link, outside the pool (`/etc/shadow`), and `fstat` says
//! `nlink == 1`. No single read of the link count can tell "one link, in the pool" from
//! "one link, elsewhere" (docs/labels.md, "Writing a label safely"):
//!
//! - **Sealed directory** (owned by root, no group or other write bit, no ACL entry that
//!   grants write): nobody but root can change the name we opened the file through, so
//!   if the file has one link it is that name, and it is labeled through the
//!   descriptor.
//! - **Any other directory**: the inode itself is watched with inotify while the name
//!   and the link count are read. Every change of the inode's links (link, unlink,
//!   rename of any of its names, in any directory) queues an event on it before the
//!   directory lock of that change is released; reading the directory (which takes its
//!   lock) before the name is looked up and again after the link count is read waits
//!   for every change of a name in it. So when no event came, the name held the inode
//!   and the inode had one link at the same instant: its only link was the pool name.
//!   The user's name is never moved, hidden or renamed. On filesystems whose names can
//!   change without this kernel's VFS seeing it (NFS, FUSE, cluster filesystems,
//!   overlayfs) nothing can be proven, and nothing is written ([`WriteError::Unprovable`]).
//!
//! A link added after the check needs a name or descriptor of the file itself: it makes
//! a second name for a pool file, never a pool name for an outside file.

use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::apply::filecon::{self, LabelError};
use crate::decide::context::Context;
use crate::fsys;

/// Why a label was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The file has more than one link (one may be outside the pool).
    #[error("it has more than one hard link")]
    HardLinks,
    /// The name no longer holds the file that was examined (replaced or removed), or its
    /// links kept changing while they were checked.
    #[error("it was replaced or removed while being labeled")]
    Changed,
    /// Its directory can be written by others, and on its filesystem the agent cannot
    /// prove that the file's only link is in the pool (reported as
    /// `SkipReason::Unprovable`, which says what to do).
    #[error("its only link cannot be proven to be in the pool")]
    Unprovable,
    /// Writing the label failed.
    #[error("{0}")]
    Label(LabelError),
}

/// Where a regular file of a dir pool was found.
#[derive(Clone, Copy)]
pub struct Place<'a> {
    /// The directory holding the name.
    pub dir: BorrowedFd<'a>,
    /// The file's name in `dir`.
    pub name: &'a OsStr,
    /// Whether `dir` is sealed ([`fsys::sealed`]), when the caller decided it once for the
    /// whole directory (a walk); `None`: decided here, and only if a label is written.
    pub dir_sealed: Option<bool>,
}

/// How often the watched check is tried when something else changed the inode's
/// attributes meanwhile (a `chmod`, `touch` or another link) before giving up with
/// [`WriteError::Changed`]; the watch on the directory brings the file back.
const ATTEMPTS: usize = 3;

/// Writes `label` on the regular file `fd`, found as `place`, by the protocol above.
///
/// The caller has seen, on the descriptor, a regular file with one link (the plan
/// refuses anything else): in a sealed directory that is all it takes, and no further
/// system call is spent on the hot path of a scan.
pub fn write(place: Place<'_>, fd: BorrowedFd<'_>, label: &Context) -> Result<(), WriteError> {
    if place.dir_sealed.unwrap_or_else(|| fsys::sealed(place.dir)) {
        // Opened through this name, which only root can change: its one link is it.
        return filecon::write(fd, label).map_err(WriteError::Label);
    }
    provable_filesystem(fd)?;
    write_watched(place, fd, label)
}

/// Whether [`write()`] can ever prove the file's only link is in the pool: its directory
/// is sealed, or its filesystem one where the watched check holds. What `status` and
/// other inspections report without writing.
pub fn provable(place: Place<'_>, fd: BorrowedFd<'_>) -> Result<(), WriteError> {
    if place.dir_sealed.unwrap_or_else(|| fsys::sealed(place.dir)) {
        return Ok(());
    }
    provable_filesystem(fd)
}

/// The unsealed case of [`write`]: the watched check, tried a few times.
fn write_watched(place: Place<'_>, fd: BorrowedFd<'_>, label: &Context) -> Result<(), WriteError> {
    let watch = Watch::take().map_err(io_failure)?;
    // A readable descriptor of the directory, for the reads that wait on its lock.
    let dir = rustix::fs::openat(
        place.dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_failure)?;
    for _ in 0..ATTEMPTS {
        if watch.only_link_is(dir.as_fd(), place.name, fd)? {
            return filecon::write(fd, label).map_err(WriteError::Label);
        }
    }
    Err(WriteError::Changed)
}

/// Refuses a filesystem where a name can change without this kernel's VFS (and so
/// inotify and the directory lock) seeing it. The list is of local filesystems whose
/// every name change is a VFS operation; ramfs stores no labels, and says so when the
/// write is tried.
fn provable_filesystem(fd: BorrowedFd<'_>) -> Result<(), WriteError> {
    // statfs magics: ext2/3/4, XFS, Btrfs, tmpfs, F2FS, ramfs.
    const LOCAL: [i64; 6] = [
        0xEF53,
        0x5846_5342,
        0x9123_683E,
        0x0102_1994,
        0xF2F5_2010,
        0x8584_58F6,
    ];
    let st = rustix::fs::fstatfs(fd).map_err(io_failure)?;
    #[allow(clippy::unnecessary_cast)] // f_type is i64 or u32 depending on the target
    let magic = st.f_type as i64;
    if LOCAL.contains(&magic) {
        Ok(())
    } else {
        Err(WriteError::Unprovable)
    }
}

/// An inotify instance for the check, taken from a pool of idle ones and given back on
/// drop: one per concurrent writer, not one per thread that ever wrote (tokio's blocking
/// pool has hundreds, and a user may have 128 instances in all).
struct Watch(Option<OwnedFd>);

static IDLE: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

impl Watch {
    fn take() -> Result<Watch, Errno> {
        let idle = IDLE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        match idle {
            Some(fd) => Ok(Watch(Some(fd))),
            None => inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
                .map(|fd| Watch(Some(fd))),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_ref().expect("held until drop").as_fd()
    }

    /// Whether, at one instant, `name` in `dir` was the file `fd` and the file had one
    /// link: then that link is its only one. `Ok(false)`: its links or attributes
    /// changed meanwhile; try again.
    ///
    /// The order, against the kernel's: every change of a link (`link`, `unlink`,
    /// `rename`, also a rename over one of its names) queues `IN_ATTRIB` or
    /// `IN_MOVE_SELF` on the inode while it holds the lock of the directory whose name
    /// it changes, and a directory read (`getdents64`) takes that lock. (1) The watch
    /// is added: every later change is reported. (2) A read of `dir` waits for a change
    /// of a name in it that reported before (1) to finish, so (3) sees its result.
    /// (3) `name` holds the inode. (4) The inode has one link. (5) A read of `dir` waits
    /// for every change of a name in `dir` begun before (4), so its event is queued.
    /// (6) No event: no name in `dir` changed between (1) and (4), so the name seen in
    /// (3) was still the inode's at (4), and one link at (4) means that name alone. A
    /// change of a name elsewhere cannot make a pool name; an unlink elsewhere before
    /// (4) only leaves the pool name.
    fn only_link_is(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        fd: BorrowedFd<'_>,
    ) -> Result<bool, WriteError> {
        let watch = self.fd();
        drain(watch, None);
        let wd = inotify::add_watch(
            watch,
            crate::fsys::proc_fd_path(fd),
            WatchFlags::ATTRIB | WatchFlags::MOVE_SELF | WatchFlags::DELETE_SELF,
        )
        .map_err(io_failure)?;
        let checked = (|| {
            wait_for_changes_in(dir)?;
            let held = rustix::fs::fstat(fd).map_err(io_failure)?;
            // Looked up through openat2 like every other lookup: a stat by name would
            // enter a mount a user put on the name meanwhile (and hang on a FUSE server
            // that never answers).
            let named = rustix::fs::openat2(
                dir,
                name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV,
            )
            .and_then(|f| rustix::fs::fstat(&f));
            match named {
                Ok(st) if (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino) => {}
                Ok(_) | Err(Errno::NOENT | Errno::XDEV | Errno::LOOP) => {
                    return Err(WriteError::Changed);
                }
                Err(e) => return Err(io_failure(e)),
            }
            let st = rustix::fs::fstat(fd).map_err(io_failure)?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                return Err(WriteError::Changed);
            }
            if st.st_nlink != 1 {
                return Err(WriteError::HardLinks);
            }
            wait_for_changes_in(dir)?;
            Ok(!drain(watch, Some(wd)))
        })();
        let _ = inotify::remove_watch(watch, wd);
        checked
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(fd) = self.0.take() {
            IDLE.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(fd);
        }
    }
}

/// Reads every queued event; whether one was for watch `wd` (or the queue overflowed).
fn drain(watch: BorrowedFd<'_>, wd: Option<i32>) -> bool {
    let mut buf = [MaybeUninit::<u8>::uninit(); 1024];
    let mut events = inotify::Reader::new(watch, &mut buf);
    let mut seen = false;
    while let Ok(event) = events.next() {
        let overflow = event.events().contains(ReadFlags::QUEUE_OVERFLOW);
        seen |= overflow || wd.is_some_and(|wd| event.wd() == wd);
    }
    seen
}

/// Reads `dir` once: `getdents64` takes the directory's lock, so it returns only after
/// every rename, link or unlink of a name in it that holds the lock now has finished
/// (and queued its inotify events).
fn wait_for_changes_in(dir: BorrowedFd<'_>) -> Result<(), WriteError> {
    rustix::fs::seek(dir, rustix::fs::SeekFrom::Start(0)).map_err(io_failure)?;
    let mut buf = [MaybeUninit::<u8>::uninit(); 512];
    match rustix::fs::RawDir::new(dir, &mut buf).next() {
        None | Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(io_failure(e)),
    }
}

fn io_failure(e: Errno) -> WriteError {
    WriteError::Label(LabelError::Io(std::io::Error::from(e).to_string()))
}
