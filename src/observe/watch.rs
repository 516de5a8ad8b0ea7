//! Watching dir pools with inotify: one watch per directory, events turned into changes.
//!
//! Watches are added on descriptors the walk opened safely (through `/proc/self/fd/N`),
//! never by resolving a pool path again, so a directory swapped for a symlink cannot
//! make us watch something outside the pool.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

use crate::fsys;

/// What the agent must do after some inotify events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Reconcile this one entry.
    Entry {
        /// Pool index.
        pool: usize,
        /// Path relative to the pool root.
        rel: PathBuf,
        /// Whether it was just created or moved in (not only written or relabeled).
        appeared: bool,
    },
    /// A directory appeared: watch and scan everything below it.
    NewTree {
        /// Pool index.
        pool: usize,
        /// Path relative to the pool root.
        rel: PathBuf,
    },
    /// A directory left (moved away): drop the watches below it.
    GoneTree {
        /// Pool index.
        pool: usize,
        /// Path relative to the pool root.
        rel: PathBuf,
    },
    /// The pool's root directory was removed or moved away.
    RootGone {
        /// Pool index.
        pool: usize,
    },
    /// The kernel dropped events (IN_Q_OVERFLOW): every pool must be rescanned.
    Overflow,
}

/// The mask of every directory watch.
fn mask() -> WatchMask {
    // No DONT_FOLLOW: the watch is added through /proc/self/fd/N, a magic link that must
    // be followed to reach the directory we opened beneath the pool.
    WatchMask::CREATE
        | WatchMask::MOVED_TO
        | WatchMask::CLOSE_WRITE
        | WatchMask::ATTRIB
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
}

/// The inotify instance and the directory each watch stands for.
pub struct Watcher {
    inotify: Inotify,
    dirs: HashMap<WatchDescriptor, (usize, PathBuf)>,
    buffer: Vec<u8>,
}

impl Watcher {
    /// A watcher with no watches yet.
    pub fn new() -> io::Result<Self> {
        Ok(Watcher {
            inotify: Inotify::init()?,
            dirs: HashMap::new(),
            buffer: vec![0; 64 * 1024],
        })
    }

    /// The inotify descriptor, to poll on.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// How many directories are watched.
    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    /// Whether no directory is watched.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// Watches the directory open as `fd`, which is `rel` in pool `pool`.
    pub fn add(&mut self, pool: usize, rel: &Path, fd: BorrowedFd<'_>) -> io::Result<()> {
        let wd = self.inotify.watches().add(fsys::proc_fd_path(fd), mask())?;
        self.dirs.insert(wd, (pool, rel.to_path_buf()));
        Ok(())
    }

    /// Drops the watches of `rel` and everything below it in pool `pool`.
    pub fn remove_tree(&mut self, pool: usize, rel: &Path) {
        let gone: Vec<WatchDescriptor> = self
            .dirs
            .iter()
            .filter(|(_, (p, r))| *p == pool && r.starts_with(rel))
            .map(|(wd, _)| wd.clone())
            .collect();
        for wd in gone {
            self.dirs.remove(&wd);
            // The watch may already be gone with its directory; nothing to do then.
            let _ = self.inotify.watches().remove(wd);
        }
    }

    /// Reads every pending event (never blocks) and turns them into changes, in order.
    pub fn read_changes(&mut self) -> io::Result<Vec<Change>> {
        let mut changes = Vec::new();
        loop {
            let events = match self.inotify.read_events(&mut self.buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            };
            let mut any = false;
            for event in events {
                any = true;
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    changes.push(Change::Overflow);
                    continue;
                }
                let Some((pool, dir)) = self.dirs.get(&event.wd).cloned() else {
                    continue;
                };
                if event.mask.contains(EventMask::IGNORED) {
                    self.dirs.remove(&event.wd);
                    if dir.as_os_str().is_empty() {
                        changes.push(Change::RootGone { pool });
                    }
                    continue;
                }
                if let Some(change) = classify(pool, &dir, event.mask, event.name) {
                    changes.push(change);
                }
            }
            if !any {
                break;
            }
        }
        Ok(changes)
    }
}

/// The change one event on directory `dir` of pool `pool` asks for.
fn classify(
    pool: usize,
    dir: &Path,
    mask: EventMask,
    name: Option<&std::ffi::OsStr>,
) -> Option<Change> {
    let Some(name) = name else {
        // An event on the watched directory itself.
        if mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF)
            && dir.as_os_str().is_empty()
        {
            return Some(Change::RootGone { pool });
        }
        if mask.contains(EventMask::ATTRIB) {
            return Some(Change::Entry {
                pool,
                rel: dir.to_path_buf(),
                appeared: false,
            });
        }
        return None;
    };
    let rel = dir.join(name);
    let is_dir = mask.contains(EventMask::ISDIR);
    if is_dir && mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
        Some(Change::NewTree { pool, rel })
    } else if is_dir && mask.contains(EventMask::MOVED_FROM) {
        Some(Change::GoneTree { pool, rel })
    } else if mask.intersects(EventMask::DELETE | EventMask::MOVED_FROM) {
        // Gone from the pool: there is nothing left to label.
        None
    } else {
        // CREATE, MOVED_TO, CLOSE_WRITE, or ATTRIB (a label changed by hand) on a file,
        // or ATTRIB on a subdirectory.
        let appeared = mask.intersects(EventMask::CREATE | EventMask::MOVED_TO);
        Some(Change::Entry {
            pool,
            rel,
            appeared,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn events_map_to_changes() {
        let dir = Path::new("sub");
        let name = Some(OsStr::new("x"));
        assert_eq!(
            classify(0, dir, EventMask::CREATE | EventMask::ISDIR, name),
            Some(Change::NewTree {
                pool: 0,
                rel: "sub/x".into()
            })
        );
        assert_eq!(
            classify(0, dir, EventMask::MOVED_FROM | EventMask::ISDIR, name),
            Some(Change::GoneTree {
                pool: 0,
                rel: "sub/x".into()
            })
        );
        assert_eq!(
            classify(1, dir, EventMask::ATTRIB, name),
            Some(Change::Entry {
                pool: 1,
                rel: "sub/x".into(),
                appeared: false
            })
        );
        assert_eq!(classify(0, dir, EventMask::DELETE, name), None);
        assert_eq!(
            classify(2, Path::new(""), EventMask::DELETE_SELF, None),
            Some(Change::RootGone { pool: 2 })
        );
    }
}
