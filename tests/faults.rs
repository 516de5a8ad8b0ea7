//! Faults: pools on filesystems that store no labels (ramfs: EOPNOTSUPP) or are
//! read-only (EROFS) are reported per volume while the other pools are labeled; a full
//! state directory refuses changes cleanly and the agent keeps labeling from the last
//! good state.

mod common;

use std::path::Path;

use common::*;
use svirt_pool::registry::Holds;

#[test]
fn pools_without_labels_or_read_only_are_reported_and_the_others_labeled() {
    require_root_and_policy();
    let top = TempDir::new(IMAGES, "svirt-pool-faults");
    let good = top.join("good");
    std::fs::create_dir(&good).unwrap();
    std::fs::write(good.join("ok.img"), b"x").unwrap();
    let ram = Mount::new("ramfs", "mode=0755", &top.join("ramfs"));
    std::fs::write(ram.0.join("nolabels.img"), b"x").unwrap();
    let ro = Mount::new("tmpfs", "size=1m", &top.join("ro"));
    std::fs::write(ro.0.join("frozen.img"), b"x").unwrap();
    ro.remount("ro");
    let state = TempDir::new("/tmp", "svirt-pool-state");
    let config = state.join("c.toml");
    let pool = |name: &str, path: &Path| {
        format!(
            "[[pool]]\nname = \"{name}\"\ntype = \"dir\"\npath = \"{}\"\n",
            path.display()
        )
    };
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[api]\nsocket = \"{}/api.sock\"\n{}{}{}",
            state.0.display(),
            state.0.display(),
            pool("good", &good),
            pool("ram", &ram.0),
            pool("ro", &ro.0)
        ),
    )
    .unwrap();

    let out = run_cli(&config, &["scan", "--json"]);
    assert!(
        out.status.success(),
        "skips are not failures: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["pools"]["good"]["relabeled"], 2);
    assert_eq!(json["pools"]["ram"]["skipped"]["EOPNOTSUPP"], 2, "{json}");
    assert_eq!(json["pools"]["ro"]["skipped"]["EROFS"], 2, "{json}");
    assert_eq!(label(&good.join("ok.img")).as_deref(), Some(VIRT_IMAGE));

    let status: serde_json::Value =
        serde_json::from_slice(&run_cli(&config, &["status", "--json"]).stdout).unwrap();
    let note = |i: usize| {
        status["pools"][i]["volumes"][0]["note"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert!(note(1).contains("EOPNOTSUPP"), "{status}");
    assert!(note(2).contains("EROFS"), "{status}");

    let uuid = new_uuid();
    assert!(
        run_cli(&config, &["guest", "define", "--uuid", &uuid])
            .status
            .success()
    );
    for (file, why) in [
        (ram.0.join("nolabels.img"), "EOPNOTSUPP"),
        (ro.0.join("frozen.img"), "EROFS"),
    ] {
        let out = run_attach(&config, &uuid, &file, "rw");
        assert_eq!(out.status.code(), Some(1), "{}", file.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{err}");
    }
    let shown: serde_json::Value =
        serde_json::from_slice(&run_cli(&config, &["guest", "show", &uuid]).stdout).unwrap();
    assert_eq!(
        shown["attachments"].as_array().unwrap().len(),
        0,
        "a refused attach left state behind"
    );

    // The agent serves the good pool as usual beside them.
    let _agent = Agent::start(&config);
    std::fs::write(good.join("late.img"), b"x").unwrap();
    assert_label_within_1s(&good.join("late.img"), VIRT_IMAGE);
}

#[test]
fn a_full_state_directory_refuses_changes_and_the_agent_keeps_labeling() {
    require_root_and_policy();
    let pool = TempDir::new(IMAGES, "svirt-pool-full");
    let state_mnt = TempDir::new("/tmp", "svirt-pool-statefs");
    let fs = Mount::new("tmpfs", "size=512k", &state_mnt.0);
    let config = pool.0.with_extension("toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[api]\nsocket = \"{}/api.sock\"\n[[pool]]\nname = \"p\"\ntype = \"dir\"\npath = \"{}\"\n",
            fs.0.display(),
            fs.0.display(),
            pool.0.display()
        ),
    )
    .unwrap();
    let (disk, other) = (pool.join("a.img"), pool.join("b.img"));
    std::fs::write(&disk, b"x").unwrap();
    std::fs::write(&other, b"x").unwrap();
    let uuid = new_uuid();
    let out = run_cli(&config, &["guest", "define", "--uuid", &uuid]);
    assert!(out.status.success());
    let cats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rw = image_label(cats["categories"].as_str().unwrap());
    assert!(run_attach(&config, &uuid, &disk, "rw").status.success());
    let agent = Agent::start(&config);

    // Fill the state filesystem.
    let filler = fs.0.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 1 << 20]);
    let out = run_attach(&config, &uuid, &other, "rw");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a change with a full state dir must fail"
    );
    assert_eq!(
        label(&other).as_deref(),
        Some(VIRT_IMAGE),
        "no label without state"
    );

    // The agent still labels from the last good state.
    set_label(&disk, VIRT_IMAGE);
    assert_label_within_1s(&disk, &rw);
    std::fs::write(pool.join("new.img"), b"x").unwrap();
    assert_label_within_1s(&pool.join("new.img"), VIRT_IMAGE);
    drop(agent);

    // Space back: nothing was half-written, and changes work again.
    std::fs::remove_file(&filler).unwrap();
    let store = svirt_pool::state::Store::open(&fs.0).unwrap();
    store.integrity_check().unwrap();
    assert_eq!(store.attachments(Some(&uuid)).unwrap().len(), 1);
    drop(store);
    assert!(run_attach(&config, &uuid, &other, "ro").status.success());
    let _ = std::fs::remove_file(&config);
}

#[test]
fn a_pair_whose_label_could_not_be_restored_is_not_given_to_another_guest() {
    require_root_and_policy();
    let top = TempDir::new(IMAGES, "svirt-pool-stuck");
    let fs = Mount::new("tmpfs", "size=1m,mode=0711", &top.join("pool"));
    let disk = fs.0.join("disk.img");
    std::fs::write(&disk, b"x").unwrap();
    let state = TempDir::new("/tmp", "svirt-pool-state");
    let config = state.join("c.toml");
    // Three categories: three pairs in all, so a freed pair would be drawn at once.
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{0}\"\n[api]\nsocket = \"{0}/api.sock\"\n[selinux]\ncategories = \"c0.c2\"\n\
             [[pool]]\nname = \"p\"\ntype = \"dir\"\npath = \"{1}\"\nresting_label = \"{VIRT_IMAGE}\"\n",
            state.0.display(),
            fs.0.display()
        ),
    )
    .unwrap();
    let define = |uuid: &str| run_cli(&config, &["guest", "define", "--uuid", uuid]);
    let old = new_uuid();
    let out = define(&old);
    assert!(out.status.success());
    let cats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let old_pair = cats["categories"].as_str().unwrap().to_owned();
    assert!(run_attach(&config, &old, &disk, "rw").status.success());
    assert_eq!(label(&disk), Some(image_label(&old_pair)));

    // The label cannot go back: undefine --force keeps the guest, and says why.
    fs.remount("ro");
    let out = run_cli(&config, &["guest", "undefine", &old, "--force"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("EROFS") && err.contains("stays defined"),
        "{err}"
    );
    assert_eq!(label(&disk), Some(image_label(&old_pair)));
    // Two more guests use up the range: neither gets the pair still on the disk.
    for _ in 0..2 {
        let out = define(&new_uuid());
        assert!(out.status.success());
        let cats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_ne!(cats["categories"].as_str().unwrap(), old_pair);
    }
    assert_eq!(
        define(&new_uuid()).status.code(),
        Some(1),
        "the range is used up"
    );
    // Once the label can be restored, undefine completes and frees the pair.
    fs.remount("rw");
    let out = run_cli(&config, &["guest", "undefine", &old, "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(label(&disk).as_deref(), Some(VIRT_IMAGE));
    let out = define(&new_uuid());
    assert!(out.status.success());
    let cats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cats["categories"].as_str().unwrap(), old_pair);
}
