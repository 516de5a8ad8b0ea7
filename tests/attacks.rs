//! A user who can write into a pool tries to make the agent relabel something outside
//! it: directories swapped for symlinks while the agent walks (raced for 10 s), odd
//! names, very deep trees. Files outside the pool must keep their labels: the count of
//! outside relabels printed at the end must be 0.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

const SECRET: &str = "system_u:object_r:shadow_t:s0";

/// Files outside every pool with a label nobody may change.
fn outside_files(dir: &TempDir, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let p = dir.join(&format!("secret{i}"));
            std::fs::write(&p, b"secret").unwrap();
            set_label(&p, SECRET);
            p
        })
        .collect()
}

fn outside_relabels(files: &[PathBuf]) -> usize {
    files
        .iter()
        .filter(|f| label(f).as_deref() != Some(SECRET))
        .count()
}

#[test]
fn directories_swapped_for_symlinks_while_the_agent_walks() {
    let bed = Bed::new();
    let outside = TempDir::new("/var/lib", "svirt-pool-outside");
    let secrets = outside_files(&outside, 20);
    let (uuid, _) = bed.define_guest("victim");
    for i in 0..50 {
        bed.file(&format!("real/f{i}.img"));
    }
    let _agent = bed.agent();
    let stop = AtomicBool::new(false);
    let swaps = AtomicUsize::new(0);
    let scans = AtomicUsize::new(0);
    std::thread::scope(|s| {
        // The attacker: `swap` is a real directory one moment, a symlink to the outside
        // directory the next, with new files appearing in both.
        s.spawn(|| {
            let swap = bed.pool.join("swap");
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::remove_file(&swap);
                let _ = std::fs::remove_dir_all(&swap);
                std::fs::create_dir(&swap).unwrap();
                std::fs::write(swap.join(format!("n{i}.img")), b"x").unwrap();
                std::fs::remove_dir_all(&swap).unwrap();
                symlink(&outside.0, &swap).unwrap();
                let _ = std::fs::write(bed.pool.join(&format!("poke{}.img", i % 8)), b"y");
                i += 1;
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        });
        // Meanwhile: one-shot scans, and attach calls aimed through the swapped name.
        s.spawn(|| {
            let target = bed.pool.join("swap/secret0");
            while !stop.load(Ordering::Relaxed) {
                bed.cli(&["scan"]);
                bed.attach(&uuid, &target, "rw");
                scans.fetch_add(1, Ordering::Relaxed);
            }
        });
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let relabeled = outside_relabels(&secrets);
    println!(
        "attack: {} swaps, {} scans+attaches, outside relabels: {relabeled}",
        swaps.load(Ordering::Relaxed),
        scans.load(Ordering::Relaxed)
    );
    assert!(swaps.load(Ordering::Relaxed) > 100, "the race barely ran");
    assert_eq!(relabeled, 0, "a file outside the pool was relabeled");
}

#[test]
fn odd_names_are_labeled_and_reported() {
    let bed = Bed::new();
    let names: Vec<Vec<u8>> = vec![
        b"new\nline.img".to_vec(),
        b"tab\there.img".to_vec(),
        b"\xff\xfe-not-utf8.img".to_vec(),
        b"-dash.img".to_vec(),
        b" space .img".to_vec(),
    ];
    let paths: Vec<PathBuf> = names
        .iter()
        .map(|n| bed.pool.0.join(std::ffi::OsStr::from_bytes(n)))
        .collect();
    for p in &paths {
        std::fs::write(p, b"x").unwrap();
    }
    let json: serde_json::Value = serde_json::from_str(&bed.ok(&["scan", "--json"])).unwrap();
    assert_eq!(json["total"]["entries"], names.len());
    for p in &paths {
        assert_eq!(label(p).as_deref(), Some(VIRT_IMAGE), "{p:?}");
    }
    let status: serde_json::Value = serde_json::from_str(&bed.ok(&["status", "--json"])).unwrap();
    assert_eq!(
        status["pools"][0]["volumes"].as_array().unwrap().len(),
        names.len()
    );
    // The agent handles them as they appear too.
    let _agent = bed.agent();
    let late = bed
        .pool
        .0
        .join(std::ffi::OsStr::from_bytes(b"late\n\xff.img"));
    std::fs::write(&late, b"x").unwrap();
    assert_label_within_1s(&late, VIRT_IMAGE);
}

#[test]
fn very_deep_trees_are_walked_without_recursion_or_descriptor_exhaustion() {
    let bed = Bed::new();
    // 1,500 levels of one-letter directories: a recursive walker holding a descriptor
    // per level would run out of descriptors (1,024 by default) or stack.
    let mut deep = bed.pool.0.clone();
    for _ in 0..1500 {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    let bottom = deep.join("bottom.img");
    std::fs::write(&bottom, b"x").unwrap();
    let json: serde_json::Value = serde_json::from_str(&bed.ok(&["scan", "--json"])).unwrap();
    assert_eq!(json["total"]["directories"], 1501);
    assert_eq!(label(&bottom).as_deref(), Some(VIRT_IMAGE));
    // Deeper than PATH_MAX below the pool: reported as failures, nothing else breaks.
    let mut deeper = deep.clone();
    for _ in 0..1500 {
        deeper.push("e");
        if std::fs::create_dir(&deeper).is_err() {
            break;
        }
    }
    let out = bed.cli(&["scan"]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
    assert_eq!(label(&bottom).as_deref(), Some(VIRT_IMAGE));
}
