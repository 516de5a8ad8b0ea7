//! What the full checks ask the system: does the pool directory exist (reached without
//! a symlink), do pools overlap through a bind mount, does file_contexts give defaults.

use std::path::{Component, Path, PathBuf};

use super::{Invalid, Pool, PoolKind};
use crate::decide::policy::{FileContexts, FileKind};
use crate::fsys;

/// Without a resting_label, file_contexts must give the pool's volumes a default.
pub(super) fn check_default_exists(
    name: &str,
    kind: &PoolKind,
    fc: &FileContexts,
) -> Result<(), Invalid> {
    let probes: Vec<(&str, PathBuf, FileKind)> = match kind {
        PoolKind::Dir(d) => vec![
            ("the directory", d.path.clone(), FileKind::Directory),
            ("a file in it", d.path.join("volume.img"), FileKind::Regular),
        ],
        PoolKind::Lvm(_) => vec![(
            "an LV node",
            PathBuf::from("/dev/dm-0"),
            FileKind::BlockDevice,
        )],
    };
    for (what, path, file_kind) in probes {
        if fc
            .lookup(&path, file_kind)
            .map_err(|e| invalid!("{e}"))?
            .is_none()
        {
            return Err(invalid!(
                "pool {name:?}: no resting_label is set and file_contexts has no default for {what} ({})",
                path.display()
            ));
        }
    }
    Ok(())
}

/// A pool path must be absolute, normal (no `.` or `..`), and an existing directory
/// reached without any symlink.
pub(super) fn check_pool_path(path: &Path) -> Result<(), Invalid> {
    if !path.is_absolute() {
        return Err(Invalid("is not absolute".into()));
    }
    if path
        .components()
        .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
    {
        return Err(Invalid("must not contain '.' or '..'".into()));
    }
    if path.parent().is_none() {
        return Err(Invalid("the root directory cannot be a pool".into()));
    }
    fsys::open_pool_root(path)
        .map(drop)
        .map_err(|e| invalid!("{e}"))
}

/// A directory's (device, inode) followed by its ancestors'.
type Ancestry = Vec<(u64, u64)>;

/// (device, inode) of a directory and of each of its ancestors up to `/`, found by
/// opening `..` from the directory itself: a bind mount shows the directory it mounts.
fn ancestry(path: &Path) -> Ancestry {
    use rustix::fs::{Mode, OFlags};
    let mut ids = Vec::new();
    let open = |at: &dyn std::os::fd::AsFd, name: &Path| {
        rustix::fs::openat(
            at.as_fd(),
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let Ok(mut fd) = open(&rustix::fs::CWD, path) else {
        return ids;
    };
    while let Ok(st) = rustix::fs::fstat(&fd) {
        let id = (st.st_dev, st.st_ino);
        if ids.last() == Some(&id) || ids.len() > 4096 {
            break; // `/` is its own parent
        }
        ids.push(id);
        match open(&fd, Path::new("..")) {
            Ok(parent) => fd = parent,
            Err(_) => break,
        }
    }
    ids
}

/// The nearest directory of `path` that exists (the state directory may not yet).
fn existing_dir(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.is_dir())
        .unwrap_or(Path::new("/"))
}

/// Pools that overlap through a bind mount (two paths, one directory tree), and a state
/// directory inside a pool reached that way, are refused like lexical overlaps.
pub(super) fn check_no_overlap_through_mounts(
    state_dir: &Path,
    pools: &[Pool],
) -> Result<(), Invalid> {
    let dirs: Vec<(&Pool, &Path, Ancestry)> = pools
        .iter()
        .filter_map(|p| Some((p, p.dir()?.path.as_path())))
        .map(|(p, path)| (p, path, ancestry(path)))
        .collect();
    for (i, (a, a_path, a_chain)) in dirs.iter().enumerate() {
        let Some(a_root) = a_chain.first() else {
            continue;
        };
        for (b, b_path, b_chain) in &dirs[i + 1..] {
            let Some(b_root) = b_chain.first() else {
                continue;
            };
            if b_chain.contains(a_root) || a_chain.contains(b_root) {
                return Err(invalid!(
                    "pool {:?} ({}) overlaps pool {:?} ({}) through a mount: both reach the same directory tree",
                    b.name,
                    b_path.display(),
                    a.name,
                    a_path.display()
                ));
            }
        }
        if ancestry(existing_dir(state_dir)).contains(a_root) {
            return Err(invalid!(
                "state_dir {} is inside pool {:?} ({}) through a mount: keep the state out of every pool",
                state_dir.display(),
                a.name,
                a_path.display()
            ));
        }
    }
    Ok(())
}
