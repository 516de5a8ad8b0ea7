//! The plan for one entry, as data: from what it is and who holds it, which label it
//! must carry ([`plan`]); from what was found on it, what to do ([`step`]). Pure: the
//! reconciler observes, asks these two, then applies the [`Step`].

use serde::Serialize;

use crate::decide::labels::{self, GuestContexts, Holder, Target};
use crate::fsys::NodeKind;

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
    /// In a directory others can write, on a filesystem where the agent cannot prove
    /// that the file's only link is in the pool (NFS, FUSE, cluster filesystems).
    Unprovable,
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
            SkipReason::Unprovable => "unprovable sole link",
            SkipReason::HeldByLibvirt => "held by libvirt",
        }
    }

    /// The short name, with what to do where the user can do something.
    pub fn explained(&self) -> String {
        match self {
            SkipReason::Unprovable => format!(
                "{}: its directory can be written by others, and on this filesystem the \
                 agent cannot prove that the file's only link is in the pool; make the \
                 directory root's and not group or other writable",
                self.as_str()
            ),
            other => other.as_str().to_owned(),
        }
    }
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
    if let (VolumeType::Files, NodeKind::Directory) = (volumes, kind) {
        return Ok(Target::Resting);
    }
    holdable(volumes, kind)?;
    labels::desired_label(holders, contexts).map_err(|_| SkipReason::Conflict)
}

/// Whether an entry of this kind is a volume a guest may hold (and that carries a
/// guest's label): a regular file with one link (another link may be a name outside
/// the pool), or an LV's block device node; never a symlink. Attaching and labeling
/// both ask here.
pub fn holdable(volumes: VolumeType, kind: NodeKind) -> Result<(), SkipReason> {
    match (volumes, kind) {
        (_, NodeKind::Symlink) => Err(SkipReason::Symlink),
        (VolumeType::Files, NodeKind::Regular { links }) if links > 1 => Err(SkipReason::HardLinks),
        (VolumeType::Files, NodeKind::Regular { .. })
        | (VolumeType::BlockDevices, NodeKind::BlockDevice) => Ok(()),
        (VolumeType::Files, _) => Err(SkipReason::NotRegularFile),
        (VolumeType::BlockDevices, _) => Err(SkipReason::NotTheNode),
    }
}

/// What observing an entry found that can stop a write. Read only when the label
/// differs (most entries are already right, and these cost a syscall each).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// libvirt's remember xattrs are set: it labeled the file for a running domain.
    pub held_by_libvirt: bool,
    /// The filesystem is mounted read-only (asked only when inspecting: a write says so).
    pub read_only: bool,
    /// Its directory is writable by others on a filesystem where the agent cannot prove
    /// that its only link is in the pool (asked only when inspecting, as `read_only`).
    pub unprovable: bool,
}

/// What the apply phase does with one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Its label is the desired one: touch nothing (no ctime bump, no IN_ATTRIB loop).
    Keep,
    /// Write the desired label.
    Write,
    /// Leave it, for this reason.
    Skip(SkipReason),
}

/// The step for an entry whose label `differs` (or not) from the desired one.
///
/// Never under a running VM: libvirt restores the label and removes its xattrs (an
/// ATTRIB event), and then the entry is labeled per the state again.
pub fn step(differs: bool, found: &Found) -> Step {
    match (differs, found) {
        (false, _) => Step::Keep,
        (
            true,
            Found {
                held_by_libvirt: true,
                ..
            },
        ) => Step::Skip(SkipReason::HeldByLibvirt),
        (
            true,
            Found {
                read_only: true, ..
            },
        ) => Step::Skip(SkipReason::ReadOnly),
        (
            true,
            Found {
                unprovable: true, ..
            },
        ) => Step::Skip(SkipReason::Unprovable),
        (true, _) => Step::Write,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::context::Pair;
    use crate::decide::labels::Mode;

    fn contexts() -> GuestContexts {
        crate::decide::labels::test_contexts()
    }

    #[test]
    fn plan_refuses_links_and_special_files() {
        let rw = [Holder {
            guest: "g".into(),
            pair: Pair::new(1, 2).unwrap(),
            mode: Mode::Rw,
            file: None,
            host: None,
            label: None,
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

    #[test]
    fn a_label_is_written_only_when_it_differs_and_libvirt_does_not_hold_it() {
        let none = Found::default();
        assert_eq!(step(false, &none), Step::Keep);
        assert_eq!(step(true, &none), Step::Write);
        let libvirt = Found {
            held_by_libvirt: true,
            ..Found::default()
        };
        assert_eq!(step(true, &libvirt), Step::Skip(SkipReason::HeldByLibvirt));
        assert_eq!(step(false, &libvirt), Step::Keep);
        let read_only = Found {
            read_only: true,
            ..Found::default()
        };
        assert_eq!(step(true, &read_only), Step::Skip(SkipReason::ReadOnly));
        let unprovable = Found {
            unprovable: true,
            ..Found::default()
        };
        assert_eq!(step(true, &unprovable), Step::Skip(SkipReason::Unprovable));
        assert_eq!(step(false, &unprovable), Step::Keep);
    }
}
