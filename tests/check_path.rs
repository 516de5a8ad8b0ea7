//! `check-path` against the real system: DAC answered by the kernel for the emulator's
//! user (libvirt-qemu, from the libvirt packages), SELinux verdicts compared with
//! audit2why on the installed policy for every component, and the fix it suggests
//! applied verbatim until the file is reachable.

mod common;

use std::process::Command;

use common::oracle::Oracle;
use common::*;

fn check(bed: &Bed, path: &std::path::Path, guest: Option<&str>) -> (serde_json::Value, bool) {
    let mut args = vec!["check-path", "--json", path.to_str().unwrap()];
    if let Some(g) = guest {
        args.extend(["--guest", g]);
    }
    let out = bed.cli(&args);
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (json, out.status.success())
}

fn sh(line: &str) {
    let out = Command::new("sh").args(["-c", line]).output().unwrap();
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_component_is_judged_as_the_policy_and_the_kernel_would() {
    let bed = Bed::new();
    let disk = bed.file("disk.img");
    std::fs::set_permissions(&disk, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (g, _) = bed.define_guest("checked");
    bed.attach_ok(&g, &disk, "rw");

    let (json, ok) = check(&bed, &disk, Some(&g));
    assert!(!ok, "{json}");
    assert!(
        json["emulator"]
            .as_str()
            .unwrap()
            .starts_with("libvirt-qemu"),
        "{json}"
    );
    // Each SELinux verdict is audit2why's for the same labels.
    let mut oracle = Oracle::start();
    let process = json["process_label"].as_str().unwrap().to_owned();
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.last().unwrap()["path"], disk.to_str().unwrap());
    for s in steps {
        let Some(label) = s["label"].as_str() else {
            continue;
        };
        let class = if s["kind"] == "dir" { "dir" } else { "file" };
        for (key, expect) in [("selinux_allowed", true), ("selinux_denied", false)] {
            for perm in s[key].as_array().unwrap() {
                let perm = perm.as_str().unwrap();
                assert_eq!(
                    oracle.allows_class(&process, label, class, &[perm]),
                    expect,
                    "{} {perm} on {label}",
                    s["path"]
                );
            }
        }
    }
    // Its own rw disk: SELinux allows it; DAC blocks (root's 0600 file).
    let file = steps.last().unwrap();
    assert_eq!(file["selinux_denied"], serde_json::json!([]), "{json}");
    assert_eq!(
        file["dac_denied"],
        serde_json::json!(["read", "write"]),
        "{json}"
    );
    assert_eq!(json["blocked_at"], disk.to_str().unwrap());
    // The suggested fix, applied as given, makes it reachable.
    let fix = json["fix"].as_str().unwrap();
    assert!(fix.starts_with("setfacl -m u:libvirt-qemu:rw "), "{fix}");
    sh(fix);
    let (json, ok) = check(&bed, &disk, Some(&g));
    assert!(ok && json["reachable"] == true, "{json}");

    // Another guest's disk: the policy blocks it, and says to attach it.
    let (other, _) = bed.define_guest("other");
    let (json, ok) = check(&bed, &disk, Some(&other));
    assert!(!ok);
    assert_eq!(
        json["steps"].as_array().unwrap().last().unwrap()["selinux_denied"],
        serde_json::json!(["read", "open"])
    );
    assert!(
        json["fix"].as_str().unwrap().contains("svirt-pool attach"),
        "{json}"
    );
    // Nothing changed.
    assert_eq!(label(&disk), Some(image_label(&bed_pair(&bed, &g))));
}

fn bed_pair(bed: &Bed, uuid: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(&bed.ok(&["guest", "show", uuid])).unwrap();
    json["categories"].as_str().unwrap().to_owned()
}

#[test]
fn a_file_outside_the_pools_is_blocked_at_the_first_closed_directory() {
    let bed = Bed::new();
    let home = TempDir::new("/var/tmp", "svirt-pool-home");
    std::fs::set_permissions(&home.0, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let iso = home.join("downloaded.iso");
    std::fs::write(&iso, b"iso").unwrap();
    let (json, ok) = check(&bed, &iso, None);
    assert!(!ok);
    assert_eq!(json["blocked_at"], home.0.to_str().unwrap(), "{json}");
    let fix = json["fix"].as_str().unwrap();
    assert_eq!(
        fix,
        format!("setfacl -m u:libvirt-qemu:x {}", home.0.display())
    );
    sh(fix);
    // DAC now lets it search; the policy still does not (a directory file_contexts
    // gives no label to): import the file into a pool.
    let (json, _) = check(&bed, &iso, None);
    let dir_step = &json["steps"].as_array().unwrap()[3];
    assert_eq!(dir_step["dac_denied"], serde_json::json!([]), "{json}");
    assert_eq!(
        dir_step["selinux_denied"],
        serde_json::json!(["search"]),
        "{json}"
    );
    assert_eq!(json["blocked_at"], home.0.to_str().unwrap(), "{json}");
    assert!(
        json["fix"].as_str().unwrap().contains("svirt-pool import"),
        "{json}"
    );
    let (json, ok) = check(&bed, &bed.pool.join("missing.iso"), None);
    assert!(!ok);
    assert_eq!(json["reason"], "it does not exist");
    let out = bed.cli(&["check-path", "relative/../x"]);
    assert_eq!(out.status.code(), Some(2));
}
