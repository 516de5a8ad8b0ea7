//! The CLI on a real pool: attach, detach, release in every mode, labels restored in
//! full, exit codes, guests and status. Real xattrs, real file_contexts, real SQLite.

mod common;

use common::*;

#[test]
fn rw_attach_gives_the_guests_label_and_detach_restores_the_full_default() {
    let bed = Bed::new();
    let disk = bed.file("vm1.qcow2");
    // A stale label with an MCS range: restorecon would keep the range, we must not.
    set_label(&disk, "system_u:object_r:virt_image_t:s0:c5,c6");
    let (uuid, cats) = bed.define_guest("vm1");

    let out = bed.attach_ok(&uuid, &disk, "rw");
    assert!(out.contains(&image_label(&cats)), "{out}");
    assert_eq!(label(&disk).unwrap(), image_label(&cats));

    bed.ok(&[
        "detach",
        "--guest",
        &uuid,
        "--volume",
        disk.to_str().unwrap(),
    ]);
    assert_eq!(label(&disk).unwrap(), VIRT_IMAGE);
}

#[test]
fn ro_is_content_for_every_reader_and_rests_after_the_last_detach() {
    let bed = Bed::new();
    let iso = bed.file("isos/install.iso");
    let (g1, _) = bed.define_guest("a");
    let (g2, _) = bed.define_guest("b");
    for g in [&g1, &g2] {
        bed.attach_ok(g, &iso, "ro");
        assert_eq!(label(&iso).unwrap(), VIRT_CONTENT);
    }
    bed.ok(&["detach", "--guest", &g1, "--volume", iso.to_str().unwrap()]);
    assert_eq!(label(&iso).unwrap(), VIRT_CONTENT, "g2 still reads it");
    bed.ok(&["detach", "--guest", &g2, "--volume", iso.to_str().unwrap()]);
    assert_eq!(label(&iso).unwrap(), VIRT_IMAGE);
}

#[test]
fn shared_is_the_image_type_without_categories() {
    let bed = Bed::new();
    let disk = bed.file("shared.raw");
    let (g1, _) = bed.define_guest("a");
    let (g2, _) = bed.define_guest("b");
    bed.attach_ok(&g1, &disk, "shared");
    bed.attach_ok(&g2, &disk, "shared");
    assert_eq!(label(&disk).unwrap(), SVIRT_IMAGE);
    bed.ok(&["release", "--guest", &g1]);
    assert_eq!(label(&disk).unwrap(), SVIRT_IMAGE);
    bed.ok(&["release", "--guest", &g2]);
    assert_eq!(label(&disk).unwrap(), VIRT_IMAGE);
}

#[test]
fn release_restores_every_volume_of_the_guest() {
    let bed = Bed::new();
    let (uuid, cats) = bed.define_guest("vm");
    let disks: Vec<_> = ["a.img", "b.img", "deep/er/c.img"]
        .iter()
        .map(|n| bed.file(n))
        .collect();
    for (d, mode) in disks.iter().zip(["rw", "ro", "shared"]) {
        bed.attach_ok(&uuid, d, mode);
    }
    assert_eq!(label(&disks[0]).unwrap(), image_label(&cats));
    let out = bed.ok(&["release", "--guest", &uuid]);
    assert!(out.contains("released 3 volume(s)"), "{out}");
    for d in &disks {
        assert_eq!(label(d).unwrap(), VIRT_IMAGE, "{}", d.display());
    }
}

#[test]
fn rw_conflicts_are_refused_and_change_nothing() {
    let bed = Bed::new();
    let disk = bed.file("d.img");
    let (g1, cats1) = bed.define_guest("owner");
    let (g2, _) = bed.define_guest("intruder");
    bed.attach_ok(&g1, &disk, "rw");
    for mode in ["rw", "ro", "shared"] {
        let out = bed.attach(&g2, &disk, mode);
        assert_eq!(out.status.code(), Some(1), "mode {mode}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("attached rw to guest {g1}")), "{err}");
        assert_eq!(label(&disk).unwrap(), image_label(&cats1));
    }
    // And rw is refused while others read it.
    let iso = bed.file("x.iso");
    bed.attach_ok(&g1, &iso, "ro");
    let out = bed.attach(&g2, &iso, "rw");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(label(&iso).unwrap(), VIRT_CONTENT);
}

#[test]
fn refusals_and_usage_errors_have_their_exit_codes() {
    let bed = Bed::new();
    let disk = bed.file("d.img");
    let unknown = new_uuid();
    let d = disk.to_str().unwrap();

    let out = bed.attach(&unknown, d, "rw");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not defined"));

    let (uuid, _) = bed.define_guest("g");
    let outside = TempDir::new("/var/lib", "svirt-pool-outside");
    std::fs::write(outside.join("f.img"), b"x").unwrap();
    let out = bed.attach(&uuid, outside.join("f.img"), "rw");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not inside any configured pool"));
    assert_eq!(
        label(&outside.join("f.img")),
        None,
        "nothing outside a pool is labeled"
    );

    let out = bed.attach(&uuid, d, "rwx");
    assert_eq!(out.status.code(), Some(2), "a bad mode is a usage error");
    let out = bed.attach("not-a-uuid", d, "rw");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-a-uuid"));

    let out = bed.cli(&["detach", "--guest", &uuid, "--volume", d]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "detaching what is not held is refused"
    );

    let out = bed.attach(&uuid, bed.pool.join("missing.img"), "rw");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn guest_define_is_idempotent_and_prints_the_labels() {
    let bed = Bed::new();
    let uuid = new_uuid();
    let first: serde_json::Value =
        serde_json::from_str(&bed.ok(&["guest", "define", "--uuid", &uuid, "--name", "web"]))
            .unwrap();
    let again: serde_json::Value =
        serde_json::from_str(&bed.ok(&["guest", "define", "--uuid", &uuid.to_uppercase()]))
            .unwrap();
    assert_eq!(first, again, "same UUID, same guest and pair");
    let cats = first["categories"].as_str().unwrap();
    let (a, b) = cats.split_once(',').unwrap();
    let (a, b): (u16, u16) = (a[1..].parse().unwrap(), b[1..].parse().unwrap());
    assert!(a < b && b <= 1023, "{cats}");
    assert_eq!(first["uuid"], uuid.as_str());
    assert_eq!(first["name"], "web");
    assert_eq!(
        first["process_label"],
        format!("system_u:system_r:svirt_t:s0:{cats}")
    );
    assert_eq!(first["image_label"], image_label(cats));

    let list: serde_json::Value = serde_json::from_str(&bed.ok(&["guest", "list"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let shown: serde_json::Value =
        serde_json::from_str(&bed.ok(&["guest", "show", &uuid])).unwrap();
    assert_eq!(shown["categories"], cats);
}

#[test]
fn undefine_is_refused_with_attachments_unless_forced() {
    let bed = Bed::new();
    let disk = bed.file("d.img");
    let (uuid, _) = bed.define_guest("g");
    bed.attach_ok(&uuid, &disk, "rw");
    let out = bed.cli(&["guest", "undefine", &uuid]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_ne!(label(&disk).unwrap(), VIRT_IMAGE);

    bed.ok(&["guest", "undefine", &uuid, "--force"]);
    assert_eq!(label(&disk).unwrap(), VIRT_IMAGE);
    assert_eq!(bed.cli(&["guest", "show", &uuid]).status.code(), Some(1));
}

#[test]
fn scan_labels_the_pool_and_writes_nothing_the_second_time() {
    let bed = Bed::new();
    for i in 0..20 {
        bed.file(&format!("dir{}/f{i}.img", i % 3));
    }
    let out = bed.ok(&["scan", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["total"]["entries"], 20);
    assert_eq!(
        json["total"]["relabeled"], 24,
        "20 files, 3 subdirectories and the root"
    );
    for i in 0..20 {
        assert_eq!(
            label(&bed.pool.join(&format!("dir{}/f{i}.img", i % 3))).unwrap(),
            VIRT_IMAGE
        );
    }
    let ctime = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.ctime(), m.ctime_nsec())
            })
            .unwrap()
    };
    let probe = bed.pool.join("dir0/f0.img");
    let before = ctime(&probe);
    let json: serde_json::Value = serde_json::from_str(&bed.ok(&["scan", "--json"])).unwrap();
    assert_eq!(json["total"]["relabeled"], 0);
    assert_eq!(json["total"]["unchanged"], 24);
    assert_eq!(ctime(&probe), before, "a correct file is never written");
}

#[test]
fn status_shows_holders_labels_and_drift() {
    let bed = Bed::new();
    let disk = bed.file("d.img");
    let other = bed.file("free.img");
    let (uuid, cats) = bed.define_guest("vm-status");
    bed.attach_ok(&uuid, &disk, "rw");
    set_label(&disk, "system_u:object_r:etc_t:s0");
    let json: serde_json::Value = serde_json::from_str(&bed.ok(&["status", "--json"])).unwrap();
    let vols = json["pools"][0]["volumes"].as_array().unwrap();
    let d = vols.iter().find(|v| v["volume"] == "d.img").unwrap();
    assert_eq!(d["state"], "rw by vm-status");
    assert_eq!(d["current"], "system_u:object_r:etc_t:s0");
    assert_eq!(d["desired"], image_label(&cats));
    assert_eq!(d["drift"], true);
    assert_eq!(d["attachments"][0]["guest"], uuid.as_str());
    let f = vols.iter().find(|v| v["volume"] == "free.img").unwrap();
    assert_eq!(f["state"], "free");
    assert_eq!(
        label(&disk).unwrap(),
        "system_u:object_r:etc_t:s0",
        "status writes nothing"
    );
    assert_eq!(label(&other), None);
    let text = bed.ok(&["status"]);
    assert!(text.contains("DRIFT") && text.contains("d.img"), "{text}");
}

#[test]
fn resting_labels_follow_file_contexts_specs_that_name_files() {
    // A file_contexts where .iso files below the pool rest differently: the one-lookup
    // shortcut must not apply, every file gets its own default.
    require_root_and_policy();
    let pool = TempDir::new(IMAGES, "svirt-pool-fc");
    let state = TempDir::new("/tmp", "svirt-pool-state");
    let fc = state.join("file_contexts");
    std::fs::write(
        &fc,
        "/var/lib/libvirt/images(/.*)?\tsystem_u:object_r:virt_image_t:s0\n\
         /var/lib/libvirt/images/.*\\.iso\t--\tsystem_u:object_r:virt_content_t:s0\n",
    )
    .unwrap();
    let config = state.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[selinux]\nfile_contexts = \"{}\"\n[api]\nsocket = \"{}/api.sock\"\n\
             [[pool]]\nname = \"p\"\ntype = \"dir\"\npath = \"{}\"\n",
            state.0.display(),
            fc.display(),
            state.0.display(),
            pool.0.display()
        ),
    )
    .unwrap();
    for name in ["a.img", "b.iso", "sub/c.img", "sub/d.iso"] {
        let p = pool.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"x").unwrap();
    }
    let out = run_cli(&config, &["scan"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, want) in [
        ("a.img", VIRT_IMAGE),
        ("b.iso", VIRT_CONTENT),
        ("sub/c.img", VIRT_IMAGE),
        ("sub/d.iso", VIRT_CONTENT),
        ("sub", VIRT_IMAGE),
    ] {
        assert_eq!(label(&pool.join(name)).as_deref(), Some(want), "{name}");
    }
}
