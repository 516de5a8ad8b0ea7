//! The reconciler: observe a volume, decide its label, write it only when it differs.
//!
//! Observe: open the entry beneath the pool root (`fsys`, `observe::walk`) and read
//! its current label. Decide: [`crate::decide::plan`] (pure) says which label it must
//! carry and what to do. Apply: write only when current and desired differ, so a
//! correct file is never touched (no ctime bump, no IN_ATTRIB feedback loop). This
//! module finds the entries (one volume, or a whole pool); `entry` runs the three steps
//! for one of them; `outcome` is what it reports.

mod entry;
mod outcome;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::apply::legacy_staging;
use crate::apply::sole_link::Place;
use crate::config::{DirPool, PoolKind, Settings};
use crate::decide::labels::Holder;
use crate::fsys::{self, NodeKind, OpenError};
use crate::observe::devices::{self, LvNode};
use crate::observe::walk::{self, Visit};
use crate::registry::HolderIndex;
use entry::{Entry, EntryReconciler};

pub use crate::decide::plan::SkipReason;

/// Why a pool as a whole cannot be reconciled (its entries' problems are [`Outcome`]s).
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// A dir-pool operation was asked of an lvm pool.
    #[error("pool {0} is not a directory pool")]
    NotDirPool(String),
    /// The pool's root directory cannot be opened.
    #[error(transparent)]
    Root(#[from] fsys::RootError),
    /// udev could not list the volume group's nodes.
    #[error("udev enumeration: {0}")]
    Udev(std::io::Error),
}
pub use outcome::{Examined, Failure, NotLabeled, Outcome, Summary, unreachable_entry};

/// Whether the reconciler writes labels or only reports what it would write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Apply {
    /// Write labels that differ.
    Write,
    /// Write nothing (status).
    Inspect,
}

/// An entry of a dir pool that a caller's walk opened: entry `name` of `dir` (itself
/// opened beneath the pool root).
pub struct Found<'a> {
    /// The directory holding it.
    pub dir: BorrowedFd<'a>,
    /// Its name in `dir`.
    pub name: &'a std::ffi::OsStr,
    /// The entry, opened by [`fsys::open_entry`].
    pub node: &'a fsys::Node,
}

/// Labels the entries of the configured pools. Holds the libselinux handle, so it
/// stays on the thread that made it.
pub struct Reconciler<'s> {
    settings: &'s Settings,
    entries: EntryReconciler<'s>,
    roots: Vec<Option<OwnedFd>>,
    apply: Apply,
}

/// How many threads walk a dir pool: every core, up to 8.
fn scan_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

impl<'s> Reconciler<'s> {
    /// A reconciler for `settings`, writing labels or only inspecting them.
    pub fn new(settings: &'s Settings, apply: Apply) -> Self {
        Reconciler {
            settings,
            entries: EntryReconciler::new(settings, apply),
            roots: settings.pools.iter().map(|_| None).collect(),
            apply,
        }
    }

    /// The settings it works from.
    pub fn settings(&self) -> &'s Settings {
        self.settings
    }

    fn dir_pool(&self, idx: usize) -> Result<&'s DirPool, PoolError> {
        let pool = &self.settings.pools[idx];
        pool.dir()
            .ok_or_else(|| PoolError::NotDirPool(pool.name.clone()))
    }

    /// The root descriptor of dir pool `idx`, opened on first use.
    pub fn root(&mut self, idx: usize) -> Result<BorrowedFd<'_>, PoolError> {
        if self.roots[idx].is_none() {
            let dir = self.dir_pool(idx)?;
            self.roots[idx] = Some(fsys::open_pool_root(&dir.path)?);
        }
        Ok(self.roots[idx].as_ref().expect("just opened").as_fd())
    }

    /// Whether dir pool `idx`'s open root is still the directory at the pool's path.
    ///
    /// False once it was removed or replaced: inotify reports neither while we hold
    /// the old directory open (no IN_DELETE_SELF until the last reference goes).
    pub fn root_is_current(&self, idx: usize) -> bool {
        let (Some(fd), Ok(dir)) = (&self.roots[idx], self.dir_pool(idx)) else {
            return false;
        };
        match (
            rustix::fs::fstat(fd),
            rustix::fs::statat(
                rustix::fs::CWD,
                &dir.path,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            ),
        ) {
            (Ok(open), Ok(now)) => {
                open.st_nlink > 0 && open.st_dev == now.st_dev && open.st_ino == now.st_ino
            }
            _ => false,
        }
    }

    /// Forgets pool `idx`'s root descriptor (its directory was removed or replaced).
    pub fn forget_root(&mut self, idx: usize) {
        self.roots[idx] = None;
    }

    /// Reconciles the volume of pool `idx` known in the state as `key` (a path
    /// relative to a dir pool's root, or an LV uuid) given its holders.
    ///
    /// An LV without a node (inactive) is [`Outcome::Missing`]: its label is applied
    /// when the node appears.
    pub fn reconcile_volume(&mut self, idx: usize, key: &[u8], holders: &[Holder]) -> Examined {
        match &self.settings.pools[idx].kind {
            PoolKind::Dir(_) => {
                let rel = Path::new(std::ffi::OsStr::from_bytes(key));
                self.reconcile_path(idx, rel, holders)
            }
            PoolKind::Lvm(lvm) => {
                let uuid = String::from_utf8_lossy(key);
                match devices::enumerate(&|vg| vg == lvm.vg) {
                    Ok(nodes) => match nodes.iter().find(|n| n.lv_uuid == uuid) {
                        Some(node) => self.reconcile_lv_node(idx, node, holders),
                        None => unreachable_entry(OpenError::Missing),
                    },
                    Err(e) => unreachable_entry(OpenError::Io(format!("udev enumeration: {e}"))),
                }
            }
        }
    }

    /// Reconciles the entry at `rel` in dir pool `idx` given its holders.
    pub fn reconcile_path(&mut self, idx: usize, rel: &Path, holders: &[Holder]) -> Examined {
        let cross_fs = match self.dir_pool(idx) {
            Ok(dir) => dir.cross_filesystems,
            Err(e) => return unreachable_entry(OpenError::Io(e.to_string())),
        };
        if let Err(e) = self.root(idx) {
            return unreachable_entry(OpenError::Io(e.to_string()));
        }
        // Borrowed field by field: the root and the labeler are used together.
        let root = self.roots[idx].as_ref().expect("opened above").as_fd();
        if rel.as_os_str().is_empty() {
            return match fsys::open_dir_beneath(root, rel, cross_fs) {
                Ok(fd) => {
                    let dir = Entry::direct(NodeKind::Directory, fd.as_fd());
                    self.entries.reconcile(idx, rel, dir, holders)
                }
                Err(e) => unreachable_entry(e),
            };
        }
        match fsys::open_beneath(root, rel, cross_fs) {
            Ok(opened) => {
                let found = Found {
                    dir: opened.dir.as_fd(),
                    name: &opened.name,
                    node: &opened.node,
                };
                self.reconcile_found(idx, rel, found, holders)
            }
            Err(e) => unreachable_entry(e),
        }
    }

    /// Reconciles an entry of dir pool `idx` at `rel` that the caller's own walk has
    /// opened already (see [`fsys::open_entry`]).
    pub fn reconcile_found(
        &mut self,
        idx: usize,
        rel: &Path,
        found: Found<'_>,
        holders: &[Holder],
    ) -> Examined {
        if let Err(e) = self.root(idx) {
            return unreachable_entry(OpenError::Io(e.to_string()));
        }
        let place = Place {
            dir: found.dir,
            name: found.name,
            // Decided only if a label must be written (most events change nothing).
            dir_sealed: None,
        };
        self.entries
            .reconcile(idx, rel, Entry::file(found.node, place), holders)
    }

    /// Reconciles the node of an LV of lvm pool `idx` given its holders.
    ///
    /// Only this host's holders count: every host has its own node of an LV of a
    /// shared volume group, labeled for the guests that host runs (its label is not
    /// on the shared storage, as a dir pool's is).
    ///
    /// The node is opened `O_PATH | O_NOFOLLOW` and must be the block device udev
    /// named (same device number), so neither a `/dev/VG/LV` symlink nor a node
    /// replaced in between is ever labeled.
    pub fn reconcile_lv_node(&mut self, idx: usize, node: &LvNode, holders: &[Holder]) -> Examined {
        let node_fd = match fsys::open_node(&node.devnode) {
            Ok(n) => n,
            Err(e) => return unreachable_entry(e),
        };
        if node_fd.kind != NodeKind::BlockDevice || node_fd.rdev != node.devnum {
            return Examined {
                kind: node_fd.kind,
                current: None,
                desired: None,
                outcome: Outcome::Skipped(SkipReason::NotTheNode),
                file: None,
            };
        }
        let path = node.devnode.clone();
        let entry = Entry::direct(NodeKind::BlockDevice, node_fd.fd.as_fd());
        let here: Vec<Holder>;
        let holders = if holders.iter().any(|h| h.host.is_some()) {
            here = holders
                .iter()
                .filter(|h| h.host.is_none())
                .cloned()
                .collect();
            &here
        } else {
            holders
        };
        self.entries.reconcile(idx, &path, entry, holders)
    }

    /// Reconciles every volume of pool `idx` (for a dir pool, below `start`).
    ///
    /// `on_dir` is called for each directory before its entries are read (the agent
    /// adds its inotify watch there, so nothing created during the walk is missed);
    /// `on_entry` receives each result with the entry's path. A dir pool is walked on
    /// every core, so both may be called from several threads at once (relative to a dir pool's
    /// root; the node, e.g. `/dev/dm-3`, for an LV).
    pub fn scan(
        &mut self,
        idx: usize,
        start: &Path,
        index: &HolderIndex,
        on_dir: &(dyn Fn(&Path, BorrowedFd<'_>) + Sync),
        on_entry: &(dyn Fn(&Path, &Examined) + Sync),
    ) -> Result<(), PoolError> {
        let pool = &self.settings.pools[idx];
        let holders_of_pool = index.get(&pool.name);
        let holders = |key: &[u8]| {
            holders_of_pool
                .and_then(|m| m.get(key))
                .map_or(&[][..], Vec::as_slice)
        };
        let cross_fs = match &pool.kind {
            PoolKind::Dir(dir) => dir.cross_filesystems,
            PoolKind::Lvm(lvm) => {
                let nodes = devices::enumerate(&|vg| vg == lvm.vg).map_err(PoolError::Udev)?;
                for node in &nodes {
                    let ex = self.reconcile_lv_node(idx, node, holders(node.lv_uuid.as_bytes()));
                    on_entry(&node.devnode, &ex);
                }
                return Ok(());
            }
        };
        // Its own descriptor: the walk's threads hold it while `self` is borrowed.
        let root = rustix::io::dup(self.root(idx)?)
            .map_err(|e| PoolError::Root(fsys::RootError::Io(e.into())))?;
        // Files an older agent's crash left in its staging directory go back first.
        if self.apply == Apply::Write && start.as_os_str().is_empty() {
            legacy_staging::recover(root.as_fd(), cross_fs);
        }
        let (settings, apply) = (self.settings, self.apply);
        walk::walk(root.as_fd(), start, cross_fs, scan_threads(), &|visit| {
            let entries = EntryReconciler::new(settings, apply);
            match visit {
                Visit::Directory { rel, fd } => {
                    on_dir(rel, fd);
                    let ex =
                        entries.reconcile(idx, rel, Entry::direct(NodeKind::Directory, fd), &[]);
                    on_entry(rel, &ex);
                }
                Visit::Entry {
                    rel,
                    dir,
                    name,
                    dir_sealed,
                    node,
                } => {
                    let holders = holders(rel.as_os_str().as_bytes());
                    let place = Place {
                        dir,
                        name,
                        dir_sealed: Some(dir_sealed),
                    };
                    let ex = entries.reconcile(idx, rel, Entry::file(&node, place), holders);
                    on_entry(rel, &ex);
                }
                Visit::Error { rel, error } => on_entry(rel, &unreachable_entry(error)),
            }
        });
        Ok(())
    }
}
