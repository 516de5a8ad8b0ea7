//! The agent with real inotify: new, moved-in and deep files labeled within a second,
//! hand relabels repaired, restarts converge, the pool directory may come and go, and
//! CLI commands running beside it never leave a stale label.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use svirt_pool::registry::Holds;

#[test]
fn files_created_moved_in_or_deep_in_a_new_tree_are_labeled_within_a_second() {
    let bed = Bed::new();
    let agent = bed.agent();

    let created = bed.file("created.img");
    assert_label_within_1s(&created, VIRT_IMAGE);

    let outside = TempDir::new("/var/lib", "svirt-pool-outside");
    let staged = outside.join("downloaded.iso");
    std::fs::write(&staged, b"iso").unwrap();
    let moved = bed.pool.join("downloaded.iso");
    std::fs::rename(&staged, &moved).unwrap();
    assert_label_within_1s(&moved, VIRT_IMAGE);

    let deep = bed.pool.join("a/b/c/d/e");
    std::fs::create_dir_all(&deep).unwrap();
    let deep_file = deep.join("disk.qcow2");
    std::fs::write(&deep_file, b"qcow").unwrap();
    assert_label_within_1s(&deep_file, VIRT_IMAGE);
    assert_label_within_1s(&bed.pool.join("a/b"), VIRT_IMAGE);

    // A whole tree moved in at once.
    let tree = outside.join("tree");
    std::fs::create_dir_all(tree.join("x/y")).unwrap();
    std::fs::write(tree.join("x/y/z.img"), b"z").unwrap();
    std::fs::rename(&tree, bed.pool.join("tree")).unwrap();
    assert_label_within_1s(&bed.pool.join("tree/x/y/z.img"), VIRT_IMAGE);

    assert!(agent.stop().success(), "SIGTERM is a clean exit");
}

#[test]
fn a_hand_relabel_is_repaired() {
    let bed = Bed::new();
    let disk = bed.file("vm.img");
    let (uuid, cats) = bed.define_guest("vm");
    bed.attach_ok(&uuid, &disk, "rw");
    let _agent = bed.agent();
    set_label(&disk, "system_u:object_r:virt_image_t:s0");
    assert_label_within_1s(&disk, &image_label(&cats));
    let free = bed.file("free.img");
    assert_label_within_1s(&free, VIRT_IMAGE);
    set_label(&free, "system_u:object_r:svirt_image_t:s0:c1,c2");
    assert_label_within_1s(&free, VIRT_IMAGE);
}

#[test]
fn the_last_of_a_burst_of_hand_relabels_is_repaired() {
    // The engine reads a stream of events in batches (at most one batch per 20 ms):
    // the events that arrive while it waits must not be lost.
    let bed = Bed::new();
    let disk = bed.file("vm.img");
    let (uuid, cats) = bed.define_guest("vm");
    bed.attach_ok(&uuid, &disk, "rw");
    let _agent = bed.agent();
    let others: Vec<PathBuf> = (0..20)
        .map(|i| bed.file(&format!("other{i}.img")))
        .collect();
    for round in 0..200 {
        set_label(&disk, "system_u:object_r:virt_image_t:s0");
        set_label(&others[round % others.len()], "system_u:object_r:etc_t:s0");
    }
    assert_label_within_1s(&disk, &image_label(&cats));
    for other in &others {
        assert_label_within_1s(other, VIRT_IMAGE);
    }
}

#[test]
fn a_restart_converges_on_what_changed_while_the_agent_was_down() {
    let bed = Bed::new();
    let (uuid, cats) = bed.define_guest("vm");
    let disk = bed.file("vm.img");
    let agent = bed.agent();
    assert_label_within_1s(&disk, VIRT_IMAGE);
    agent.kill();

    // While it is down: a state change recorded without labels (as after a crash
    // between the two), hand relabels, and new files.
    set_label(&disk, "system_u:object_r:etc_t:s0");
    let added = bed.file("later/added.img");
    let store_dir = bed.state.0.clone();
    {
        let mut store = svirt_pool::state::Store::open(&store_dir).unwrap();
        store
            .attach(&svirt_pool::state::Attachment {
                guest: uuid.clone(),
                pool: "test".into(),
                volume: b"vm.img".to_vec(),
                mode: svirt_pool::decide::labels::Mode::Rw,
                // As rows from before files were recorded: held by name.
                file: None,
                via: None,
                host: None,
                label: None,
            })
            .unwrap();
    }
    let _agent = bed.agent();
    // READY=1 comes after the first scan: everything is right already.
    assert_eq!(label(&disk).unwrap(), image_label(&cats));
    assert_eq!(label(&added).unwrap(), VIRT_IMAGE);
}

#[test]
fn a_removed_and_recreated_pool_directory_is_watched_again() {
    let bed = Bed::new();
    let _agent = bed.agent();
    std::fs::remove_dir_all(&bed.pool.0).unwrap();
    // Recreated at once: the agent must notice the directory is another one.
    std::fs::create_dir(&bed.pool.0).unwrap();
    // Found again on the next tick (1 s), then watched: files created later get labeled.
    let found = wait_for(Duration::from_secs(3), || {
        label(&bed.pool.0).as_deref() == Some(VIRT_IMAGE)
    });
    assert!(
        found,
        "recreated pool root not relabeled: {:?}",
        label(&bed.pool.0)
    );
    let f = bed.file("after.img");
    assert_label_within_1s(&f, VIRT_IMAGE);
}

#[test]
fn cli_commands_beside_a_busy_agent_leave_no_stale_label() {
    let bed = Bed::new();
    let disks: Vec<_> = (0..6).map(|i| bed.file(&format!("d{i}.img"))).collect();
    let guests: Vec<_> = (0..3).map(|i| bed.define_guest(&format!("g{i}"))).collect();
    let _agent = bed.agent();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        // A writer keeps the agent busy with CLOSE_WRITE events on the same files.
        let writer = s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for d in &disks {
                    std::fs::write(d, b"rewrite").unwrap();
                }
            }
        });
        let mut handles = Vec::new();
        for (gi, (uuid, _)) in guests.iter().enumerate() {
            let bed = &bed;
            let disks = &disks;
            handles.push(s.spawn(move || {
                for round in 0..8 {
                    let d = disks[(gi * 2 + round % 2) % disks.len()]
                        .to_str()
                        .unwrap()
                        .to_owned();
                    bed.attach_ok(uuid, &d, "rw");
                    if round % 3 != 2 {
                        bed.ok(&["detach", "--guest", uuid, "--volume", &d]);
                    }
                }
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
    });
    // Once the agent drained its queue (no drift left), every label is what the state says.
    let status =
        || -> serde_json::Value { serde_json::from_str(&bed.ok(&["status", "--json"])).unwrap() };
    let settled = wait_for(Duration::from_secs(5), || {
        status()["pools"][0]["volumes"]
            .as_array()
            .is_some_and(|vs| vs.iter().all(|v| v["drift"] == false))
    });
    assert!(settled, "labels still drift: {}", status());
    let status = status();
    let volumes = status["pools"][0]["volumes"].as_array().unwrap();
    assert_eq!(
        volumes.len(),
        disks.len(),
        "status lists every volume: {status}"
    );
    for v in volumes {
        assert_eq!(v["drift"], false, "stale label: {v}");
        let holders = v["attachments"].as_array().unwrap();
        let expected = match holders.len() {
            0 => VIRT_IMAGE.to_string(),
            1 => {
                let uuid = holders[0]["guest"].as_str().unwrap();
                let cats = &guests.iter().find(|(u, _)| u == uuid).unwrap().1;
                image_label(cats)
            }
            n => panic!("{n} rw holders of one volume: {v}"),
        };
        assert_eq!(
            label(std::path::Path::new(v["path"].as_str().unwrap())).unwrap(),
            expected
        );
    }
}

#[test]
fn a_new_file_under_an_attached_name_is_not_the_guest_s() {
    let bed = Bed::new();
    let (uuid, cats) = bed.define_guest("vm");
    let disk = bed.file("disk.img");
    bed.attach_ok(&uuid, &disk, "rw");
    assert_eq!(label(&disk).unwrap(), image_label(&cats));
    // The file goes; another takes its name (a scan, then the agent watching).
    std::fs::remove_file(&disk).unwrap();
    std::fs::write(&disk, b"someone else's").unwrap();
    bed.ok(&["scan"]);
    assert_eq!(label(&disk).as_deref(), Some(VIRT_IMAGE));
    let _agent = bed.agent();
    std::fs::remove_file(&disk).unwrap();
    let fresh = bed.pool.join("fresh");
    std::fs::write(&fresh, b"moved in").unwrap();
    std::fs::rename(&fresh, &disk).unwrap();
    assert_label_within_1s(&disk, VIRT_IMAGE);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(label(&disk).as_deref(), Some(VIRT_IMAGE), "captured later");
    // Attaching the new file to another guest is no conflict with the stale attachment.
    let (other, other_cats) = bed.define_guest("other");
    bed.attach_ok(&other, &disk, "rw");
    assert_eq!(label(&disk).unwrap(), image_label(&other_cats));
    let shown = bed.ok(&["guest", "show", &uuid]);
    assert!(
        !shown.contains("disk.img"),
        "the gone file's attachment stays: {shown}"
    );
}
