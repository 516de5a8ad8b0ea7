//! What reconciling did: per entry ([`Examined`], [`Outcome`]) and per pool ([`Summary`]).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::apply::filecon::LabelError;
use crate::decide::context::Context;
use crate::decide::labels::FileId;
use crate::decide::plan::SkipReason;
use crate::fsys::{NodeKind, OpenError};

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
    /// Something failed: what, and the system's message.
    Failed(Failure),
}

/// What failed while reconciling an entry (the system's message with it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Opening it.
    #[error("{0}")]
    Open(String),
    /// Reading or writing its label.
    #[error("{0}")]
    Label(String),
    /// Looking its default label up in file_contexts.
    #[error("{0}")]
    Lookup(String),
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

/// Why an entry does not carry its desired label after reconciling.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotLabeled {
    /// It was left alone.
    #[error("{}", .0.explained())]
    Skipped(SkipReason),
    /// It is gone.
    #[error("it no longer exists")]
    Missing,
    /// Opening it, or reading or writing its label, failed.
    #[error("{0}")]
    Failed(Failure),
}

impl Examined {
    /// The label it carries now that it was reconciled: the desired one, or why not.
    pub fn labeled(&self) -> Result<String, NotLabeled> {
        match &self.outcome {
            Outcome::Unchanged | Outcome::Relabeled => Ok(self
                .desired
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()),
            Outcome::Skipped(reason) => Err(NotLabeled::Skipped(reason.clone())),
            Outcome::Missing => Err(NotLabeled::Missing),
            Outcome::Failed(e) => Err(NotLabeled::Failed(e.clone())),
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

/// The outcome of a label read or write that failed.
pub(super) fn label_failure(e: LabelError) -> Outcome {
    match e {
        LabelError::Unsupported => Outcome::Skipped(SkipReason::Unsupported),
        LabelError::ReadOnly => Outcome::Skipped(SkipReason::ReadOnly),
        LabelError::Io(msg) => Outcome::Failed(Failure::Label(msg)),
    }
}

/// The result for an entry that could not be opened.
pub fn unreachable_entry(e: OpenError) -> Examined {
    let (kind, outcome) = match e {
        OpenError::Missing => (NodeKind::Other, Outcome::Missing),
        OpenError::Symlink => (NodeKind::Symlink, Outcome::Skipped(SkipReason::Symlink)),
        OpenError::OtherFilesystem => (
            NodeKind::Other,
            Outcome::Skipped(SkipReason::OtherFilesystem),
        ),
        OpenError::Io(msg) => (NodeKind::Other, Outcome::Failed(Failure::Open(msg))),
    };
    Examined {
        kind,
        current: None,
        desired: None,
        outcome,
        file: None,
    }
}
