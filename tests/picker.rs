//! The pool-picker backend on real images: qcow2 overlays on a base (made by qemu-img),
//! their backing chains labeled and refused when they lead astray, the policy's view of
//! those labels (audit2why), create/delete checked with `qemu-img info`, and paging.
//! tests/picker_libvirt.rs compares the facts with libvirt's own storage driver.

mod common;

use std::path::Path;
use std::process::Command;

use common::images::qcow2;
use common::oracle::Oracle;
use common::*;

fn process_label(bed: &Bed, uuid: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(&bed.ok(&["guest", "show", uuid])).unwrap();
    json["process_label"].as_str().unwrap().to_owned()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn overlays_hold_their_base_read_only_until_the_last_one_goes() {
    let bed = Bed::new();
    let base = qcow2(&bed.pool.join("base.qcow2"), None);
    let o1 = qcow2(&bed.pool.join("o1.qcow2"), Some(("base.qcow2", "qcow2")));
    std::fs::create_dir_all(bed.pool.join("vm2")).unwrap();
    // Relative to the overlay's own directory, as qemu resolves it.
    let o2 = qcow2(
        &bed.pool.join("vm2/o2.qcow2"),
        Some(("../base.qcow2", "qcow2")),
    );
    let (g1, c1) = bed.define_guest("one");
    let (g2, _) = bed.define_guest("two");
    let (g3, _) = bed.define_guest("three");

    bed.attach_ok(&g1, &o1, "rw");
    assert_eq!(label(&o1).unwrap(), image_label(&c1));
    assert_eq!(label(&base).unwrap(), VIRT_CONTENT);
    // The policy lets the overlay's guest read its base, and not write it.
    let mut oracle = Oracle::start();
    let p1 = process_label(&bed, &g1);
    assert!(!oracle.allows(&p1, VIRT_IMAGE, &["read"]), "oracle sanity");
    assert!(oracle.allows(&p1, &label(&base).unwrap(), &["read", "open"]));
    assert!(!oracle.allows(&p1, &label(&base).unwrap(), &["write"]));

    // Read-only overlays hold their base too; the base is nobody's to write meanwhile.
    bed.attach_ok(&g2, &o2, "ro");
    for g in [&g1, &g2, &g3] {
        let out = bed.attach(g, &base, "rw");
        assert!(!out.status.success(), "base attached rw by {g}");
        assert!(
            stderr_of(&out).contains("backing file of"),
            "{}",
            stderr_of(&out)
        );
    }
    let out = bed.cli(&["volume", "delete", "--pool", "test", "base.qcow2"]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("held ro"), "{}", stderr_of(&out));
    assert!(base.exists());

    // A rescan keeps the base's label (the holds are in the state, not in memory).
    bed.ok(&["scan"]);
    assert_eq!(label(&base).unwrap(), VIRT_CONTENT);
    // One overlay let go: still held by the other.
    bed.ok(&["detach", "--guest", &g1, "--volume", o1.to_str().unwrap()]);
    assert_eq!(label(&o1).unwrap(), VIRT_IMAGE);
    assert_eq!(label(&base).unwrap(), VIRT_CONTENT);
    // The last one: the base rests and may be written again.
    bed.ok(&["release", "--guest", &g2]);
    assert_eq!(label(&base).unwrap(), VIRT_IMAGE);
    bed.attach_ok(&g3, &base, "rw");
}

#[test]
fn a_chain_that_leads_astray_is_refused_and_nothing_is_labeled() {
    let bed = Bed::new();
    let outside_dir = TempDir::new(IMAGES, "svirt-pool-outside");
    let outside = qcow2(&outside_dir.join("secret.qcow2"), None);
    let outside_name = outside.to_str().unwrap().to_owned();
    let rel_outside = format!(
        "../{}/secret.qcow2",
        outside_dir.0.file_name().unwrap().to_str().unwrap()
    );
    let inner = bed.file("inner.raw");
    std::os::unix::fs::symlink(&outside, bed.pool.join("link.qcow2")).unwrap();
    std::fs::create_dir_all(bed.pool.join("d")).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("dotdot.qcow2", rel_outside, "outside the pool"),
        ("absolute.qcow2", outside_name.clone(), "outside the pool"),
        ("symlink.qcow2", "link.qcow2".into(), "symlink"),
        (
            "json.qcow2",
            format!("json:{{\"file.filename\":\"{outside_name}\"}}"),
            "protocol",
        ),
        ("missing.qcow2", "nothing-here.qcow2".into(), "nothing-here"),
        ("dir.qcow2", "d".into(), "not a regular file"),
    ];
    for (name, backing, _) in &cases {
        qcow2(&bed.pool.join(name), Some((backing, "qcow2")));
    }
    // A loop: a -> b -> a.
    qcow2(
        &bed.pool.join("loop-a.qcow2"),
        Some(("loop-b.qcow2", "qcow2")),
    );
    qcow2(
        &bed.pool.join("loop-b.qcow2"),
        Some(("loop-a.qcow2", "qcow2")),
    );
    // A chain deeper than the bound.
    qcow2(&bed.pool.join("deep-0.qcow2"), Some(("inner.raw", "raw")));
    for i in 1..=17 {
        let below = format!("deep-{}.qcow2", i - 1);
        qcow2(
            &bed.pool.join(&format!("deep-{i}.qcow2")),
            Some((&below, "qcow2")),
        );
    }
    // Labeled as a file nobody holds, so a write by the agent would show.
    set_label(&outside, VIRT_IMAGE);
    let before_outside = label(&outside).unwrap();
    let (g, _) = bed.define_guest("victim");
    let mut expected: Vec<(String, &str)> = cases
        .iter()
        .map(|(n, _, why)| (n.to_string(), *why))
        .collect();
    expected.push(("loop-a.qcow2".into(), "loop"));
    expected.push(("deep-17.qcow2".into(), "deeper than"));
    for (name, why) in expected {
        let overlay = bed.pool.join(&name);
        let before = label(&overlay);
        let out = bed.attach(&g, &overlay, "ro");
        let err = stderr_of(&out);
        assert!(!out.status.success(), "{name} attached");
        assert!(err.contains(why), "{name}: {err}");
        assert!(
            err.contains("backing") || err.contains(&name),
            "{name}: {err}"
        );
        assert_eq!(label(&overlay), before, "{name} labeled");
    }
    assert_eq!(label(&outside).unwrap(), before_outside);
    assert_eq!(label(&inner), None, "the deep chain's base was labeled");
    let json: serde_json::Value = serde_json::from_str(&bed.ok(&["guest", "show", &g])).unwrap();
    assert_eq!(json["attachments"], serde_json::json!([]), "{json}");
}

#[test]
fn volumes_are_created_and_deleted_as_qemu_img_sees_them() {
    let bed = Bed::new();
    bed.ok(&[
        "volume",
        "create",
        "--pool",
        "test",
        "--format",
        "raw",
        "--capacity",
        "10M",
        "disk.raw",
    ]);
    bed.ok(&[
        "volume",
        "create",
        "--pool",
        "test",
        "--capacity",
        "1G",
        "base.qcow2",
    ]);
    bed.ok(&[
        "volume",
        "create",
        "--pool",
        "test",
        "--backing",
        "base.qcow2",
        "top.qcow2",
    ]);
    let info = |name: &str| -> serde_json::Value {
        let out = Command::new("qemu-img")
            .args(["info", "--output", "json", "-U"])
            .arg(bed.pool.join(name))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let raw = info("disk.raw");
    assert_eq!(
        (raw["format"].as_str(), raw["virtual-size"].as_u64()),
        (Some("raw"), Some(10 << 20))
    );
    let base = info("base.qcow2");
    assert_eq!(
        (base["format"].as_str(), base["virtual-size"].as_u64()),
        (Some("qcow2"), Some(1 << 30))
    );
    let top = info("top.qcow2");
    assert_eq!(top["virtual-size"].as_u64(), Some(1 << 30), "{top}");
    assert_eq!(
        top["backing-filename"].as_str(),
        Some("base.qcow2"),
        "{top}"
    );
    assert_eq!(
        top["backing-filename-format"].as_str(),
        Some("qcow2"),
        "{top}"
    );
    let full = bed.pool.join("base.qcow2");
    assert_eq!(
        top["full-backing-filename"].as_str(),
        full.to_str(),
        "{top}"
    );
    for name in ["disk.raw", "base.qcow2", "top.qcow2"] {
        let path = bed.pool.join(name);
        assert_eq!(label(&path).unwrap(), VIRT_IMAGE, "{name}");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().mode() & 0o777,
            0o600,
            "{name}"
        );
    }
    // Sparse: a 10 MiB raw volume occupies nothing.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(bed.pool.join("disk.raw"))
            .unwrap()
            .blocks(),
        0
    );

    // Bad requests change nothing and say why.
    for (args, why) in [
        (vec!["--capacity", "1M", "disk.raw"], "already exists"),
        (vec!["--capacity", "1M", "../x.img"], "without '/'"),
        (
            vec!["--format", "vmdk", "--capacity", "1M", "x.vmdk"],
            "raw and qcow2",
        ),
        (vec!["x.qcow2"], "capacity is required"),
        (
            vec!["--backing", "../../etc/passwd", "y.qcow2"],
            "outside the pool",
        ),
        (
            vec!["--format", "raw", "--backing", "base.qcow2", "z.raw"],
            "backing file",
        ),
    ] {
        let mut all = vec!["volume", "create", "--pool", "test"];
        all.extend(args);
        let out = bed.cli(&all);
        assert!(!out.status.success(), "{all:?}");
        assert!(
            stderr_of(&out).contains(why),
            "{all:?}: {}",
            stderr_of(&out)
        );
    }
    assert!(!bed.pool.join("x.qcow2").exists() && !bed.pool.join("y.qcow2").exists());

    bed.ok(&["volume", "delete", "--pool", "test", "top.qcow2"]);
    assert!(!bed.pool.join("top.qcow2").exists());
    let out = bed.cli(&["volume", "delete", "--pool", "test", "top.qcow2"]);
    assert!(!out.status.success());
    // A symlink planted in the pool is not followed: neither it nor its target goes.
    let outside = TempDir::new(IMAGES, "svirt-pool-outside");
    let target = outside.join("keep.img");
    std::fs::write(&target, b"keep").unwrap();
    std::os::unix::fs::symlink(&target, bed.pool.join("link.img")).unwrap();
    let out = bed.cli(&["volume", "delete", "--pool", "test", "link.img"]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("not a regular file"),
        "{}",
        stderr_of(&out)
    );
    assert!(target.exists() && bed.pool.join("link.img").symlink_metadata().is_ok());
    let out = bed.cli(&["volume", "delete", "--pool", "test", "../escape"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}

fn list(bed: &Bed, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["volume", "list", "--pool", "test", "--json"];
    args.extend(extra);
    serde_json::from_str(&bed.ok(&args)).unwrap()
}

#[test]
fn pages_follow_the_cursor_in_name_order_and_filters_apply() {
    let bed = Bed::new();
    let mut names = Vec::new();
    for dir in ["a", "a-b", "b/c", "b"] {
        for i in 0..4 {
            let name = format!("{dir}/f{i}.img");
            bed.file(&name);
            names.push(name);
        }
    }
    bed.file("top.iso");
    names.push("top.iso".into());
    qcow2(&bed.pool.join("z.qcow2"), None);
    names.push("z.qcow2".into());
    // Component order: a/… before a-b/…, b/c/… before b/f….
    names.sort_by(|x, y| Path::new(x).cmp(Path::new(y)));
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut extra = vec!["--limit", "3"];
        if let Some(a) = &after {
            extra.extend(["--after", a.as_str()]);
        }
        let page = list(&bed, &extra);
        pages += 1;
        for v in page["volumes"].as_array().unwrap() {
            seen.push(v["name"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
        assert!(pages < 20, "the cursor does not advance: {after:?}");
    }
    assert_eq!(seen, names);
    assert_eq!(pages, names.len().div_ceil(3));

    let names_of = |page: &serde_json::Value| -> Vec<String> {
        page["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names_of(&list(&bed, &["--format", "qcow2"])), ["z.qcow2"]);
    assert_eq!(names_of(&list(&bed, &["--prefix", "b/c/"])).len(), 4);
    let (g, _) = bed.define_guest("lister");
    bed.attach_ok(&g, bed.pool.join("a/f1.img"), "ro");
    let attached = list(&bed, &["--state", "attached"]);
    assert_eq!(names_of(&attached), ["a/f1.img"]);
    assert_eq!(
        attached["volumes"][0]["used_by"],
        serde_json::json!(["lister"])
    );
    assert_eq!(
        names_of(&list(&bed, &["--state", "free"])).len(),
        names.len() - 1
    );
    let out = bed.cli(&["volume", "list", "--pool", "test", "--state", "bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let out = bed.cli(&["volume", "list", "--pool", "nope"]);
    assert!(!out.status.success());
}
