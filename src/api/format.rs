//! A volume's size and format, from the file itself (its magic), for the picker.

use std::path::Path;

use super::types::Volume;
use crate::config::{Located, Settings};
use crate::fsys;
use crate::ops::report::VolumeStatus;

/// Where ISO 9660's "CD001" stands: in the first volume descriptor, at sector 16.
const ISO_MAGIC_AT: usize = 0x8001;

/// `qcow2`, `iso` or `raw`, from the first bytes of a file.
pub fn format_of(head: &[u8]) -> &'static str {
    if head.starts_with(b"QFI\xfb") {
        "qcow2"
    } else if head.get(ISO_MAGIC_AT..ISO_MAGIC_AT + 5) == Some(b"CD001") {
        "iso"
    } else {
        "raw"
    }
}

/// The picker's view of a volume: its status, plus size and format for a file.
pub fn describe(settings: &Settings, status: VolumeStatus) -> Volume {
    let (size, format) = probe(settings, Path::new(&status.path)).unwrap_or((None, None));
    let mut v = Volume::from_status(status);
    v.size = size;
    v.format = format;
    v
}

/// Reads a dir-pool file's size and magic through the descriptor it was opened with
/// beneath its pool root (no symlink, no other mount; a FIFO or device planted in a
/// pool is opened `O_PATH` and never read).
fn probe(settings: &Settings, path: &Path) -> Option<(Option<u64>, Option<String>)> {
    let Some(Located::File { pool, rel }) = settings.locate(path) else {
        return None;
    };
    let dir = settings.pools[pool].dir()?;
    let root = fsys::open_pool_root(&dir.path).ok()?;
    let node = fsys::open_beneath(std::os::fd::AsFd::as_fd(&root), rel, dir.cross_filesystems)
        .ok()?
        .node;
    if !matches!(node.kind, fsys::NodeKind::Regular { .. }) {
        return Some((None, None));
    }
    let st = rustix::fs::fstat(&node.fd).ok()?;
    let mut head = vec![0u8; ISO_MAGIC_AT + 5];
    let n = rustix::io::pread(&node.fd, &mut head, 0).unwrap_or(0);
    Some((
        u64::try_from(st.st_size).ok(),
        Some(format_of(&head[..n]).to_owned()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic() {
        assert_eq!(format_of(b"QFI\xfb\0\0\0\x03"), "qcow2");
        let mut iso = vec![0u8; 0x8010];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(format_of(&iso), "iso");
        assert_eq!(format_of(b""), "raw");
        assert_eq!(format_of(&[0u8; 100]), "raw");
    }
}
