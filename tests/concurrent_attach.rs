//! Attach and detach called at the same time from many threads of one process, as the
//! agent's API does: the calls waiting for the state lock run as one batch with one
//! commit (`ops::batch`). Each caller must still get its own answer, a refused call
//! must change nothing and not spoil the others, two guests asking for one file `rw` at
//! once must not both get it, and every label must be the one the committed state asks.
//! Real xattrs, real file_contexts, real SQLite; the agent itself is not needed.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Barrier;

use common::*;
use svirt_pool::config::Settings;
use svirt_pool::decide::labels::Mode;
use svirt_pool::ops::{Caller, volumes};

const THREADS: usize = 12;
const ROUNDS: usize = 15;

#[test]
fn concurrent_attaches_and_detaches_each_get_their_own_answer() {
    let bed = Bed::new();
    let settings = Settings::load(&bed.config).unwrap();
    let guests: Vec<(String, String)> = (0..THREADS)
        .map(|i| bed.define_guest(&format!("vm{i}")))
        .collect();
    let disks: Vec<PathBuf> = (0..THREADS)
        .map(|i| bed.file(&format!("disk{i}.img")))
        .collect();
    let contested = bed.file("contested.img");
    let stranger = new_uuid(); // never defined
    let start = Barrier::new(THREADS + 1);

    let contested_wins = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|i| {
                let (settings, start) = (&settings, &start);
                let ((uuid, cats), disk) = (&guests[i], &disks[i]);
                let contested = contested.as_path();
                s.spawn(move || {
                    start.wait();
                    // Everyone asks for the contested file rw at once: one may have it.
                    let won = volumes::attach(settings, Caller::ROOT, uuid, contested, Mode::Rw);
                    for round in 0..ROUNDS {
                        let attached =
                            volumes::attach(settings, Caller::ROOT, uuid, disk, Mode::Rw)
                                .unwrap_or_else(|e| panic!("vm{i} round {round}: {e}"));
                        assert_eq!(attached.label, Some(image_label(cats)), "vm{i}");
                        assert_eq!(label(disk), Some(image_label(cats)), "vm{i} round {round}");
                        let detached = volumes::detach(settings, Caller::ROOT, uuid, disk)
                            .unwrap_or_else(|e| panic!("vm{i} round {round}: {e}"));
                        assert_eq!(detached.label.as_deref(), Some(VIRT_IMAGE), "vm{i}");
                        // A second detach is refused, and refuses nothing else.
                        let again = volumes::detach(settings, Caller::ROOT, uuid, disk);
                        assert!(again.is_err(), "vm{i}: detached twice");
                    }
                    won.ok().map(|l| (i, l.label))
                })
            })
            .collect();
        // Beside them, calls that must be refused.
        let refuser = s.spawn(|| {
            start.wait();
            for round in 0..ROUNDS {
                let e = volumes::attach(&settings, Caller::ROOT, &stranger, &disks[0], Mode::Ro)
                    .expect_err("an undefined guest");
                assert!(e.to_string().contains("not defined"), "round {round}: {e}");
            }
        });
        refuser.join().unwrap();
        let wins: Vec<_> = workers
            .into_iter()
            .filter_map(|w| w.join().unwrap())
            .collect();
        wins
    });

    assert_eq!(
        contested_wins.len(),
        1,
        "two guests got one file rw: {contested_wins:?}"
    );
    let (winner, won_label) = &contested_wins[0];
    assert_eq!(won_label.as_ref(), Some(&image_label(&guests[*winner].1)));
    assert_eq!(label(&contested), Some(image_label(&guests[*winner].1)));
    for disk in &disks {
        assert_eq!(
            label(disk).as_deref(),
            Some(VIRT_IMAGE),
            "{}",
            disk.display()
        );
    }
    // The committed state agrees: only the winner holds anything.
    let store = svirt_pool::state::Store::open(&settings.state_dir).unwrap();
    for (i, (uuid, _)) in guests.iter().enumerate() {
        let held = store.attachments(Some(uuid)).unwrap();
        let expected: Vec<&Path> = if i == *winner {
            vec![Path::new("contested.img")]
        } else {
            vec![]
        };
        let held: Vec<PathBuf> = held
            .iter()
            .map(|a| PathBuf::from(String::from_utf8(a.volume.clone()).unwrap()))
            .collect();
        assert_eq!(held, expected, "vm{i}");
    }
}

#[test]
fn a_batch_that_cannot_commit_records_and_labels_nothing_it_reported_failed() {
    // The state on a small tmpfs, filled while a dozen attaches run at once: whatever
    // each is told, the state and the labels must agree with it.
    require_root_and_policy();
    let pool = TempDir::new(IMAGES, "svirt-pool-batchfull");
    let state_mnt = TempDir::new("/tmp", "svirt-pool-batchfs");
    let fs = Mount::new("tmpfs", "size=512k", &state_mnt.0);
    let config = pool.0.with_extension("toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[[pool]]\nname = \"p\"\ntype = \"dir\"\npath = \"{}\"\n",
            fs.0.display(),
            pool.0.display()
        ),
    )
    .unwrap();
    let settings = Settings::load(&config).unwrap();
    let guests: Vec<(String, String)> = (0..THREADS)
        .map(|_| {
            let uuid = new_uuid();
            let out = run_cli(&config, &["guest", "define", "--uuid", &uuid]);
            assert!(out.status.success(), "{out:?}");
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            (uuid, json["categories"].as_str().unwrap().to_owned())
        })
        .collect();
    let disks: Vec<PathBuf> = (0..THREADS)
        .map(|i| {
            let disk = pool.join(&format!("disk{i}.img"));
            std::fs::write(&disk, b"x").unwrap();
            set_label(&disk, VIRT_IMAGE);
            disk
        })
        .collect();
    // Fill the state filesystem.
    let filler = fs.0.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 1 << 20]);
    let start = Barrier::new(THREADS);
    let results: Vec<bool> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|i| {
                let (settings, start) = (&settings, &start);
                let ((uuid, _), disk) = (&guests[i], &disks[i]);
                s.spawn(move || {
                    start.wait();
                    volumes::attach(settings, Caller::ROOT, uuid, disk, Mode::Rw).is_ok()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    std::fs::remove_file(&filler).unwrap();
    let store = svirt_pool::state::Store::open(&fs.0).unwrap();
    store.integrity_check().unwrap();
    for (i, ok) in results.iter().enumerate() {
        let (uuid, cats) = &guests[i];
        let held = store.attachments(Some(uuid)).unwrap().len();
        let expected_label = if *ok {
            image_label(cats)
        } else {
            VIRT_IMAGE.to_owned()
        };
        assert_eq!(
            held,
            usize::from(*ok),
            "vm{i}: told {ok}, state says {held}"
        );
        assert_eq!(label(&disks[i]), Some(expected_label), "vm{i}: told {ok}");
    }
    assert!(
        results.iter().any(|ok| !ok),
        "the state filesystem was not full"
    );
    drop(store);
    let _ = std::fs::remove_file(&config);
}
