//! libvirt from the tests: `virsh` on `qemu:///system`, and libvirtd started if none
//! runs (scripts/start-libvirtd).

use std::process::{Command, Output};

/// Runs `virsh -c qemu:///system args...`.
pub fn virsh(args: &[&str]) -> Output {
    Command::new("virsh")
        .args(["-c", "qemu:///system"])
        .args(args)
        .output()
        .expect("virsh (libvirt-clients) is needed: scripts/install-deps --tests")
}

/// Runs virsh and asserts it exits 0; returns stdout.
pub fn virsh_ok(args: &[&str]) -> String {
    let out = virsh(args);
    assert!(
        out.status.success(),
        "virsh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts libvirtd unless one runs.
pub fn start_libvirtd() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/start-libvirtd");
    let out = Command::new(script).output().unwrap();
    assert!(
        out.status.success(),
        "start-libvirtd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
