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
use std::path::Path;

use serde::Serialize;

use crate::config::{Pool, Settings};
use crate::context::Context;
use crate::filecon::{self, LabelError};
use crate::fsys::{self, Node, NodeKind, OpenError, Visit};
use crate::labels::{self, GuestContexts, Holder, Target};
use crate::policy::{FileContexts, FileKind};
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
}

/// Whether the reconciler writes labels or only reports what it would write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Apply {
    /// Write labels that differ.
    Write,
    /// Write nothing (status).
    Inspect,
}

/// The pure decision: what an entry of this kind with these holders must carry.
pub fn plan(
    kind: NodeKind,
    holders: &[Holder],
    contexts: &GuestContexts,
) -> Result<Target, SkipReason> {
    match kind {
        NodeKind::Symlink => Err(SkipReason::Symlink),
        NodeKind::BlockDevice | NodeKind::Other => Err(SkipReason::NotRegularFile),
        NodeKind::Directory => Ok(Target::Resting),
        NodeKind::Regular { links } if links > 1 => Err(SkipReason::HardLinks),
        NodeKind::Regular { .. } => {
            labels::desired_label(holders, contexts).map_err(|_| SkipReason::Conflict)
        }
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

/// Labels the entries of the configured pools. Holds the libselinux handle, so it
/// stays on the thread that made it.
pub struct Reconciler<'s> {
    settings: &'s Settings,
    file_contexts: FileContexts,
    roots: Vec<Option<OwnedFd>>,
    apply: Apply,
}

impl<'s> Reconciler<'s> {
    /// A reconciler for `settings`, writing labels or only inspecting them.
    pub fn new(settings: &'s Settings, apply: Apply) -> Result<Self, String> {
        Ok(Reconciler {
            settings,
            file_contexts: FileContexts::open(settings.selinux.file_contexts.as_deref())?,
            roots: settings.pools.iter().map(|_| None).collect(),
            apply,
        })
    }

    /// The settings it works from.
    pub fn settings(&self) -> &'s Settings {
        self.settings
    }

    /// The root descriptor of pool `idx`, opened on first use.
    pub fn root(&mut self, idx: usize) -> Result<BorrowedFd<'_>, String> {
        if self.roots[idx].is_none() {
            self.roots[idx] = Some(fsys::open_pool_root(&self.settings.pools[idx].path)?);
        }
        Ok(self.roots[idx].as_ref().expect("just opened").as_fd())
    }

    /// Whether pool `idx`'s open root is still the directory at the pool's path.
    ///
    /// False once it was removed or replaced: inotify reports neither while we hold
    /// the old directory open (no IN_DELETE_SELF until the last reference goes).
    pub fn root_is_current(&self, idx: usize) -> bool {
        let Some(fd) = &self.roots[idx] else {
            return false;
        };
        let path = &self.settings.pools[idx].path;
        match (
            rustix::fs::fstat(fd),
            rustix::fs::statat(rustix::fs::CWD, path, rustix::fs::AtFlags::SYMLINK_NOFOLLOW),
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

    /// Reconciles the entry at `rel` in pool `idx` given its holders.
    pub fn reconcile_path(&mut self, idx: usize, rel: &Path, holders: &[Holder]) -> Examined {
        let cross_fs = self.settings.pools[idx].cross_filesystems;
        let opened = self.root(idx).map_err(OpenError::Io).and_then(|root| {
            if rel.as_os_str().is_empty() {
                fsys::open_dir_beneath(root, rel, cross_fs).map(|fd| Node {
                    fd,
                    kind: NodeKind::Directory,
                    dev: 0,
                })
            } else {
                fsys::open_beneath(root, rel, cross_fs)
            }
        });
        match opened {
            Ok(node) => self.reconcile_node(idx, rel, node.kind, node.fd.as_fd(), holders),
            Err(e) => unreachable_entry(e),
        }
    }

    /// Walks pool `idx` below `start` and reconciles every entry.
    ///
    /// `on_dir` is called for each directory before its entries are read (the agent
    /// adds its inotify watch there, so nothing created during the walk is missed);
    /// `on_entry` receives each result.
    pub fn scan(
        &mut self,
        idx: usize,
        start: &Path,
        index: &HolderIndex,
        on_dir: &mut dyn FnMut(&Path, BorrowedFd<'_>),
        on_entry: &mut dyn FnMut(&Path, &Examined),
    ) -> Result<(), String> {
        let pool = &self.settings.pools[idx];
        let holders_of_pool = index.get(&pool.name);
        let root = match self.root(idx) {
            Ok(fd) => rustix::io::dup(fd).map_err(|e| e.to_string())?,
            Err(e) => return Err(e),
        };
        let cross_fs = pool.cross_filesystems;
        fsys::walk(root.as_fd(), start, cross_fs, &mut |visit| match visit {
            Visit::Directory { rel, fd } => {
                on_dir(rel, fd);
                let ex = self.reconcile_node(idx, rel, NodeKind::Directory, fd, &[]);
                on_entry(rel, &ex);
            }
            Visit::Entry { rel, node } => {
                let holders = holders_of_pool
                    .and_then(|m| m.get(rel.as_os_str().as_bytes()))
                    .map_or(&[][..], Vec::as_slice);
                let ex = self.reconcile_node(idx, rel, node.kind, node.fd.as_fd(), holders);
                on_entry(rel, &ex);
            }
            Visit::Error { rel, error } => on_entry(rel, &unreachable_entry(error)),
        });
        Ok(())
    }

    fn resting_label(&self, pool: &Pool, rel: &Path, kind: NodeKind) -> Result<Context, Outcome> {
        if let Some(label) = &pool.resting_label {
            return Ok(label.clone());
        }
        let file_kind = match kind {
            NodeKind::Directory => FileKind::Directory,
            NodeKind::BlockDevice => FileKind::BlockDevice,
            _ => FileKind::Regular,
        };
        let path = if rel.as_os_str().is_empty() {
            pool.path.clone()
        } else {
            pool.path.join(rel)
        };
        match self.file_contexts.lookup(&path, file_kind) {
            Ok(Some(label)) => Ok(label),
            Ok(None) => Err(Outcome::Skipped(SkipReason::NoDefault)),
            Err(e) => Err(Outcome::Failed(e)),
        }
    }

    fn reconcile_node(
        &self,
        idx: usize,
        rel: &Path,
        kind: NodeKind,
        fd: BorrowedFd<'_>,
        holders: &[Holder],
    ) -> Examined {
        let pool = &self.settings.pools[idx];
        let mut ex = Examined {
            kind,
            current: None,
            desired: None,
            outcome: Outcome::Unchanged,
        };
        let desired = match plan(kind, holders, &self.settings.selinux.contexts) {
            Err(reason) => {
                ex.outcome = Outcome::Skipped(reason);
                return ex;
            }
            Ok(Target::Label(label)) => label,
            Ok(Target::Resting) => match self.resting_label(pool, rel, kind) {
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
            (true, Apply::Inspect) => Outcome::Relabeled,
            (true, Apply::Write) => match filecon::write(fd, &desired) {
                Ok(()) => Outcome::Relabeled,
                Err(e) => label_failure(e),
            },
        };
        ex.desired = Some(desired);
        ex
    }
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
        }];
        let c = contexts();
        assert_eq!(plan(NodeKind::Symlink, &rw, &c), Err(SkipReason::Symlink));
        assert_eq!(
            plan(NodeKind::Regular { links: 2 }, &rw, &c),
            Err(SkipReason::HardLinks)
        );
        assert_eq!(
            plan(NodeKind::Other, &[], &c),
            Err(SkipReason::NotRegularFile)
        );
        assert_eq!(plan(NodeKind::Directory, &rw, &c), Ok(Target::Resting));
        assert_eq!(
            plan(NodeKind::Regular { links: 1 }, &rw, &c),
            Ok(Target::Label(
                "system_u:object_r:svirt_image_t:s0:c1,c2".parse().unwrap()
            ))
        );
    }
}
