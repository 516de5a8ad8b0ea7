//! What a user other than root may put into a dir pool through the API (`CreateVolume`,
//! `Import`): at most `api.max_volumes_per_user` volumes of its own at the pool's root,
//! `api.max_volume_bytes_per_user` bytes of them together, and never the last
//! `api.reserve_percent` of the filesystem's blocks or inodes. Root is not limited.
//! The data itself is written with the caller's rights ([`super::access::as_caller`]),
//! into a file it already owns, so the kernel's own limits apply as well: disk quotas,
//! and the blocks ext4 reserves for root.

use std::os::fd::BorrowedFd;

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

use super::Caller;
use crate::config::Settings;
use crate::error::{Error, Refusal, Result};

/// Refuses to add a volume of `bytes` for `caller` to the pool whose root is `root`
/// when it would pass one of the limits above.
pub fn check_room(
    settings: &Settings,
    caller: Caller,
    root: BorrowedFd<'_>,
    bytes: u64,
) -> Result<()> {
    if caller.is_root() {
        return Ok(());
    }
    let api = &settings.api;
    let (count, total) = owned_at_root(root, caller.uid)?;
    if count >= api.max_volumes_per_user {
        return Err(Refusal::VolumeQuota {
            uid: caller.uid,
            count,
        }
        .into());
    }
    if total.saturating_add(bytes) > api.max_volume_bytes_per_user {
        return Err(Refusal::ByteQuota {
            uid: caller.uid,
            total,
            bytes,
            limit: api.max_volume_bytes_per_user,
        }
        .into());
    }
    let fs = rustix::fs::fstatvfs(root)
        .map_err(|e| Error::failed(format!("statvfs of the pool: {e}")))?;
    let reserve = u64::from(api.reserve_percent);
    let block = fs.f_frsize.max(1);
    let needed_blocks = bytes.div_ceil(block);
    let blocks_left = fs.f_bavail.saturating_sub(needed_blocks);
    let inodes_left = fs.f_favail.saturating_sub(1);
    // Filesystems without inode counts (btrfs, tmpfs without nr_inodes) report 0 files.
    if blocks_left * 100 < fs.f_blocks * reserve
        || (fs.f_files > 0 && inodes_left * 100 < fs.f_files * reserve)
    {
        return Err(Refusal::Reserve {
            percent: api.reserve_percent,
        }
        .into());
    }
    Ok(())
}

/// How many regular files `uid` owns at the pool's root, and their sizes added.
fn owned_at_root(root: BorrowedFd<'_>, uid: u32) -> Result<(u64, u64)> {
    let mut dir = rustix::fs::Dir::read_from(root)
        .map_err(|e| Error::failed(format!("reading the pool's directory: {e}")))?;
    let (mut count, mut bytes) = (0u64, 0u64);
    while let Some(entry) = dir.read() {
        let entry =
            entry.map_err(|e| Error::failed(format!("reading the pool's directory: {e}")))?;
        if !matches!(entry.file_type(), FileType::RegularFile | FileType::Unknown) {
            continue;
        }
        // Looked at through openat2 like every other lookup: a stat by name would enter
        // a mount on that name (and hang on a FUSE server that never answers).
        let Ok(fd) = rustix::fs::openat2(
            root,
            entry.file_name(),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV,
        ) else {
            continue;
        };
        let Ok(st) = rustix::fs::fstat(&fd) else {
            continue;
        };
        if st.st_uid == uid && FileType::from_raw_mode(st.st_mode) == FileType::RegularFile {
            count += 1;
            bytes = bytes.saturating_add(u64::try_from(st.st_size).unwrap_or(0));
        }
    }
    Ok((count, bytes))
}
