//! Sorted directory listings kept between pages while their directory is unchanged.
//!
//! A picker pages through a pool a few hundred volumes at a time, and every page read
//! and sorted each directory it touched again: in a pool of 1,000-file directories
//! listed 500 at a time, each directory was read three times over (22 % of the agent's
//! time over a whole listing, most of it ext4's `getdents`). A listing read once is now
//! reused while its directory is the same inode with the same mtime and ctime.
//!
//! Timestamps prove "unchanged" only if a change after the read cannot leave them as
//! they were. Before Linux 6.13's multigrain timestamps a change stamps the coarse
//! clock (one tick, 1–10 ms), and some filesystems keep whole seconds (or two), so a
//! file created just after the read may leave the directory's mtime as it was. As git
//! does for its index ("racy git"), a listing is therefore kept only if the directory's
//! mtime and ctime were older than [`SETTLED`] when it was read: any later change
//! stamps a time after that. A listing is also dropped after [`MAX_AGE`], so even a
//! clock set back cannot keep one stale for long. What a page promises is unchanged:
//! a volume present throughout a listing appears in it exactly once; one created or
//! removed meanwhile may or may not (every name is opened again before it is shown, so
//! a removed one is left out).

use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::{FileType, StatxFlags};

use crate::error::{Error, Result};

/// How long before the read a directory's last change must be for its listing to be
/// kept (more than the coarsest timestamps kept by a Linux filesystem: FAT's 2 s).
const SETTLED: Duration = Duration::from_secs(3);

/// How long a kept listing is used at most (a whole listing takes seconds).
const MAX_AGE: Duration = Duration::from_secs(30);

/// Listings kept at most, and names in all of them: a bound on the memory (16 bytes a
/// name plus the name, under 4 MiB for 14-byte names), enough for a flat directory of
/// 100,000 volumes. A directory with more names than this is read for every page.
const MAX_LISTINGS: usize = 8;
const MAX_NAMES: usize = 131_072;

/// A directory's entries (but `.` and `..`), sorted by name bytes. The names are kept
/// back to back in one buffer: one allocation per directory, not one per name.
pub(super) struct SortedDir {
    names: Vec<u8>,
    /// Start of each name in `names`, its length (NAME_MAX is 255) and its type.
    entries: Vec<(usize, u8, FileType)>,
}

impl SortedDir {
    /// Reads every entry of `dir` and sorts them by name.
    fn read(dir: BorrowedFd<'_>) -> Result<SortedDir> {
        let mut names = Vec::new();
        let mut entries = Vec::new();
        let mut reader = rustix::fs::Dir::read_from(dir).map_err(Error::failed)?;
        while let Some(entry) = reader.read() {
            let entry = entry.map_err(Error::failed)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let len = u8::try_from(name.len())
                .map_err(|_| Error::failed("a directory entry longer than NAME_MAX"))?;
            entries.push((names.len(), len, entry.file_type()));
            names.extend_from_slice(name);
        }
        let name_at =
            |&(start, len, _): &(usize, u8, FileType)| &names[start..start + len as usize];
        entries.sort_unstable_by(|a, b| name_at(a).cmp(name_at(b)));
        Ok(SortedDir { names, entries })
    }

    /// The entries in name order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&OsStr, FileType)> {
        self.entries.iter().map(|&(start, len, kind)| {
            let name = &self.names[start..start + len as usize];
            (OsStr::from_bytes(name), kind)
        })
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// What identifies a directory's contents: the inode and its last changes.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Version {
    dev: (u32, u32),
    ino: u64,
    mtime: (i64, u32),
    ctime: (i64, u32),
}

struct Kept {
    version: Version,
    read_at: Instant,
    listing: Arc<SortedDir>,
}

/// The listings kept, oldest first.
static KEPT: Mutex<Vec<Kept>> = Mutex::new(Vec::new());

/// The sorted entries of the directory open as `dir`: a kept listing if the directory
/// is unchanged since it was read, else read now (and kept if it may be).
pub(super) fn sorted_entries(dir: BorrowedFd<'_>) -> Result<Arc<SortedDir>> {
    sorted_entries_after(dir, SETTLED)
}

/// [`sorted_entries`] with the time a directory must have been left alone to be kept.
fn sorted_entries_after(dir: BorrowedFd<'_>, settle: Duration) -> Result<Arc<SortedDir>> {
    // The version is taken before the read (a change during the read moves it on),
    // and the clock just before the version: a change after it stamps a later time.
    let stat_time = SystemTime::now();
    let Some(version) = version_of(dir) else {
        return SortedDir::read(dir).map(Arc::new);
    };
    let now = Instant::now();
    {
        let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|k| now.duration_since(k.read_at) < MAX_AGE);
        if let Some(k) = kept.iter().find(|k| k.version == version) {
            return Ok(k.listing.clone());
        }
    }
    let listing = Arc::new(SortedDir::read(dir)?);
    if settled(&version, settle, stat_time) && listing.len() <= MAX_NAMES {
        let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|k| k.version.dev != version.dev || k.version.ino != version.ino);
        kept.push(Kept {
            version,
            read_at: now,
            listing: listing.clone(),
        });
        while kept.len() > MAX_LISTINGS
            || kept.iter().map(|k| k.listing.len()).sum::<usize>() > MAX_NAMES
        {
            kept.remove(0);
        }
    }
    Ok(listing)
}

/// The directory's version, `None` if `statx` cannot say (nothing is kept then).
fn version_of(dir: BorrowedFd<'_>) -> Option<Version> {
    let st = rustix::fs::statx(
        dir,
        "",
        rustix::fs::AtFlags::EMPTY_PATH,
        StatxFlags::INO | StatxFlags::MTIME | StatxFlags::CTIME,
    )
    .ok()?;
    let wanted = StatxFlags::INO | StatxFlags::MTIME | StatxFlags::CTIME;
    if !StatxFlags::from_bits_retain(st.stx_mask).contains(wanted) {
        return None;
    }
    Some(Version {
        dev: (st.stx_dev_major, st.stx_dev_minor),
        ino: st.stx_ino,
        mtime: (st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec),
        ctime: (st.stx_ctime.tv_sec, st.stx_ctime.tv_nsec),
    })
}

/// Whether both of the directory's timestamps were older than `settle` at `stat_time`
/// (when its version was taken: not after the read, which may take long).
fn settled(v: &Version, settle: Duration, stat_time: SystemTime) -> bool {
    let Ok(now) = stat_time.duration_since(UNIX_EPOCH) else {
        return false;
    };
    let limit = now.saturating_sub(settle);
    let before = |(secs, nanos): (i64, u32)| {
        u64::try_from(secs).is_ok_and(|s| Duration::new(s, nanos) < limit)
    };
    before(v.mtime) && before(v.ctime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsFd;

    fn names(listing: &SortedDir) -> Vec<String> {
        listing
            .iter()
            .map(|(n, _)| n.to_string_lossy().into_owned())
            .collect()
    }

    fn is_kept(dir: BorrowedFd<'_>) -> bool {
        let v = version_of(dir).unwrap();
        let kept = KEPT.lock().unwrap();
        kept.iter()
            .any(|k| (k.version.dev, k.version.ino) == (v.dev, v.ino))
    }

    #[test]
    fn a_listing_is_sorted_by_name_bytes_without_dot_entries() {
        let tmp = tempfile::tempdir().unwrap();
        for n in ["b", "a", "B", "a0", "\u{e9}"] {
            File::create(tmp.path().join(n)).unwrap();
        }
        let d = File::open(tmp.path()).unwrap();
        let listing = SortedDir::read(d.as_fd()).unwrap();
        assert_eq!(names(&listing), ["B", "a", "a0", "b", "\u{e9}"]);
    }

    #[test]
    fn an_unchanged_directory_is_read_once_and_a_changed_one_again() {
        let tmp = tempfile::tempdir().unwrap();
        File::create(tmp.path().join("a")).unwrap();
        let d = File::open(tmp.path()).unwrap();
        // Settled at once (the real rule is tested below): kept and reused.
        let first = sorted_entries_after(d.as_fd(), Duration::ZERO).unwrap();
        let again = sorted_entries_after(d.as_fd(), Duration::ZERO).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "read twice");
        // A change a clock tick later moves the mtime: read again, the new name seen.
        std::thread::sleep(Duration::from_millis(20));
        File::create(tmp.path().join("b")).unwrap();
        let changed = sorted_entries_after(d.as_fd(), Duration::ZERO).unwrap();
        assert_eq!(names(&changed), ["a", "b"]);
    }

    #[test]
    fn a_directory_changed_in_the_last_seconds_is_never_kept() {
        // A change in the same clock tick as the read could leave its timestamps as
        // they were, so its listing must be read again next time.
        let tmp = tempfile::tempdir().unwrap();
        File::create(tmp.path().join("a")).unwrap();
        let d = File::open(tmp.path()).unwrap();
        assert_eq!(names(&sorted_entries(d.as_fd()).unwrap()), ["a"]);
        assert!(!is_kept(d.as_fd()));
    }
}
