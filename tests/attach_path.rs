//! How much work one attach does on the file it attaches: the volume is opened once
//! (checked, its backing chain read and its label written through that one
//! descriptor), seen by `strace` on the real binary, in a real pool.

mod common;

use std::process::Command;

use common::images::qcow2;
use common::*;

/// The `open`, `openat` and `openat2` calls of a run of the CLI whose path is `name`
/// or ends in `/name`.
fn opens_of(config: &std::path::Path, args: &[&str], name: &str) -> Vec<String> {
    let log = std::env::temp_dir().join(unique("attach-strace"));
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=open,openat,openat2", "-o"])
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_svirt-pool"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("run strace (the strace package)");
    assert!(
        out.status.success(),
        "svirt-pool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    let quoted = format!("\"{name}\"");
    let tail = format!("/{name}\"");
    text.lines()
        .filter(|l| l.contains(&quoted) || l.contains(&tail))
        .map(str::to_owned)
        .collect()
}

#[test]
fn an_attach_opens_the_volume_once() {
    let bed = Bed::new();
    let name = unique("once");
    let base = format!("{name}-base.raw");
    let overlay = format!("{name}.qcow2");
    std::fs::write(bed.pool.join(&base), vec![0u8; 4096]).unwrap();
    let disk = qcow2(&bed.pool.join(&overlay), Some((&base, "raw")));
    let (uuid, cats) = bed.define_guest("once");

    let volume = disk.to_str().unwrap();
    let args = [
        "attach", "--guest", &uuid, "--volume", volume, "--mode", "rw",
    ];
    let opens = opens_of(&bed.config, &args, &overlay);
    assert_eq!(label(&disk).unwrap(), image_label(&cats));
    assert_eq!(label(&bed.pool.join(&base)).unwrap(), VIRT_CONTENT);
    // Once: one lookup (`O_PATH`) and one open for reading; the check, the backing
    // chain and the label share that descriptor.
    let lookups = opens.iter().filter(|l| l.contains("O_PATH")).count();
    assert_eq!(
        (lookups, opens.len() - lookups),
        (1, 1),
        "the volume was looked up or opened more than once: {opens:#?}"
    );
}
