//! Safe access to the files of a dir pool: never through a symlink, never out of the pool.
//!
//! Every open goes through a descriptor of the pool's root: `openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` (and `RESOLVE_NO_XDEV` unless the pool may
//! cross filesystems), or `openat` with `O_NOFOLLOW` relative to a directory that was
//! itself opened that way. Labels are then read and written through the descriptor,
//! so a path swapped under us cannot redirect the write.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, StatxFlags};

mod sealed;
pub mod staging;

pub use sealed::sealed;

/// Which file a name held when it was attached: its inode number and birth time.
/// A file created later under the same name (even on a reused inode) is another file,
/// and the attachment does not carry over to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    /// `st_ino`.
    pub ino: u64,
    /// Birth time in nanoseconds since the epoch; 0 where the filesystem keeps none.
    pub btime_ns: i64,
}

/// What kind of object a pool entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A regular file, with its link count.
    Regular {
        /// `st_nlink`.
        links: u64,
    },
    /// A directory.
    Directory,
    /// A symbolic link (never followed, never labeled).
    Symlink,
    /// A block device node.
    BlockDevice,
    /// Anything else: FIFO, socket, character device.
    Other,
}

/// An entry of a pool, opened without following links.
pub struct Node {
    /// An `O_PATH` descriptor (or `O_DIRECTORY` for directories) of the entry itself.
    pub fd: OwnedFd,
    /// What it is.
    pub kind: NodeKind,
    /// Device of the filesystem it lives on.
    pub dev: u64,
    /// Its inode number.
    pub ino: u64,
    /// Which file it is (inode and birth time), to tell it from a later one of the same name.
    pub file: FileId,
    /// Its length in bytes.
    pub size: u64,
    /// Bytes allocated to it (`st_blocks` × 512).
    pub allocated: u64,
}

impl Node {
    pub(crate) fn from_fd(fd: OwnedFd) -> io::Result<Node> {
        let st = rustix::fs::statx(
            &fd,
            "",
            AtFlags::EMPTY_PATH,
            StatxFlags::BASIC_STATS | StatxFlags::BTIME,
        )?;
        let mode = u32::from(st.stx_mode);
        let kind = match FileType::from_raw_mode(mode) {
            FileType::RegularFile => NodeKind::Regular {
                links: u64::from(st.stx_nlink),
            },
            FileType::Directory => NodeKind::Directory,
            FileType::Symlink => NodeKind::Symlink,
            FileType::BlockDevice => NodeKind::BlockDevice,
            _ => NodeKind::Other,
        };
        let file = file_id_of(&st);
        Ok(Node {
            kind,
            dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
            file,
            size: st.stx_size,
            allocated: st.stx_blocks.saturating_mul(512),
            fd,
        })
    }
}

/// Which file a `statx` result is: inode and birth time (0 where none is kept).
fn file_id_of(st: &rustix::fs::Statx) -> FileId {
    let has_btime = StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::BTIME);
    FileId {
        ino: st.stx_ino,
        btime_ns: if has_btime {
            st.stx_btime.tv_sec * 1_000_000_000 + i64::from(st.stx_btime.tv_nsec)
        } else {
            0
        },
    }
}

/// Which file is behind `fd` (inode and birth time).
pub fn file_id(fd: BorrowedFd<'_>) -> io::Result<FileId> {
    let st = rustix::fs::statx(
        fd,
        "",
        AtFlags::EMPTY_PATH,
        StatxFlags::INO | StatxFlags::BTIME,
    )?;
    Ok(file_id_of(&st))
}

fn kind_of(st: &Stat) -> NodeKind {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => NodeKind::Regular { links: st.st_nlink },
        FileType::Directory => NodeKind::Directory,
        FileType::Symlink => NodeKind::Symlink,
        FileType::BlockDevice => NodeKind::BlockDevice,
        _ => NodeKind::Other,
    }
}

/// Why a pool's root directory cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// The path itself is a symlink.
    #[error("is a symlink (name the real directory)")]
    Symlink,
    /// A component on the way is a symlink.
    #[error("goes through a symlink (name the real directory)")]
    ThroughSymlink,
    /// It is not a directory.
    #[error("is not a directory")]
    NotDirectory,
    /// Nothing is there.
    #[error("does not exist")]
    Missing,
    /// Anything else the kernel said.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Opens a pool's root directory; refuses a path with a symlink in any component.
pub fn open_pool_root(path: &Path) -> Result<OwnedFd, RootError> {
    let fd = rustix::fs::openat2(
        rustix::fs::CWD,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    );
    let is_symlink = || {
        rustix::fs::statat(rustix::fs::CWD, path, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
    };
    fd.map_err(|e| match e {
        _ if is_symlink() => RootError::Symlink,
        rustix::io::Errno::LOOP => RootError::ThroughSymlink,
        rustix::io::Errno::NOTDIR => RootError::NotDirectory,
        rustix::io::Errno::NOENT => RootError::Missing,
        e => RootError::Io(e.into()),
    })
}

/// A device node opened without following links, with its device number.
pub struct DeviceNode {
    /// An `O_PATH` descriptor of the node itself.
    pub fd: OwnedFd,
    /// What it is.
    pub kind: NodeKind,
    /// `st_rdev`: the device it stands for.
    pub rdev: u64,
}

/// Opens a device node by its absolute path (`DEVNAME` from udev), `O_PATH |
/// O_NOFOLLOW`: a symlink is opened as itself and then refused by its kind.
pub fn open_node(path: &Path) -> Result<DeviceNode, OpenError> {
    let fd = rustix::fs::openat(
        rustix::fs::CWD,
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(open_error)?;
    let st = rustix::fs::fstat(&fd).map_err(|e| OpenError::Io(io::Error::from(e).to_string()))?;
    Ok(DeviceNode {
        kind: kind_of(&st),
        rdev: st.st_rdev,
        fd,
    })
}

/// The RESOLVE flags of every lookup below a pool: beneath its root, no symlink, and no
/// other mount unless the pool may cross filesystems.
pub fn resolve_flags(cross_filesystems: bool) -> ResolveFlags {
    let flags = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    if cross_filesystems {
        flags
    } else {
        flags | ResolveFlags::NO_XDEV
    }
}

/// Why an entry below a pool could not be reached.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// It does not exist (any more).
    #[error("does not exist")]
    Missing,
    /// A component of the path is a symlink.
    #[error("is or goes through a symlink")]
    Symlink,
    /// A component is on another filesystem.
    #[error("is on another filesystem")]
    OtherFilesystem,
    /// Anything else.
    #[error("{0}")]
    Io(String),
}

pub(crate) fn open_error(e: rustix::io::Errno) -> OpenError {
    match e {
        rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR => OpenError::Missing,
        rustix::io::Errno::LOOP => OpenError::Symlink,
        rustix::io::Errno::XDEV => OpenError::OtherFilesystem,
        e => OpenError::Io(io::Error::from(e).to_string()),
    }
}

/// Opens entry `name` of directory `dir` (itself opened beneath a pool root), as a walk
/// met it with directory-entry type `dtype`: a regular file read-only and non-blocking
/// (its label is read and written through the descriptor), anything else `O_PATH` (a
/// FIFO or device is never opened for reading). Never follows a symlink; a file
/// bind-mounted onto the name is a mount point and refused (`EXDEV`) without touching
/// what is mounted there, unless `cross_fs`.
pub fn open_entry(
    dir: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    dtype: FileType,
    cross_fs: bool,
) -> Result<Node, OpenError> {
    let open = |how: OFlags| {
        let fd = rustix::fs::openat2(
            dir,
            name,
            how | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            resolve_flags(cross_fs),
        )
        .map_err(open_error)?;
        Node::from_fd(fd).map_err(|e| OpenError::Io(e.to_string()))
    };
    let readable = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
    if dtype == FileType::RegularFile {
        return open(readable);
    }
    let node = open(OFlags::PATH)?;
    // The type is not known (a filesystem that does not fill in entry types, or a
    // name looked up on its own): a regular file found through `O_PATH` is reopened
    // readable, and must be the same inode.
    if dtype == FileType::Unknown && matches!(node.kind, NodeKind::Regular { .. }) {
        let file = open(readable)?;
        if (file.dev, file.ino) != (node.dev, node.ino) {
            return Err(OpenError::Io("replaced while being opened".into()));
        }
        return Ok(file);
    }
    Ok(node)
}

/// An entry below a pool root, opened with the directory that holds it.
pub struct Opened {
    /// The directory holding the entry (opened beneath the root like the entry).
    pub dir: OwnedFd,
    /// The entry's name in `dir`.
    pub name: std::ffi::OsString,
    /// The entry itself.
    pub node: Node,
}

/// Opens `rel` (not empty) below `root` without following any symlink or leaving the
/// pool, and the directory that holds it.
///
/// Every lookup is an `openat2` with the RESOLVE flags: nothing is ever looked up
/// through a symlink or into another mount (a hung FUSE mount below a pool is never
/// touched). The entry is first opened `O_PATH`; a regular file is then reopened
/// read-only and non-blocking (its label is read and written through the descriptor),
/// and must be the same inode. Anything else stays `O_PATH`, so opening a device node
/// or FIFO has no effect.
pub fn open_beneath(root: BorrowedFd<'_>, rel: &Path, cross_fs: bool) -> Result<Opened, OpenError> {
    let name = rel.file_name().ok_or(OpenError::Missing)?.to_os_string();
    let dir = open_dir_beneath(root, rel.parent().unwrap_or(Path::new("")), cross_fs)?;
    // No directory entry says what the name is: `open_entry` looks with `O_PATH` first.
    let node = open_entry(dir.as_fd(), &name, FileType::Unknown, cross_fs)?;
    Ok(Opened { dir, name, node })
}

/// Opens directory `rel` below `root` for reading its entries (`rel` empty: the root).
pub fn open_dir_beneath(
    root: BorrowedFd<'_>,
    rel: &Path,
    cross_fs: bool,
) -> Result<OwnedFd, OpenError> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let open = |how: OFlags| {
        rustix::fs::openat2(
            root,
            rel,
            how | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            resolve_flags(cross_fs),
        )
    };
    open(OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| match e {
        // O_DIRECTORY | O_NOFOLLOW on a symlink says ENOTDIR: tell the two apart.
        rustix::io::Errno::NOTDIR
            if open(OFlags::PATH)
                .and_then(rustix::fs::fstat)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink) =>
        {
            OpenError::Symlink
        }
        e => open_error(e),
    })
}

/// Whether an entry exists at `rel` beneath `dir` (not following a final symlink).
pub fn exists_beneath(dir: BorrowedFd<'_>, rel: &Path) -> bool {
    rustix::fs::statat(dir, rel, AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

/// The `/proc/self/fd/N` path of a descriptor, to hand a safely opened object to an
/// API that takes paths (inotify) without resolving the original path again.
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::fd::AsFd;
    use std::os::unix::fs::symlink;

    use super::*;

    fn dir_of(path: &Path) -> OwnedFd {
        rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    /// A filesystem without entry types (`DT_UNKNOWN`): a regular file still comes back
    /// readable, so its label can be read through the descriptor.
    #[test]
    fn an_entry_of_unknown_type_that_is_a_file_is_opened_readable() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("disk.img"), b"QFI\xfb").unwrap();
        let dir = dir_of(tmp.path());
        let node = open_entry(
            dir.as_fd(),
            OsStr::new("disk.img"),
            FileType::Unknown,
            false,
        )
        .unwrap();
        assert_eq!(node.kind, NodeKind::Regular { links: 1 });
        assert_eq!(node.size, 4);
        let mut buf = [0u8; 4];
        assert_eq!(rustix::io::pread(&node.fd, &mut buf, 0).unwrap(), 4);
        assert_eq!(&buf, b"QFI\xfb");
    }

    /// Entries that are not regular files are opened `O_PATH` and never read; a symlink
    /// is never followed, whatever type the directory said.
    #[test]
    fn other_entries_are_never_opened_for_reading_nor_followed() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("target"), b"x").unwrap();
        symlink(tmp.path().join("target"), tmp.path().join("link")).unwrap();
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        let dir = dir_of(tmp.path());
        for dtype in [FileType::Symlink, FileType::Unknown, FileType::RegularFile] {
            // Refused, or the link itself (O_PATH): never the file it points to.
            if let Ok(node) = open_entry(dir.as_fd(), OsStr::new("link"), dtype, false) {
                assert_eq!(node.kind, NodeKind::Symlink, "{dtype:?}");
            }
        }
        let sub = open_entry(dir.as_fd(), OsStr::new("sub"), FileType::Unknown, false).unwrap();
        assert_eq!(sub.kind, NodeKind::Directory);
        let mut buf = [0u8; 1];
        assert!(
            rustix::io::read(&sub.fd, &mut buf).is_err(),
            "O_PATH reads nothing"
        );
    }
}
