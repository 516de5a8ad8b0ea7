//! libvirt's storage pools as libvirt's own files describe them, to find the file or
//! LV behind a `<disk type='volume'>` (`<source pool='default' volume='web.qcow2'/>`).
//!
//! The hook may not ask libvirtd (`virsh pool-dumpxml`): libvirt's hooks must not call
//! back into libvirt, which waits for them. It reads the pool's XML that libvirtd keeps:
//! the running pool's state (`/run/libvirt/storage/NAME.xml`), else its definition
//! (`/etc/libvirt/storage/NAME.xml`).

use std::path::{Path, PathBuf};

/// Where libvirtd keeps the state of running pools, then the definitions of all.
pub const POOL_DIRS: [&str; 2] = ["/run/libvirt/storage", "/etc/libvirt/storage"];

/// The path of volume `volume` of libvirt pool `pool`, looked up in `dirs` (the first
/// that describes the pool): its target path joined with the volume's name, for the
/// pool types whose volumes are files or LVs there (`dir`, `fs`, `netfs`, `logical`).
/// `Ok(None)`: no such pool, or a type whose volumes are not local files (iSCSI, RBD…),
/// left to libvirt.
pub fn volume_path(dirs: &[&Path], pool: &str, volume: &str) -> Result<Option<PathBuf>, String> {
    if pool.is_empty() || pool.contains('/') || pool.starts_with('.') {
        return Err(format!("libvirt pool name {pool:?} is not a pool name"));
    }
    if volume.is_empty() || volume.contains('/') || volume == "." || volume == ".." {
        return Err(format!(
            "volume {volume:?} of libvirt pool {pool:?} is not a volume name"
        ));
    }
    for dir in dirs {
        let file = dir.join(format!("{pool}.xml"));
        let xml = match std::fs::read_to_string(&file) {
            Ok(xml) => xml,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", file.display())),
        };
        let target = target_of(&xml).map_err(|e| format!("{}: {e}", file.display()))?;
        return Ok(target.map(|t| t.join(volume)));
    }
    Ok(None)
}

/// A pool XML's (`<pool>`, or the `<poolstate>` around it) target directory, for the
/// types whose volumes are entries of it.
fn target_of(xml: &str) -> Result<Option<PathBuf>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    let pool = if root.has_tag_name("pool") {
        Some(root)
    } else {
        root.children().find(|n| n.has_tag_name("pool"))
    }
    .ok_or("no <pool> element")?;
    if !matches!(
        pool.attribute("type"),
        Some("dir" | "fs" | "netfs" | "logical")
    ) {
        return Ok(None);
    }
    let path = pool
        .children()
        .find(|n| n.has_tag_name("target"))
        .and_then(|t| t.children().find(|n| n.has_tag_name("path")))
        .and_then(|p| p.text())
        .map(|t| PathBuf::from(t.trim()))
        .ok_or("no <target><path>")?;
    if !path.is_absolute() {
        return Err(format!("target path {} is not absolute", path.display()));
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_is_found_in_the_running_pool_first_then_its_definition() {
        let run = tempfile::tempdir().unwrap();
        let etc = tempfile::tempdir().unwrap();
        let dirs = [run.path(), etc.path()];
        std::fs::write(
            etc.path().join("default.xml"),
            "<pool type='dir'><name>default</name>\
             <target><path>/var/lib/libvirt/images</path></target></pool>",
        )
        .unwrap();
        assert_eq!(
            volume_path(&dirs, "default", "web.qcow2").unwrap(),
            Some(PathBuf::from("/var/lib/libvirt/images/web.qcow2"))
        );
        std::fs::write(
            run.path().join("default.xml"),
            "<poolstate><pool type='dir'><name>default</name>\
             <target><path>/srv/images</path></target></pool></poolstate>",
        )
        .unwrap();
        assert_eq!(
            volume_path(&dirs, "default", "web.qcow2").unwrap(),
            Some(PathBuf::from("/srv/images/web.qcow2"))
        );
        std::fs::write(
            etc.path().join("vg.xml"),
            "<pool type='logical'><name>vg</name><source><name>vg0</name></source>\
             <target><path>/dev/vg0</path></target></pool>",
        )
        .unwrap();
        assert_eq!(
            volume_path(&dirs, "vg", "data").unwrap(),
            Some(PathBuf::from("/dev/vg0/data"))
        );
        std::fs::write(
            etc.path().join("san.xml"),
            "<pool type='iscsi'><name>san</name><target><path>/dev/disk/by-path</path></target></pool>",
        )
        .unwrap();
        assert_eq!(volume_path(&dirs, "san", "unit:0:0:1").unwrap(), None);
        assert_eq!(volume_path(&dirs, "absent", "x").unwrap(), None);
    }

    #[test]
    fn names_that_would_leave_the_pool_are_refused() {
        let dirs = [Path::new("/nonexistent")];
        for (pool, volume) in [
            ("default", "../etc/shadow"),
            ("default", ".."),
            ("../../etc", "x"),
            ("", "x"),
            ("default", ""),
        ] {
            let e = volume_path(&dirs, pool, volume).unwrap_err();
            assert!(e.contains("is not a"), "{pool} {volume}: {e}");
        }
    }
}
