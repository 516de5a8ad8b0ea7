//! An inotify queue overflow (IN_Q_OVERFLOW) makes the agent rescan: no file is left
//! unlabeled. Its own test binary: it lowers the system-wide
//! `fs.inotify.max_queued_events` for a moment, which must not overlap other tests.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn no_file_is_left_behind_after_an_inotify_overflow() {
    let bed = Bed::new();
    // A tiny event queue for this agent only: the limit is read when inotify_init runs,
    // so it is put back as soon as the agent is up.
    let knob = "/proc/sys/fs/inotify/max_queued_events";
    let old = std::fs::read_to_string(knob).unwrap();
    std::fs::write(knob, "16").unwrap();
    let agent = std::panic::catch_unwind(|| bed.agent());
    std::fs::write(knob, old.trim()).unwrap();
    let _agent = agent.unwrap();
    let files: Vec<_> = (0..500)
        .map(|i| bed.file(&format!("burst/f{i:03}.img")))
        .collect();
    for f in &files {
        let ok = wait_for(Duration::from_secs(5), || {
            label(f).as_deref() == Some(VIRT_IMAGE)
        });
        assert!(
            ok,
            "{} left unlabeled after the queue overflowed",
            f.display()
        );
    }
}
