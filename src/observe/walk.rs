//! Walking a dir pool: every directory and entry below a start, on several threads,
//! each opened safely beneath the pool root (see [`crate::fsys`]).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::fsys::{self, Node, NodeKind, OpenError, open_dir_beneath, open_entry, staging};

/// One entry met by [`walk`].
pub enum Visit<'a> {
    /// A directory of the pool, opened for reading (the root comes first, with an empty path).
    Directory {
        /// Its path relative to the pool root.
        rel: &'a Path,
        /// Its open descriptor.
        fd: BorrowedFd<'a>,
    },
    /// Any other entry, opened beneath its directory without following a symlink.
    Entry {
        /// Its path relative to the pool root.
        rel: &'a Path,
        /// The directory holding it.
        dir: BorrowedFd<'a>,
        /// Its name in `dir`.
        name: &'a OsStr,
        /// Whether nobody but root can change names in `dir` (decided once per directory).
        dir_sealed: bool,
        /// The opened entry.
        node: Node,
    },
    /// An entry that could not be opened or read.
    Error {
        /// Its path relative to the pool root.
        rel: &'a Path,
        /// What went wrong.
        error: OpenError,
    },
}

/// Walks the tree below `start` (relative to the pool root) on `threads` threads and
/// calls `visit` for every directory and entry, from any of them.
///
/// Directories are opened one at a time from the root with `openat2` (so a directory
/// swapped for a symlink mid-walk is refused by the kernel, and deep trees need no
/// more than a few descriptors); entries are opened relative to their directory with
/// `O_NOFOLLOW`: regular files read-only and non-blocking (so their labels are read and
/// written straight through the descriptor), anything else `O_PATH` (a FIFO or device
/// is never opened for reading). Mount points are not crossed unless `cross_fs`.
pub fn walk(
    root: BorrowedFd<'_>,
    start: &Path,
    cross_fs: bool,
    threads: usize,
    visit: &(dyn Fn(Visit<'_>) + Sync),
) {
    let root_dev = match rustix::fs::fstat(root) {
        Ok(st) => st.st_dev,
        Err(e) => {
            visit(Visit::Error {
                rel: start,
                error: OpenError::Io(io::Error::from(e).to_string()),
            });
            return;
        }
    };
    // Directories waiting to be read, and how many workers are reading one.
    let queue = std::sync::Mutex::new((vec![start.to_path_buf()], 0usize));
    let wake = std::sync::Condvar::new();
    let worker = || loop {
        let dir = {
            let mut q = queue.lock().expect("walk queue");
            loop {
                if let Some(d) = q.0.pop() {
                    q.1 += 1;
                    break d;
                }
                if q.1 == 0 {
                    wake.notify_all();
                    return;
                }
                q = wake.wait(q).expect("walk queue");
            }
        };
        let found = read_dir(root, &dir, root_dev, cross_fs, visit);
        let mut q = queue.lock().expect("walk queue");
        q.0.extend(found);
        q.1 -= 1;
        wake.notify_all();
    };
    if threads <= 1 {
        worker();
    } else {
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads).map(|_| s.spawn(worker)).collect();
            // Joined one by one: `join` waits for the thread's exit, its thread-local
            // destructors included (a walker's file_contexts copy, ~10 MiB), where the
            // scope's own wait returns when the closures return. The agent gives memory
            // back right after a scan: before this, 2 runs in 6 kept 36-42 MiB.
            for worker in workers {
                if let Err(panic) = worker.join() {
                    std::panic::resume_unwind(panic);
                }
            }
        });
    }
}

/// Reads one directory of the walk; returns its subdirectories.
fn read_dir(
    root: BorrowedFd<'_>,
    dir_rel: &Path,
    root_dev: u64,
    cross_fs: bool,
    visit: &(dyn Fn(Visit<'_>) + Sync),
) -> Vec<PathBuf> {
    let mut subdirs = Vec::new();
    let dir = match open_dir_beneath(root, dir_rel, cross_fs) {
        Ok(fd) => fd,
        Err(error) => {
            visit(Visit::Error {
                rel: dir_rel,
                error,
            });
            return subdirs;
        }
    };
    visit(Visit::Directory {
        rel: dir_rel,
        fd: dir.as_fd(),
    });
    let mut entries = match rustix::fs::Dir::read_from(&dir) {
        Ok(d) => d,
        Err(e) => {
            let error = OpenError::Io(io::Error::from(e).to_string());
            visit(Visit::Error {
                rel: dir_rel,
                error,
            });
            return subdirs;
        }
    };
    let dir_sealed = fsys::sealed(dir.as_fd());
    let mut child = PathBuf::new();
    while let Some(entry) = entries.read() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let error = OpenError::Io(io::Error::from(e).to_string());
                visit(Visit::Error {
                    rel: dir_rel,
                    error,
                });
                break;
            }
        };
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        child.clear();
        child.push(dir_rel);
        child.push(OsStr::from_bytes(name));
        if dir_rel.as_os_str().is_empty() && staging::is_legacy_staging(dir.as_fd(), name) {
            continue; // what an older agent's crash left: `recover` reports it
        }
        match open_entry(
            dir.as_fd(),
            OsStr::from_bytes(name),
            entry.file_type(),
            cross_fs,
        ) {
            Ok(node) if node.kind == NodeKind::Directory => {
                if node.dev != root_dev && !cross_fs {
                    visit(Visit::Error {
                        rel: &child,
                        error: OpenError::OtherFilesystem,
                    });
                } else {
                    subdirs.push(child.clone());
                }
            }
            Ok(node) => visit(Visit::Entry {
                rel: &child,
                dir: dir.as_fd(),
                name: OsStr::from_bytes(name),
                dir_sealed,
                node,
            }),
            Err(OpenError::Missing) => {} // removed while we walked: nothing to label
            Err(error) => visit(Visit::Error { rel: &child, error }),
        }
    }
    subdirs
}
