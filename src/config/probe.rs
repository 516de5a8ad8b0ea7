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

/// Where a directory is inside its filesystem, whichever mount shows it: the
/// filesystem's device (as the mount table names it) and the directory's path from
/// that filesystem's root. Two paths reach one tree exactly when these nest, through
/// any number of bind mounts (a bind mount of a subdirectory included, which walking
/// `..` from the mount cannot see: `..` of a mount's root is the mount point's parent).
#[derive(Debug, PartialEq, Eq)]
struct FsLocation {
    device: String,
    path: PathBuf,
}

impl FsLocation {
    /// `None` when the directory does not exist or the mount table cannot say.
    fn of(path: &Path) -> Option<FsLocation> {
        let real = std::fs::canonicalize(path).ok()?;
        let stx = rustix::fs::statx(
            rustix::fs::CWD,
            &real,
            rustix::fs::AtFlags::empty(),
            rustix::fs::StatxFlags::MNT_ID,
        )
        .ok()?;
        let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let (device, root, mount_point) = mount_of(&table, stx.stx_mnt_id)?;
        let inside = real.strip_prefix(&mount_point).ok()?;
        Some(FsLocation {
            device,
            path: root.join(inside),
        })
    }

    /// Whether `self` is `other` or inside it.
    fn within(&self, other: &FsLocation) -> bool {
        self.device == other.device && self.path.starts_with(&other.path)
    }
}

/// (device, root in its filesystem, mount point) of mount `id` in a
/// `/proc/self/mountinfo` text.
fn mount_of(table: &str, id: u64) -> Option<(String, PathBuf, PathBuf)> {
    table.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let mount_id: u64 = fields.next()?.parse().ok()?;
        let _parent = fields.next()?;
        let device = fields.next()?;
        let root = fields.next()?;
        let mount_point = fields.next()?;
        (mount_id == id).then(|| {
            (
                device.to_owned(),
                PathBuf::from(unescape_octal(root)),
                PathBuf::from(unescape_octal(mount_point)),
            )
        })
    })
}

/// Undoes the mount table's `\NNN` escapes (space, tab, newline, backslash).
fn unescape_octal(field: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(out)
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
    let dirs: Vec<(&Pool, &Path, FsLocation)> = pools
        .iter()
        .filter_map(|p| Some((p, p.dir()?.path.as_path())))
        .filter_map(|(p, path)| Some((p, path, FsLocation::of(path)?)))
        .collect();
    let state = FsLocation::of(existing_dir(state_dir));
    for (i, (a, a_path, a_at)) in dirs.iter().enumerate() {
        for (b, b_path, b_at) in &dirs[i + 1..] {
            if b_at.within(a_at) || a_at.within(b_at) {
                return Err(invalid!(
                    "pool {:?} ({}) overlaps pool {:?} ({}) through a mount: both reach the same directory tree",
                    b.name,
                    b_path.display(),
                    a.name,
                    a_path.display()
                ));
            }
        }
        if state.as_ref().is_some_and(|s| s.within(a_at)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
97 22 254:0 /var/lib/libvirt/images/real/sub /var/lib/libvirt/images/alias rw shared:1 - ext4 /dev/vda rw
98 22 0:45 / /mnt/with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn a_mount_s_device_root_and_mount_point_are_read_from_the_table() {
        assert_eq!(
            mount_of(TABLE, 97),
            Some((
                "254:0".into(),
                "/var/lib/libvirt/images/real/sub".into(),
                "/var/lib/libvirt/images/alias".into()
            ))
        );
        assert_eq!(
            mount_of(TABLE, 98).unwrap().2,
            PathBuf::from("/mnt/with space")
        );
        assert_eq!(mount_of(TABLE, 5), None);
    }

    #[test]
    fn locations_nest_by_device_and_path_components() {
        let at = |d: &str, p: &str| FsLocation {
            device: d.into(),
            path: p.into(),
        };
        assert!(at("254:0", "/a/real/sub").within(&at("254:0", "/a/real")));
        assert!(at("254:0", "/a/real").within(&at("254:0", "/a/real")));
        assert!(!at("254:0", "/a/realm").within(&at("254:0", "/a/real")));
        assert!(!at("0:45", "/a/real/sub").within(&at("254:0", "/a/real")));
    }
}
