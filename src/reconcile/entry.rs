//! One opened entry through observe → decide → apply: read its label, ask
//! [`plan`](crate::decide::plan) what it must carry and what to do, do exactly that.

use std::cell::OnceCell;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::Arc;

use super::Apply;
use super::outcome::{Examined, Failure, Outcome, label_failure};
use crate::apply::filecon;
use crate::apply::sole_link::{self, Place, WriteError};
use crate::config::{Pool, PoolKind, Settings};
use crate::decide::context::Context;
use crate::decide::labels::{FileId, Holder, Target};
use crate::decide::plan::{self, Found, SkipReason, Step, VolumeType};
use crate::decide::policy::{self, FileContexts, FileKind, PolicyError};
use crate::fsys::{self, NodeKind};

/// One opened entry, as the reconciler receives it.
pub(super) struct Entry<'a> {
    kind: NodeKind,
    fd: BorrowedFd<'a>,
    /// Where a regular file of a dir pool was found (its label is written by name there).
    place: Option<Place<'a>>,
    file: Option<FileId>,
}

impl<'a> Entry<'a> {
    /// A directory or an LV node: labeled through its descriptor.
    pub(super) fn direct(kind: NodeKind, fd: BorrowedFd<'a>) -> Self {
        Entry {
            kind,
            fd,
            place: None,
            file: None,
        }
    }

    /// An entry of a dir pool found at `place`.
    pub(super) fn file(node: &'a fsys::Node, place: Place<'a>) -> Self {
        Entry {
            kind: node.kind,
            fd: node.fd.as_fd(),
            place: Some(place),
            file: matches!(node.kind, NodeKind::Regular { .. }).then_some(node.file),
        }
    }
}

/// Reconciles opened entries of the configured pools. Cheap to make: scan workers
/// make one per entry, on their own threads.
pub(super) struct EntryReconciler<'s> {
    settings: &'s Settings,
    apply: Apply,
    /// Loaded on first use: the udev hook labeling an attached LV never needs it.
    file_contexts: OnceCell<Result<Arc<FileContexts>, PolicyError>>,
}

impl<'s> EntryReconciler<'s> {
    pub(super) fn new(settings: &'s Settings, apply: Apply) -> Self {
        EntryReconciler {
            settings,
            apply,
            file_contexts: OnceCell::new(),
        }
    }

    fn file_contexts(&self) -> Result<&FileContexts, PolicyError> {
        self.file_contexts
            .get_or_init(|| FileContexts::shared(self.settings.selinux.file_contexts.as_deref()))
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
        let configured = self.settings.selinux.file_contexts.as_deref();
        let found = match &pool.kind {
            PoolKind::Dir(dir) if !path.as_os_str().is_empty() => pool
                .defaults
                .shared(
                    || policy::file_contexts_path(configured),
                    &dir.path,
                    file_kind,
                    lookup,
                )
                .unwrap_or_else(lookup),
            _ => lookup(),
        };
        match found {
            Ok(Some(label)) => Ok(label),
            Ok(None) => Err(Outcome::Skipped(SkipReason::NoDefault)),
            Err(e) => Err(Outcome::Failed(Failure::Lookup(e.to_string()))),
        }
    }

    /// Decide: the label this entry must carry. Holders count only if they attached
    /// this very file.
    fn desired(
        &self,
        idx: usize,
        path: &Path,
        entry: &Entry<'_>,
        holders: &[Holder],
    ) -> Result<Context, Outcome> {
        let pool = &self.settings.pools[idx];
        let volumes = match pool.kind {
            PoolKind::Dir(_) => VolumeType::Files,
            PoolKind::Lvm(_) => VolumeType::BlockDevices,
        };
        let contexts = &self.settings.selinux.contexts;
        let target = if holders.iter().all(|h| h.holds(entry.file)) {
            plan::plan(volumes, entry.kind, holders, contexts)
        } else {
            let current: Vec<Holder> = holders
                .iter()
                .filter(|h| h.holds(entry.file))
                .cloned()
                .collect();
            plan::plan(volumes, entry.kind, &current, contexts)
        };
        match target.map_err(Outcome::Skipped)? {
            Target::Label(label) => Ok(label),
            Target::Resting => self.resting_label(pool, path, entry.kind),
        }
    }

    /// Observes, decides and applies the label of one opened entry. A regular file of a
    /// dir pool comes with its place and is written by the sole-link protocol
    /// ([`sole_link`]); directories and LV nodes are written through the descriptor.
    pub(super) fn reconcile(
        &self,
        idx: usize,
        path: &Path,
        entry: Entry<'_>,
        holders: &[Holder],
    ) -> Examined {
        let mut ex = Examined {
            kind: entry.kind,
            current: None,
            desired: None,
            outcome: Outcome::Unchanged,
            file: entry.file,
        };
        let desired = match self.desired(idx, path, &entry, holders) {
            Ok(label) => label,
            Err(outcome) => {
                ex.outcome = outcome;
                return ex;
            }
        };
        // Observe what the step depends on.
        let current =
            filecon::read(entry.fd).map(|c| c.map(|c| String::from_utf8_lossy(&c).into_owned()));
        ex.current = match current {
            Ok(current) => current,
            Err(e) => {
                ex.desired = Some(desired);
                ex.outcome = label_failure(e);
                return ex;
            }
        };
        let differs = ex.current.as_deref() != Some(desired.as_str());
        let found = Found {
            // A file with no label at all is not libvirt's (it labels what it holds).
            held_by_libvirt: differs && ex.current.is_some() && filecon::held_by_libvirt(entry.fd),
            // Inspecting writes nothing, but says when writing could not work either.
            read_only: differs && self.apply == Apply::Inspect && read_only_fs(entry.fd),
            unprovable: differs
                && self.apply == Apply::Inspect
                && matches!(entry.kind, NodeKind::Regular { .. })
                && entry
                    .place
                    .is_some_and(|place| sole_link::provable(place, entry.fd).is_err()),
        };
        ex.outcome = match (plan::step(differs, &found), self.apply) {
            (Step::Keep, _) => Outcome::Unchanged,
            (Step::Skip(reason), _) => Outcome::Skipped(reason),
            (Step::Write, Apply::Inspect) => Outcome::Relabeled,
            (Step::Write, Apply::Write) => write(&entry, &desired),
        };
        ex.desired = Some(desired);
        ex
    }
}

/// Apply: writes `label` on the entry, by the protocol its kind needs.
fn write(entry: &Entry<'_>, label: &Context) -> Outcome {
    match (entry.kind, entry.place) {
        (NodeKind::Regular { .. }, Some(place)) => match sole_link::write(place, entry.fd, label) {
            Ok(()) => Outcome::Relabeled,
            Err(WriteError::HardLinks) => Outcome::Skipped(SkipReason::HardLinks),
            Err(WriteError::Changed) => Outcome::Skipped(SkipReason::Changed),
            Err(WriteError::Label(e)) => label_failure(e),
            Err(WriteError::Unprovable) => Outcome::Skipped(SkipReason::Unprovable),
        },
        // A regular file reached any other way is never written.
        (NodeKind::Regular { .. }, None) => Outcome::Skipped(SkipReason::Changed),
        _ => match filecon::write(entry.fd, label) {
            Ok(()) => Outcome::Relabeled,
            Err(e) => label_failure(e),
        },
    }
}

/// Whether the filesystem behind `fd` is mounted read-only.
fn read_only_fs(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstatvfs(fd)
        .is_ok_and(|st| st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}
