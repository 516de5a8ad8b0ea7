//! Cluster mode end to end: hosts on one machine sharing a dir pool through a real
//! 3-member etcd (tests/common/cluster.rs), each with its own state, driven through
//! the built binary (CLI and libvirt's hook) as an admin and libvirtd would.

mod common;

use common::cluster::ClusterBed;
use common::libvirt::{domain_xml, hook, hook_ok};
use common::*;

/// libvirt's calls on one host, in order, each followed by the label check.
fn calls(
    bed: &ClusterBed,
    host: usize,
    name: &str,
    xml: &str,
    ops: &[(&str, &str)],
    check: &dyn Fn(&str),
) {
    for (op, subop) in ops {
        hook_ok(&bed.hosts[host].config, name, op, subop, xml);
        check(&format!(
            "after {op} {subop} on host {}",
            bed.hosts[host].name
        ));
    }
}

const START: [(&str, &str); 3] = [
    ("prepare", "begin"),
    ("start", "begin"),
    ("started", "begin"),
];
const INCOMING: [(&str, &str); 4] = [
    ("migrate", "begin"),
    ("prepare", "begin"),
    ("start", "begin"),
    ("started", "begin"),
];
const STOP: [(&str, &str); 2] = [("stopped", "end"), ("release", "end")];

#[test]
fn a_guest_migrates_between_hosts_and_its_disk_keeps_its_label_throughout() {
    let bed = ClusterBed::new(2, "");
    let (disk, iso) = (bed.file("web.img"), bed.file("install.iso"));
    let uuid = new_uuid();
    // libvirt's own pair for the domain (a dynamic label it chose): the guest's disks
    // carry it while the domain runs, on whichever host.
    let run = "c17,c402";
    let xml = domain_xml(
        "web",
        &uuid,
        Some(&format!("system_u:system_r:svirt_t:s0:{run}")),
        &[(&disk, ""), (&iso, "cdrom<readonly/>")],
    );
    let running = || {
        assert_eq!(label(&disk), Some(image_label(run)));
        assert_eq!(label(&iso).as_deref(), Some(VIRT_CONTENT));
    };
    let check_running = |when: &str| {
        assert_eq!(label(&disk), Some(image_label(run)), "disk {when}");
        assert_eq!(label(&iso).as_deref(), Some(VIRT_CONTENT), "iso {when}");
    };
    calls(&bed, 0, "web", &xml, &START, &check_running);
    running();

    // A start of the same domain on b that is not a migration: refused, a keeps it.
    let out = hook(&bed.hosts[1].config, "web", "prepare", "begin", &xml);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("on host a") && err.contains("migrates"),
        "{err}"
    );
    hook_ok(&bed.hosts[1].config, "web", "release", "end", &xml);
    running();

    // a → b: the destination first, then the source lets go.
    calls(&bed, 1, "web", &xml, &INCOMING, &check_running);
    calls(&bed, 0, "web", &xml, &STOP, &check_running);
    // Host a lists the disk as held on host b (and nothing drifts).
    let status: serde_json::Value =
        serde_json::from_str(&bed.hosts[0].ok(&["status", "--json"])).unwrap();
    let text = status.to_string();
    assert!(text.contains("rw by web on host b"), "{status:#}");

    // b → a, failing on a after its start: a's holds go, b's stay, the label too.
    calls(&bed, 0, "web", &xml, &INCOMING[..3], &check_running);
    calls(&bed, 0, "web", &xml, &STOP, &check_running);
    // And the guest can still migrate to a afterwards.
    calls(&bed, 0, "web", &xml, &INCOMING, &check_running);
    calls(&bed, 1, "web", &xml, &STOP, &check_running);

    // It stops on a: every host let go, the disks rest.
    calls(&bed, 0, "web", &xml, &STOP, &|_| ());
    assert_eq!(label(&disk).as_deref(), Some(VIRT_IMAGE));
    assert_eq!(label(&iso).as_deref(), Some(VIRT_IMAGE));
}

#[test]
fn hosts_share_guests_pairs_and_the_rule_of_one_writer() {
    let bed = ClusterBed::new(3, "");
    let disk = bed.file("db.img");
    let (g1, cats1) = bed.hosts[0].define_guest("one");
    // Every host sees the guest with its pair.
    for h in &bed.hosts {
        let shown: serde_json::Value =
            serde_json::from_str(&h.ok(&["guest", "show", &g1])).unwrap();
        assert_eq!(
            shown["categories"].as_str(),
            Some(cats1.as_str()),
            "on {}",
            h.name
        );
    }
    bed.hosts[0].attach_ok(&g1, &disk, "rw");
    assert_eq!(label(&disk), Some(image_label(&cats1)));
    let (g2, _) = bed.hosts[1].define_guest("two");
    let out = bed.hosts[1].attach(&g2, &disk, "rw");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&g1) && err.contains("on host a"), "{err}");
    assert_eq!(label(&disk), Some(image_label(&cats1)), "unchanged");
}

#[test]
fn hosts_labeling_one_shared_file_at_once_leave_the_label_its_holders_give() {
    // Host a attaches its guest `shared` and detaches it, over and over, while host b
    // does the same `ro` with its own guest, on one file: each writes the label from the
    // holders it read, and a write from an older read can land last. Every round ends
    // with b's guest alone (ro): the label must be the content label, whatever the order.
    let bed = ClusterBed::new(2, "");
    let iso = bed.file("shared.iso");
    let (g1, _) = bed.hosts[0].define_guest("one");
    let (g2, _) = bed.hosts[1].define_guest("two");
    for round in 0..6 {
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..5 {
                    bed.hosts[0].attach_ok(&g1, &iso, "shared");
                    bed.hosts[0].ok(&["detach", "--guest", &g1, "--volume", iso.to_str().unwrap()]);
                }
            });
            s.spawn(|| {
                for i in 0..5 {
                    bed.hosts[1].attach_ok(&g2, &iso, "ro");
                    if i < 4 {
                        bed.hosts[1].ok(&[
                            "detach",
                            "--guest",
                            &g2,
                            "--volume",
                            iso.to_str().unwrap(),
                        ]);
                    }
                }
            });
        });
        assert_eq!(label(&iso).as_deref(), Some(VIRT_CONTENT), "round {round}");
    }
}
