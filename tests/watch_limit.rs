//! The inotify watch limit reached: the agent warns and rescans the pool periodically
//! instead of going silent. In its own test binary: it lowers a system-wide limit
//! (`fs.inotify.max_user_watches`) for a moment, and test binaries run one at a time.

mod common;

use std::time::Duration;

use common::*;

/// How many inotify watches exist now (all of root's processes: udevd's among them).
fn watches_in_use() -> usize {
    let mut n = 0;
    for proc in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(fds) = std::fs::read_dir(proc.path().join("fdinfo")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(text) = std::fs::read_to_string(fd.path()) {
                n += text
                    .lines()
                    .filter(|l| l.starts_with("inotify wd:"))
                    .count();
            }
        }
    }
    n
}

#[test]
fn a_pool_beyond_the_watch_limit_is_rescanned_instead() {
    let bed = Bed::with_extra("");
    std::fs::write(
        &bed.config,
        std::fs::read_to_string(&bed.config).unwrap().replacen(
            "[api]",
            "[agent]\nunwatched_rescan_secs = 1\n\n[api]",
            1,
        ),
    )
    .unwrap();
    for i in 0..20 {
        bed.file(&format!("dir{i:02}/seed.img"));
    }
    let knob = "/proc/sys/fs/inotify/max_user_watches";
    let old = std::fs::read_to_string(knob).unwrap();
    // Room for the pool root and a few directories, not all 21.
    std::fs::write(knob, (watches_in_use() + 4).to_string()).unwrap();
    let agent = std::panic::catch_unwind(|| bed.agent());
    std::fs::write(knob, old.trim()).unwrap();
    let _agent = agent.unwrap();
    // Every directory gets a new file; those without a watch are found by the rescans.
    let files: Vec<_> = (0..20)
        .map(|i| bed.file(&format!("dir{i:02}/late.img")))
        .collect();
    for f in &files {
        let ok = wait_for(Duration::from_secs(4), || {
            label(f).as_deref() == Some(VIRT_IMAGE)
        });
        assert!(ok, "{} was never labeled", f.display());
    }
}
