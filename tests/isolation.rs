//! Isolation, asked of the real policy: the labels svirt-pool writes must let each
//! guest's QEMU (`svirt_t` with its pair) read and write its own rw image, not read
//! another guest's, read but not write `ro` content, and not touch resting images.
//!
//! The oracle is python3-selinux's audit2why on the installed refpolicy binary policy
//! (SELinux is not enabled in this kernel, so the policy is evaluated offline).

mod common;

use common::oracle::Oracle;
use common::*;

fn process_label(bed: &Bed, uuid: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(&bed.ok(&["guest", "show", uuid])).unwrap();
    json["process_label"].as_str().unwrap().to_owned()
}

#[test]
fn each_guest_reaches_only_what_it_was_given() {
    let bed = Bed::new();
    let (g1, _) = bed.define_guest("one");
    let (g2, _) = bed.define_guest("two");
    let (p1, p2) = (process_label(&bed, &g1), process_label(&bed, &g2));
    let disk1 = bed.file("one.qcow2");
    let disk2 = bed.file("two.qcow2");
    let iso = bed.file("media.iso");
    let shared = bed.file("cluster.raw");
    let free = bed.file("free.img");
    let attach = |g: &str, f: &std::path::Path, mode: &str| {
        bed.attach_ok(g, f, mode);
    };
    attach(&g1, &disk1, "rw");
    attach(&g2, &disk2, "rw");
    for g in [&g1, &g2] {
        attach(g, &iso, "ro");
        attach(g, &shared, "shared");
    }
    bed.ok(&["scan"]);
    let l = |p: &std::path::Path| label(p).unwrap();

    let mut oracle = Oracle::start();
    // Sanity: the oracle denies what it must, or every assertion below is void.
    assert!(!oracle.allows(&p1, "system_u:object_r:shadow_t:s0", &["read"]));

    for (me, mine, theirs) in [(&p1, &disk1, &disk2), (&p2, &disk2, &disk1)] {
        assert!(
            oracle.allows(me, &l(mine), &["read", "write", "open"]),
            "{me} on its own image"
        );
        assert!(
            !oracle.allows(me, &l(theirs), &["read"]),
            "{me} reads another guest's image"
        );
        assert!(
            !oracle.allows(me, &l(theirs), &["write"]),
            "{me} writes another guest's image"
        );
        assert!(
            oracle.allows(me, &l(&iso), &["read", "open"]),
            "{me} reads ro media"
        );
        assert!(
            !oracle.allows(me, &l(&iso), &["write"]),
            "{me} writes ro media"
        );
        assert!(
            oracle.allows(me, &l(&shared), &["read", "write"]),
            "{me} on a shared disk"
        );
        assert!(
            !oracle.allows(me, &l(&free), &["read"]),
            "{me} reads a resting image"
        );
    }

    // After detach, the image is out of reach again.
    bed.ok(&[
        "detach",
        "--guest",
        &g1,
        "--volume",
        disk1.to_str().unwrap(),
    ]);
    assert!(!oracle.allows(&p1, &l(&disk1), &["read"]));
}
