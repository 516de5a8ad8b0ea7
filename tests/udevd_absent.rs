//! udevd absent: the agent still starts, labels its dir pools and answers status; LV
//! nodes wait for udev. In its own test binary, since it stops the system's udevd for a
//! moment (test binaries run one at a time), and always starts it again.

mod common;

use std::process::Command;

use common::lvm::*;
use common::*;

/// Starts udevd again when dropped, whatever happened.
struct RestartUdevd;

impl Drop for RestartUdevd {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/start-udevd");
        let _ = Command::new(script).status();
    }
}

#[test]
fn the_agent_runs_without_udevd() {
    let bed = Bed::new();
    let lvm = LvmBed::new(true);
    // One config with a dir pool and an lvm pool.
    let text = std::fs::read_to_string(&bed.config).unwrap()
        + &format!(
            "\n[[pool]]\nname = \"vms\"\ntype = \"lvm\"\nvg = \"{}\"\nlvm_args = [\"--driverloaded\", \"n\"]\n",
            lvm.vg
        );
    std::fs::write(&bed.config, text).unwrap();

    let _restart = RestartUdevd;
    let stopped = Command::new("udevadm")
        .args(["control", "--exit"])
        .status()
        .unwrap();
    assert!(stopped.success(), "could not stop udevd");
    let agent = bed.agent();
    let f = bed.file("while-udevd-is-gone.img");
    assert_label_within_1s(&f, VIRT_IMAGE);
    let status = bed.cli(&["status", "--json"]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        json["pools"][1]["volumes"][0]["volume"],
        lvm.volume("lv1"),
        "lvs still lists the LV"
    );
    assert!(agent.stop().success());
}
