//! The reconciler: observe a volume, decide its label, write it only when it differs.
//!
//! Observe: open the entry beneath the pool root and read its current label.
//! Decide: [`plan`] (pure) picks the target from the entry's kind and its holders;
//! the resting label comes from the pool or file_contexts.
//! Apply: write through the descriptor, only when current and desired differ, so a
//! correct file is never touched (no ctime bump, no IN_ATTRIB feedback loop).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::Serialize;

use std::cell::OnceCell;

use crate::config::{DirPool, Pool, PoolKind, Settings};
use crate::context::Context;
use crate::devices::{self, LvNode};
use crate::filecon::{self, LabelError};
use crate::fsys::{self, NodeKind, OpenError, Visit};
use crate::labels::{self, FileId, GuestContexts, Holder, Target};
use crate::policy::{FileContexts, FileKind};
use crate::sole_link::{self, Place, WriteError};
use crate::state::HolderIndex;

/// Why an entry of a pool is left alone.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A symlink: never labeled, never followed.
    Symlink,
    /// A regular file with more than one hard link: it may be a file outside the pool.
    HardLinks,
    /// A FIFO, socket or device node in a dir pool.
    NotRegularFile,
    /// A mount point below the pool (not crossed).
    OtherFilesystem,
    /// The filesystem stores no labels (EOPNOTSUPP).
    Unsupported,
    /// The filesystem is read-only (EROFS).
    ReadOnly,
    /// No resting label is configured and file_contexts has no default for it.
    NoDefault,
    /// Its attachments conflict (rw with another holder: only from a hand-edited state).
    Conflict,
    /// An LV's node is not the block device udev named (replaced in between).
    NotTheNode,
    /// The file was replaced or removed while it was being labeled.
    Changed,
    /// libvirt labeled it for a running domain (its remember xattrs are set): it
    /// restores the label itself when the domain stops.
    HeldByLibvirt,
}

impl SkipReason {
    /// A short name for summaries and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            SkipReason::Symlink => "symlink",
            SkipReason::HardLinks => "hard links",
            SkipReason::NotRegularFile => "not a regular file",
            SkipReason::OtherFilesystem => "other filesystem",
            SkipReason::Unsupported => "EOPNOTSUPP",
            SkipReason::ReadOnly => "EROFS",
            SkipReason::NoDefault => "no default label",
            SkipReason::Conflict => "conflicting attachments",
            SkipReason::NotTheNode => "not the LV's block device",
            SkipReason::Changed => "changed while labeling",
            SkipReason::HeldByLibvirt => "held by libvirt",
        }
    }
}

/// What reconciling one entry did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its label was already the desired one.
    Unchanged,
    /// Its label was (or, when inspecting, would be) rewritten.
    Relabeled,
    /// It was left alone, for this reason.
    Skipped(SkipReason),
    /// It does not exist.
    Missing,
    /// Something failed; the message says what.
    Failed(String),
}

/// Everything known about one entry after reconciling or inspecting it.
#[derive(Clone, Debug)]
pub struct Examined {
    /// What the entry is.
    pub kind: NodeKind,
    /// Its label before (raw text; `None` when it had none).
    pub current: Option<String>,
    /// The label it must carry, when one could be decided.
    pub desired: Option<Context>,
    /// What happened.
    pub outcome: Outcome,
    /// Which file it was (regular files of dir pools).
    pub file: Option<FileId>,
}

/// Whether the reconciler writes labels or only reports what it would write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Apply {
    /// Write labels that differ.
    Write,
    /// Write nothing (status).
    Inspect,
}

/// What the volumes of a pool are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeType {
    /// Regular files (dir pools).
    Files,
    /// Block device nodes (lvm pools).
    BlockDevices,
}

/// The pure decision: what an entry of this kind with these holders must carry.
pub fn plan(
    volumes: VolumeType,
    kind: NodeKind,
    holders: &[Holder],
    contexts: &GuestContexts,
) -> Result<Target, SkipReason> {
    let decide = || labels::desired_label(holders, contexts).map_err(|_| SkipReason::Conflict);
    match (volumes, kind) {
        (_, NodeKind::Symlink) => Err(SkipReason::Symlink),
        (VolumeType::Files, NodeKind::Directory) => Ok(Target::Resting),
        (VolumeType::Files, NodeKind::Regular { links }) if links > 1 => Err(SkipReason::HardLinks),
        (VolumeType::Files, NodeKind::Regular { .. }) => decide(),
        (VolumeType::Files, _) => Err(SkipReason::NotRegularFile),
        (VolumeType::BlockDevices, NodeKind::BlockDevice) => decide(),
        (VolumeType::BlockDevices, _) => Err(SkipReason::NotTheNode),
    }
}

/// Counts of what a scan did, per pool.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Regular files and other non-directory entries examined.
    pub entries: u64,
    /// Directories examined.
    pub directories: u64,
    /// Labels written.
    pub relabeled: u64,
    /// Labels already right.
    pub unchanged: u64,
    /// Entries left alone, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Entries that failed.
    pub failed: u64,
}

impl Summary {
    /// Counts one examined entry.
    pub fn add(&mut self, ex: &Examined) {
        if ex.kind == NodeKind::Directory {
            self.directories += 1;
        } else {
            self.entries += 1;
        }
        match &ex.outcome {
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Relabeled => self.relabeled += 1,
            Outcome::Skipped(r) => *self.skipped.entry(r.as_str()).or_default() += 1,
            Outcome::Missing => {}
            Outcome::Failed(_) => self.failed += 1,
        }
    }

    /// Adds another summary's counts.
    pub fn merge(&mut self, other: &Summary) {
        self.entries += other.entries;
        self.directories += other.directories;
        self.relabeled += other.relabeled;
        self.unchanged += other.unchanged;
        self.failed += other.failed;
        for (k, v) in &other.skipped {
            *self.skipped.entry(k).or_default() += v;
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} entries, {} directories: {} relabeled, {} unchanged, {} failed",
            self.entries, self.directories, self.relabeled, self.unchanged, self.failed
        )?;
        let skipped: u64 = self.skipped.values().sum();
        write!(f, ", {skipped} skipped")?;
        if skipped > 0 {
            let parts: Vec<String> = self
                .skipped
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

thread_local! {
    /// The file_contexts database this thread loaded last: loading it takes ~10 ms, and
    /// the agent's API threads reconcile one volume per request.
    static FILE_CONTEXTS: std::cell::RefCell<Option<(Option<PathBuf>, Rc<FileContexts>)>> =
        const { std::cell::RefCell::new(None) };
}

/// This thread's handle on the file_contexts at `path`, loaded once.
fn shared_file_contexts(path: Option<&Path>) -> Result<Rc<FileContexts>, String> {
    FILE_CONTEXTS.with(|cell| {
        let mut cached = cell.borrow_mut();
        if let Some((p, fc)) = cached.as_ref()
            && p.as_deref() == path
        {
            return Ok(fc.clone());
        }
        let fc = Rc::new(FileContexts::open(path)?);
        *cached = Some((path.map(Path::to_path_buf), fc.clone()));
        Ok(fc)
    })
}

/// Labels the entries of the configured pools. Holds the libselinux handle, so it
/// stays on the thread that made it.
pub struct Reconciler<'s> {
    settings: &'s Settings,
    labeler: Labeler<'s>,
    roots: Vec<Option<OwnedFd>>,
    apply: Apply,
}

/// Decides and writes the label of one opened entry. Cheap to make: scan workers make
/// one per entry, on their own threads.
struct Labeler<'s> {
    settings: &'s Settings,
    apply: Apply,
    /// Loaded on first use: the udev hook labeling an attached LV never needs it.
    file_contexts: OnceCell<Result<Rc<FileContexts>, String>>,
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
            labeler: Labeler::new(settings, apply),
            roots: settings.pools.iter().map(|_| None).collect(),
            apply,
        }
    }

    /// The settings it works from.
    pub fn settings(&self) -> &'s Settings {
        self.settings
    }

    fn dir_pool(&self, idx: usize) -> Result<&'s DirPool, String> {
        let pool = &self.settings.pools[idx];
        pool.dir()
            .ok_or_else(|| format!("pool {} is not a directory pool", pool.name))
    }

    /// The root descriptor of dir pool `idx`, opened on first use.
    pub fn root(&mut self, idx: usize) -> Result<BorrowedFd<'_>, String> {
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
            Err(e) => return unreachable_entry(OpenError::Io(e)),
        };
        if let Err(e) = self.root(idx) {
            return unreachable_entry(OpenError::Io(e));
        }
        // Borrowed field by field: the root and the labeler are used together.
        let root = self.roots[idx].as_ref().expect("opened above").as_fd();
        if rel.as_os_str().is_empty() {
            return match fsys::open_dir_beneath(root, rel, cross_fs) {
                Ok(fd) => {
                    let dir = Entry::direct(NodeKind::Directory, fd.as_fd());
                    self.labeler.reconcile_node(idx, rel, dir, holders)
                }
                Err(e) => unreachable_entry(e),
            };
        }
        match fsys::open_beneath(root, rel, cross_fs) {
            Ok(opened) => {
                let place = Place {
                    root,
                    dir: opened.dir.as_fd(),
                    name: &opened.name,
                    rel,
                    // Decided only if a label must be written (most events change nothing).
                    dir_sealed: None,
                };
                let entry = Entry::file(&opened.node, place);
                self.labeler.reconcile_node(idx, rel, entry, holders)
            }
            Err(e) => unreachable_entry(e),
        }
    }

    /// Reconciles the node of an LV of lvm pool `idx` given its holders.
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
        self.labeler.reconcile_node(idx, &path, entry, holders)
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
    ) -> Result<(), String> {
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
                let nodes = devices::enumerate(&|vg| vg == lvm.vg)
                    .map_err(|e| format!("udev enumeration: {e}"))?;
                for node in &nodes {
                    let ex = self.reconcile_lv_node(idx, node, holders(node.lv_uuid.as_bytes()));
                    on_entry(&node.devnode, &ex);
                }
                return Ok(());
            }
        };
        let root = match self.root(idx) {
            Ok(fd) => rustix::io::dup(fd).map_err(|e| e.to_string())?,
            Err(e) => return Err(e),
        };
        // Files a crash left in the staging directory go back to their names first.
        if self.apply == Apply::Write && start.as_os_str().is_empty() {
            sole_link::recover(root.as_fd(), cross_fs);
        }
        let (settings, apply) = (self.settings, self.apply);
        fsys::walk(root.as_fd(), start, cross_fs, scan_threads(), &|visit| {
            let labeler = Labeler::new(settings, apply);
            match visit {
                Visit::Directory { rel, fd } => {
                    on_dir(rel, fd);
                    let ex = labeler.reconcile_node(
                        idx,
                        rel,
                        Entry::direct(NodeKind::Directory, fd),
                        &[],
                    );
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
                        root: root.as_fd(),
                        dir,
                        name,
                        rel,
                        dir_sealed: Some(dir_sealed),
                    };
                    let ex = labeler.reconcile_node(idx, rel, Entry::file(&node, place), holders);
                    on_entry(rel, &ex);
                }
                Visit::Error { rel, error } => on_entry(rel, &unreachable_entry(error)),
            }
        });
        Ok(())
    }
}

impl<'s> Labeler<'s> {
    fn new(settings: &'s Settings, apply: Apply) -> Self {
        Labeler {
            settings,
            apply,
            file_contexts: OnceCell::new(),
        }
    }

    fn file_contexts(&self) -> Result<&FileContexts, String> {
        self.file_contexts
            .get_or_init(|| shared_file_contexts(self.settings.selinux.file_contexts.as_deref()))
            .as_ref()
            .map(|fc| &**fc)
            .map_err(Clone::clone)
    }

    /// The label of an entry no guest holds. `path` is relative to a dir pool's
    /// root, or an LV node's absolute path.
    fn resting_label(&self, pool: &Pool, path: &Path, kind: NodeKind) -> Result<Context, Outcome> {
        if let Some(label) = &pool.resting_label {
            return Ok(label.clone());
        }
        let file_kind = match kind {
            NodeKind::Directory => FileKind::Directory,
            NodeKind::BlockDevice => FileKind::BlockDevice,
            _ => FileKind::Regular,
        };
        let full = || match &pool.kind {
            PoolKind::Dir(dir) if path.as_os_str().is_empty() => dir.path.clone(),
            PoolKind::Dir(dir) => dir.path.join(path),
            PoolKind::Lvm(_) => path.to_path_buf(),
        };
        let lookup = || self.file_contexts()?.lookup(&full(), file_kind);
        // Below a dir pool whose file_contexts specs cannot tell names apart, one lookup
        // per file type stands for every file.
        let found = match &pool.kind {
            PoolKind::Dir(dir) if !path.as_os_str().is_empty() => pool
                .defaults
                .shared(|| self.file_contexts_base(), &dir.path, file_kind, lookup)
                .unwrap_or_else(lookup),
            _ => lookup(),
        };
        match found {
            Ok(Some(label)) => Ok(label),
            Ok(None) => Err(Outcome::Skipped(SkipReason::NoDefault)),
            Err(e) => Err(Outcome::Failed(e)),
        }
    }

    /// The file_contexts file lookups come from (its sources tell whether a pool is uniform).
    fn file_contexts_base(&self) -> PathBuf {
        self.settings
            .selinux
            .file_contexts
            .clone()
            .unwrap_or_else(|| {
                crate::policy::policy_root()
                    .unwrap_or_default()
                    .join("contexts/files/file_contexts")
            })
    }

    /// Decides and, when it differs, writes the label of one opened entry. A regular
    /// file of a dir pool comes with its place, and is written by the sole-link
    /// protocol ([`sole_link`]); directories and LV nodes are written through the fd.
    /// Holders count only if they attached this very file.
    fn reconcile_node(
        &self,
        idx: usize,
        path: &Path,
        entry: Entry<'_>,
        holders: &[Holder],
    ) -> Examined {
        let Entry {
            kind,
            fd,
            place,
            file,
        } = entry;
        let current_holders;
        let holders = if holders.iter().all(|h| h.holds(file)) {
            holders
        } else {
            current_holders = holders
                .iter()
                .filter(|h| h.holds(file))
                .cloned()
                .collect::<Vec<_>>();
            &current_holders
        };
        let pool = &self.settings.pools[idx];
        let mut ex = Examined {
            kind,
            current: None,
            desired: None,
            outcome: Outcome::Unchanged,
            file,
        };
        let volumes = match pool.kind {
            PoolKind::Dir(_) => VolumeType::Files,
            PoolKind::Lvm(_) => VolumeType::BlockDevices,
        };
        let desired = match plan(volumes, kind, holders, &self.settings.selinux.contexts) {
            Err(reason) => {
                ex.outcome = Outcome::Skipped(reason);
                return ex;
            }
            Ok(Target::Label(label)) => label,
            Ok(Target::Resting) => match self.resting_label(pool, path, kind) {
                Ok(label) => label,
                Err(outcome) => {
                    ex.outcome = outcome;
                    return ex;
                }
            },
        };
        let current = match filecon::read(fd) {
            Ok(current) => current,
            Err(e) => {
                ex.desired = Some(desired);
                ex.outcome = label_failure(e);
                return ex;
            }
        };
        ex.current = current.map(|c| String::from_utf8_lossy(&c).into_owned());
        let differs = ex.current.as_deref() != Some(desired.as_str());
        ex.outcome = match (differs, self.apply) {
            (false, _) => Outcome::Unchanged,
            // Never under a running VM: libvirt restores it and removes its xattrs (an
            // ATTRIB event), and then it is labeled per the state again. A file with no
            // label at all is not libvirt's (it labels what it holds): no xattr read.
            (true, _) if ex.current.is_some() && filecon::held_by_libvirt(fd) => {
                Outcome::Skipped(SkipReason::HeldByLibvirt)
            }
            // Inspecting writes nothing, but says when writing could not work either.
            (true, Apply::Inspect) if read_only_fs(fd) => Outcome::Skipped(SkipReason::ReadOnly),
            (true, Apply::Inspect) => Outcome::Relabeled,
            (true, Apply::Write) => match (kind, place) {
                (NodeKind::Regular { .. }, Some(place)) => {
                    match sole_link::write(place, fd, &desired) {
                        Ok(()) => Outcome::Relabeled,
                        Err(WriteError::HardLinks) => Outcome::Skipped(SkipReason::HardLinks),
                        Err(WriteError::Changed) => Outcome::Skipped(SkipReason::Changed),
                        Err(WriteError::Label(e)) => label_failure(e),
                        Err(e @ WriteError::Staging(_)) => Outcome::Failed(e.to_string()),
                    }
                }
                // A regular file reached any other way is never written.
                (NodeKind::Regular { .. }, None) => Outcome::Skipped(SkipReason::Changed),
                _ => match filecon::write(fd, &desired) {
                    Ok(()) => Outcome::Relabeled,
                    Err(e) => label_failure(e),
                },
            },
        };
        ex.desired = Some(desired);
        ex
    }
}

/// Whether the filesystem behind `fd` is mounted read-only.
fn read_only_fs(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstatvfs(fd)
        .is_ok_and(|st| st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

fn label_failure(e: LabelError) -> Outcome {
    match e {
        LabelError::Unsupported => Outcome::Skipped(SkipReason::Unsupported),
        LabelError::ReadOnly => Outcome::Skipped(SkipReason::ReadOnly),
        LabelError::Io(msg) => Outcome::Failed(msg),
    }
}

/// The result for an entry that could not be opened.
fn unreachable_entry(e: OpenError) -> Examined {
    let (kind, outcome) = match e {
        OpenError::Missing => (NodeKind::Other, Outcome::Missing),
        OpenError::Symlink => (NodeKind::Symlink, Outcome::Skipped(SkipReason::Symlink)),
        OpenError::OtherFilesystem => (
            NodeKind::Other,
            Outcome::Skipped(SkipReason::OtherFilesystem),
        ),
        OpenError::Io(msg) => (NodeKind::Other, Outcome::Failed(msg)),
    };
    Examined {
        kind,
        current: None,
        desired: None,
        outcome,
        file: None,
    }
}

/// One opened entry, as the reconciler receives it.
struct Entry<'a> {
    kind: NodeKind,
    fd: BorrowedFd<'a>,
    /// Where a regular file of a dir pool was found (its label is written by name there).
    place: Option<Place<'a>>,
    file: Option<FileId>,
}

impl<'a> Entry<'a> {
    /// A directory or an LV node: labeled through its descriptor.
    fn direct(kind: NodeKind, fd: BorrowedFd<'a>) -> Self {
        Entry {
            kind,
            fd,
            place: None,
            file: None,
        }
    }

    /// An entry of a dir pool found at `place`.
    fn file(node: &'a fsys::Node, place: Place<'a>) -> Self {
        Entry {
            kind: node.kind,
            fd: node.fd.as_fd(),
            place: Some(place),
            file: matches!(node.kind, NodeKind::Regular { .. }).then_some(node.file),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Pair;
    use crate::labels::Mode;

    fn contexts() -> GuestContexts {
        GuestContexts {
            image: "system_u:object_r:svirt_image_t:s0".parse().unwrap(),
            content: "system_u:object_r:virt_content_t:s0".parse().unwrap(),
            process: "system_u:system_r:svirt_t:s0".parse().unwrap(),
        }
    }

    #[test]
    fn plan_refuses_links_and_special_files() {
        let rw = [Holder {
            guest: "g".into(),
            pair: Pair::new(1, 2).unwrap(),
            mode: Mode::Rw,
            file: None,
        }];
        let c = contexts();
        let files = VolumeType::Files;
        assert_eq!(
            plan(files, NodeKind::Symlink, &rw, &c),
            Err(SkipReason::Symlink)
        );
        assert_eq!(
            plan(files, NodeKind::Regular { links: 2 }, &rw, &c),
            Err(SkipReason::HardLinks)
        );
        assert_eq!(
            plan(files, NodeKind::Other, &[], &c),
            Err(SkipReason::NotRegularFile)
        );
        assert_eq!(
            plan(files, NodeKind::BlockDevice, &[], &c),
            Err(SkipReason::NotRegularFile)
        );
        assert_eq!(
            plan(files, NodeKind::Directory, &rw, &c),
            Ok(Target::Resting)
        );
        assert_eq!(
            plan(files, NodeKind::Regular { links: 1 }, &rw, &c),
            Ok(Target::Label(
                "system_u:object_r:svirt_image_t:s0:c1,c2".parse().unwrap()
            ))
        );
    }

    #[test]
    fn lvm_pools_label_only_block_devices() {
        let c = contexts();
        let blocks = VolumeType::BlockDevices;
        assert_eq!(
            plan(blocks, NodeKind::BlockDevice, &[], &c),
            Ok(Target::Resting)
        );
        assert_eq!(
            plan(blocks, NodeKind::Symlink, &[], &c),
            Err(SkipReason::Symlink)
        );
        assert_eq!(
            plan(blocks, NodeKind::Regular { links: 1 }, &[], &c),
            Err(SkipReason::NotTheNode)
        );
    }
}
