//! Parity with libvirt's storage driver: a libvirt dir pool defined on the same
//! directory as a managed pool must report the same capacity, allocation, format and
//! backing file for every volume as `svirt-pool volume list`, so a picker can switch
//! backends. Needs libvirtd and virsh (`scripts/install-deps --tests`); starts libvirtd
//! itself if none runs.

mod common;

use common::images::{qcow2_sized, qemu_img};
use common::libvirt::{LibvirtPool, virsh_ok};
use common::*;

/// A libvirt dir pool on `dir`, destroyed and undefined when dropped.
impl LibvirtPool {
    /// (capacity, allocation) from `vol-info --bytes`.
    fn info(&self, vol: &str) -> (u64, u64) {
        let text = virsh_ok(&["vol-info", "--bytes", "--pool", &self.0, vol]);
        let field = |key: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {text}"))
        };
        (field("Capacity:"), field("Allocation:"))
    }

    /// (format, [(backing path, backing format)]) from `vol-dumpxml`.
    fn xml(&self, vol: &str) -> (String, Vec<(String, String)>) {
        let text = virsh_ok(&["vol-dumpxml", "--pool", &self.0, vol]);
        let doc = roxmltree::Document::parse(&text).unwrap();
        let format_of = |node: roxmltree::Node<'_, '_>| {
            node.children()
                .find(|c| c.has_tag_name("format"))
                .and_then(|f| f.attribute("type"))
                .unwrap_or_default()
                .to_owned()
        };
        let root = doc.root_element();
        let target = root.children().find(|c| c.has_tag_name("target")).unwrap();
        let backing = root
            .children()
            .filter(|c| c.has_tag_name("backingStore"))
            .filter_map(|b| {
                let path = b
                    .children()
                    .find(|c| c.has_tag_name("path"))?
                    .text()?
                    .to_owned();
                Some((path, format_of(b)))
            })
            .collect();
        (format_of(target), backing)
    }
}

#[test]
fn volume_facts_equal_libvirts() {
    let bed = Bed::new();
    let p = |name: &str| bed.pool.join(name).to_str().unwrap().to_owned();
    let pool = |name: &str| bed.pool.join(name);
    qcow2_sized(&pool("base.qcow2"), "256M", None);
    // Relative and absolute backing names; libvirt resolves both.
    qcow2_sized(&pool("o1.qcow2"), "256M", Some(("base.qcow2", "qcow2")));
    qcow2_sized(&pool("o2.qcow2"), "512M", Some((&p("base.qcow2"), "qcow2")));
    qemu_img(&["create", "-q", "-f", "raw", &p("sparse.raw"), "100M"]);
    std::fs::write(bed.pool.join("written.raw"), vec![7u8; 300_000]).unwrap();
    let mut iso = vec![0u8; 64 * 1024];
    iso[0x8001..0x8006].copy_from_slice(b"CD001");
    std::fs::write(bed.pool.join("media.iso"), iso).unwrap();

    let libvirt = LibvirtPool::new(&bed.pool.0);
    let ours: serde_json::Value =
        serde_json::from_str(&bed.ok(&["volume", "list", "--pool", "test", "--json"])).unwrap();
    let volumes = ours["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 6, "{ours}");
    for v in volumes {
        let name = v["name"].as_str().unwrap();
        let (capacity, allocation) = libvirt.info(name);
        let (format, backing) = libvirt.xml(name);
        assert_eq!(v["capacity"].as_u64(), Some(capacity), "{name} capacity");
        assert_eq!(
            v["allocation"].as_u64(),
            Some(allocation),
            "{name} allocation"
        );
        assert_eq!(v["format"].as_str(), Some(format.as_str()), "{name} format");
        let ours_backing: Vec<(String, String)> = v["backing"]
            .as_array()
            .unwrap()
            .iter()
            .take(backing.len().max(1))
            .map(|b| {
                (
                    b["path"].as_str().unwrap().to_owned(),
                    b["format"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(ours_backing, backing, "{name} backing");
    }
}
