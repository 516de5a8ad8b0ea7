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

#[test]
fn hard_links_to_outside_files_raced_in_a_writable_directory() {
    let bed = Bed::new();
    // Outside the pool but on its filesystem, so the attacker can hard-link it.
    let outside = TempDir::new("/var/lib/libvirt", "svirt-pool-outside");
    let secrets = outside_files(&outside, 1);
    let secret = &secrets[0];
    let (uuid, _) = bed.define_guest("victim");
    // A directory anyone may write (an upload directory): names in it can change at any
    // moment, so the agent may not trust a link count it read.
    let up = bed.pool.join("up");
    std::fs::create_dir(&up).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&up, std::fs::Permissions::from_mode(0o777)).unwrap();
    let _agent = bed.agent();
    let stop = AtomicBool::new(false);
    let rounds = AtomicUsize::new(0);
    let tries = AtomicUsize::new(0);
    let target = up.join("x.img");
    let relabeled_during = AtomicUsize::new(0);
    std::thread::scope(|s| {
        // The attacker: `x.img` is a hard link to the secret (two links), then a fresh
        // file is renamed over it: whoever opened the link now holds the secret with one
        // link, the one outside the pool.
        s.spawn(|| {
            let decoy = up.join("decoy");
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::hard_link(secret, &target);
                let _ = std::fs::write(&decoy, b"decoy");
                let _ = std::fs::rename(&decoy, &target);
                if i.is_multiple_of(2) {
                    let _ = std::fs::remove_file(&target);
                }
                i += 1;
                rounds.fetch_add(1, Ordering::Relaxed);
                if label(secret).as_deref() != Some(SECRET) {
                    relabeled_during.fetch_add(1, Ordering::Relaxed);
                    set_label(secret, SECRET);
                }
            }
        });
        // Scans and attach calls aimed at the raced name; the agent reacts to every event.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                bed.cli(&["scan"]);
                bed.attach(&uuid, &target, "rw");
                bed.cli(&[
                    "detach",
                    "--guest",
                    &uuid,
                    "--volume",
                    target.to_str().unwrap(),
                ]);
                tries.fetch_add(1, Ordering::Relaxed);
            }
        });
        std::thread::sleep(Duration::from_secs(10));
        stop.store(true, Ordering::Relaxed);
    });
    let relabeled = relabeled_during.load(Ordering::Relaxed) + outside_relabels(&secrets);
    println!(
        "hard-link race: {} attacker rounds, {} scan+attach+detach rounds, outside relabels: {relabeled}",
        rounds.load(Ordering::Relaxed),
        tries.load(Ordering::Relaxed),
    );
    assert!(rounds.load(Ordering::Relaxed) > 1000, "the race barely ran");
    assert_eq!(relabeled, 0, "the file outside the pool was relabeled");
    // The protocol still labels files of the writable directory, under their own names.
    let _ = std::fs::remove_file(&target);
    let fresh = up.join("fresh.img");
    std::fs::write(&fresh, b"img").unwrap();
    set_label(&fresh, "system_u:object_r:tmp_t:s0");
    bed.ok(&["scan"]);
    assert_eq!(label(&fresh).as_deref(), Some(VIRT_IMAGE));
    bed.attach_ok(&uuid, &fresh, "rw");
    assert!(label(&fresh).unwrap().starts_with(SVIRT_IMAGE));
    assert!(!bed.pool.join(".svirt-pool").exists());
}

/// The agent with its log (info level) captured.
struct LoggedAgent {
    child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl LoggedAgent {
    fn start(bed: &Bed) -> LoggedAgent {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_svirt-pool"))
            .args(["--config", bed.config.to_str().unwrap(), "agent"])
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let reader = {
            let log = log.clone();
            let mut stderr = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = std::io::Read::read(&mut stderr, &mut buf) {
                    log.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            })
        };
        let agent = LoggedAgent {
            child,
            log,
            reader: Some(reader),
        };
        assert!(wait_for(Duration::from_secs(10), || agent
            .logged("initial scan done")));
        agent
    }

    fn logged(&self, what: &str) -> bool {
        self.log.lock().unwrap().contains(what)
    }

    /// Stops the agent (SIGTERM) and returns its whole log.
    fn stop(mut self) -> String {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        );
        self.child.wait().unwrap();
        self.reader.take().unwrap().join().unwrap();
        self.log.lock().unwrap().clone()
    }
}

/// Lines of `log` that a name forged: they start with `FORGED`.
fn forged_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.starts_with("FORGED")).collect()
}

#[test]
fn a_newline_in_a_file_name_cannot_forge_a_log_line() {
    let bed = Bed::new();
    let agent = LoggedAgent::start(&bed);
    // Created while the agent watches: it logs the relabel with the name.
    let forged = bed.pool.0.join("x.img\nFORGED: root password is hunter2");
    std::fs::write(&forged, b"x").unwrap();
    assert_label_within_1s(&forged, VIRT_IMAGE);
    assert!(wait_for(Duration::from_secs(2), || agent.logged("relabeled")));
    let log = agent.stop();
    assert!(
        log.contains(r"x.img\nFORGED"),
        "the name is not logged escaped: {log}"
    );
    assert_eq!(forged_lines(&log), Vec::<&str>::new(), "{log}");
}

#[test]
fn no_name_forges_a_log_line_at_any_api_log_site() {
    let bed = Bed::new();
    let (uuid, _) = bed.define_guest("logged");
    let agent = LoggedAgent::start(&bed);
    // Every API method that logs a volume or name, reached through the CLI (which goes
    // through the running agent: each logs "api mutation" with its method).
    let evil = |site: &str| {
        format!("{site}\nFORGED {site} INFO api mutation method=\"UndefineGuest\" uid=0")
    };
    let attached = bed.file(&evil("attach"));
    bed.attach_ok(&uuid, &attached, "rw");
    bed.ok(&[
        "detach",
        "--guest",
        &uuid,
        "--volume",
        attached.to_str().unwrap(),
    ]);
    // CreateVolume refuses such names; a file made by hand can still be deleted.
    let created = evil("create");
    let out = bed.cli(&[
        "volume",
        "create",
        "--pool",
        "test",
        "--format",
        "raw",
        "--capacity",
        "1M",
        &created,
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    bed.file(&evil("delete"));
    bed.ok(&["volume", "delete", "--pool", "test", &evil("delete")]);
    let source = TempDir::new("/tmp", "svirt-pool-import");
    let iso = source.join("media.iso");
    std::fs::write(&iso, b"iso").unwrap();
    let out = bed.cli(&[
        "import",
        iso.to_str().unwrap(),
        "--pool",
        "test",
        "--name",
        &evil("import"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "Import takes no such name: {out:?}"
    );
    // A hand relabel the agent repairs, and a file it cannot label, each logged.
    let repaired = bed.file(&evil("repair"));
    set_label(&repaired, "system_u:object_r:tmp_t:s0");
    assert_label_within_1s(&repaired, VIRT_IMAGE);
    let log = agent.stop();
    for method in ["Attach", "Detach", "DeleteVolume"] {
        assert!(
            log.contains(&format!("method=\"{method}\"")),
            "{method} was not logged through the agent: {log}"
        );
    }
    assert_eq!(forged_lines(&log), Vec::<&str>::new(), "{log}");
    assert!(log.contains(r"attach\nFORGED attach"), "{log}");
}

#[test]
fn a_file_an_older_agent_s_crash_left_in_its_staging_directory_goes_back_to_its_name() {
    let bed = Bed::new();
    // What a SIGKILL of an older agent (which moved names into a staging directory to
    // label them) between "moved aside" and "moved back" leaves: the file in the
    // staging directory and, beside it, where it came from. An upgrade loses nothing.
    std::fs::create_dir_all(bed.pool.join("up")).unwrap();
    let staging = bed.pool.join(".svirt-pool");
    std::fs::create_dir(&staging).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(staging.join("1f-42-0"), b"the user's data").unwrap();
    std::fs::write(staging.join("1f-42-0.origin"), b"up/disk.img").unwrap();
    // And one whose name someone took meanwhile.
    std::fs::write(staging.join("20-42-1"), b"older data").unwrap();
    std::fs::write(staging.join("20-42-1.origin"), b"up/taken.img").unwrap();
    std::fs::write(bed.pool.join("up/taken.img"), b"newer data").unwrap();
    // A writer of the directory also takes the names a predictable scheme would try
    // beside it, hoping to keep the file hidden in the staging directory.
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(staging.join("20-42-1")).unwrap().ino();
    for n in 0..100 {
        std::fs::write(
            bed.pool.join(&format!("up/taken.img.svirt-pool-{ino}-{n}")),
            b"squatter",
        )
        .unwrap();
    }

    bed.ok(&["scan"]);
    let back = bed.pool.join("up/disk.img");
    assert_eq!(std::fs::read(&back).unwrap(), b"the user's data");
    assert_eq!(
        label(&back).as_deref(),
        Some(VIRT_IMAGE),
        "and labeled by the scan"
    );
    assert_eq!(
        std::fs::read(bed.pool.join("up/taken.img")).unwrap(),
        b"newer data"
    );
    let beside: Vec<_> = std::fs::read_dir(bed.pool.join("up"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("taken.img.svirt-pool-"))
        .filter(|n| std::fs::read(bed.pool.join("up").join(n)).unwrap() != b"squatter")
        .collect();
    assert_eq!(beside.len(), 1, "the older file is put beside, not lost");
    assert_eq!(
        std::fs::read(bed.pool.join("up").join(&beside[0])).unwrap(),
        b"older data"
    );
    assert!(
        !bed.pool.join(".svirt-pool").exists(),
        "the emptied staging directory is removed"
    );
}
