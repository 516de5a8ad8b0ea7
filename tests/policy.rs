//! The SELinux policy module for the agent (policy/svirt_pool.{te,if,fc}), built with
//! Debian's selinux-policy-dev Makefile, installed into a copy of this machine's policy
//! store (`semodule -p ROOT`, the machine's own policy untouched), and read back from
//! the policy that install built with `sesearch`: the agent may relabel exactly the
//! virt types and nothing else, and writes only its own files and the pools'.
//! (SELinux is not enabled in this kernel: the module cannot be run confined here.)

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// (target type, class) of every `allow svirt_pool_t T:C { ... }` rule granting `perm`.
fn targets(policy: &Path, perm: &str, class: Option<&str>) -> BTreeSet<(String, String)> {
    let mut cmd = Command::new("sesearch");
    cmd.args(["-A", "-s", "svirt_pool_t", "-p", perm]);
    if let Some(class) = class {
        cmd.args(["-c", class]);
    }
    ok(cmd.arg(policy))
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("allow svirt_pool_t ")?;
            let (target, rest) = rest.split_once(':')?;
            let class = rest.split_whitespace().next()?;
            Some((target.to_owned(), class.to_owned()))
        })
        .collect()
}

fn types(rules: &BTreeSet<(String, String)>) -> BTreeSet<&str> {
    rules.iter().map(|(t, _)| t.as_str()).collect()
}

#[test]
fn the_agent_may_relabel_the_virt_types_and_nothing_else() {
    common::require_root_and_policy();
    let build = tempfile::tempdir().unwrap();
    for f in ["svirt_pool.te", "svirt_pool.if", "svirt_pool.fc"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("policy").join(f),
            build.path().join(f),
        )
        .unwrap();
    }
    let made = ok(Command::new("make")
        .args(["-f", "/usr/share/selinux/devel/Makefile", "svirt_pool.pp"])
        .current_dir(build.path()));
    assert!(
        !made.contains("Warning") && !made.contains("warning"),
        "{made}"
    );

    // A copy of the machine's store and policy; the module installed there.
    let root = tempfile::tempdir().unwrap();
    for (from, to) in [("/var/lib/selinux", "var/lib"), ("/etc/selinux", "etc")] {
        std::fs::create_dir_all(root.path().join(to)).unwrap();
        ok(Command::new("cp")
            .args(["-a", from])
            .arg(root.path().join(to)));
    }
    let before = std::fs::read("/etc/selinux/default/policy/policy.33").ok();
    ok(Command::new("semodule")
        .args(["-n", "-p"])
        .arg(root.path())
        .arg("-i")
        .arg(build.path().join("svirt_pool.pp")));
    assert_eq!(
        std::fs::read("/etc/selinux/default/policy/policy.33").ok(),
        before,
        "the machine's own policy was changed"
    );
    let policy = root.path().join("etc/selinux/default/policy/policy.33");

    let virt = ["svirt_image_t", "virt_content_t", "virt_image_t"];
    let mut relabel = virt.to_vec();
    relabel.push("fixed_disk_device_t"); // LV nodes at rest
    for perm in ["relabelto", "relabelfrom"] {
        let rules = targets(&policy, perm, None);
        assert_eq!(
            types(&rules),
            relabel.iter().copied().collect(),
            "{perm}: {rules:?}"
        );
        // fixed_disk_device_t only as the node of an LV.
        assert!(
            rules
                .iter()
                .all(|(t, c)| t != "fixed_disk_device_t" || c == "blk_file"),
            "{rules:?}"
        );
        for dangerous in [
            "shadow_t",
            "etc_t",
            "user_home_t",
            "bin_t",
            "boot_t",
            "default_t",
        ] {
            assert!(!types(&rules).contains(dangerous), "{perm} {dangerous}");
        }
    }
    // Files it may write: its state, the pools' volumes, and what every daemon
    // writes (its own /proc entries, selinuxfs to ask the policy, systemd's notify
    // memory); nothing of the system's.
    let written = targets(&policy, "write", Some("file"));
    let allowed: BTreeSet<&str> = virt
        .iter()
        .copied()
        .chain([
            "svirt_pool_var_lib_t",
            "svirt_pool_t",
            "security_t",
            "init_tmpfs_t",
        ])
        .collect();
    assert!(types(&written).is_subset(&allowed), "{written:?}");
    for dangerous in ["shadow_t", "etc_t", "user_home_t", "svirt_pool_conf_t"] {
        assert!(!types(&written).contains(dangerous), "writes {dangerous}");
    }
    // Its sockets only in its runtime dir.
    let sockets = targets(&policy, "create", Some("sock_file"));
    assert_eq!(
        types(&sockets),
        ["svirt_pool_runtime_t"].into_iter().collect(),
        "{sockets:?}"
    );
    // Its paths carry its types in the built file_contexts.
    let fc = std::fs::read_to_string(
        root.path()
            .join("etc/selinux/default/contexts/files/file_contexts"),
    )
    .unwrap();
    for (path, ty) in [
        ("/usr/bin/svirt-pool", "svirt_pool_exec_t"),
        ("/var/lib/svirt-pool(/.*)?", "svirt_pool_var_lib_t"),
        ("/run/svirt-pool(/.*)?", "svirt_pool_runtime_t"),
        ("/etc/svirt-pool(/.*)?", "svirt_pool_conf_t"),
    ] {
        assert!(
            fc.lines().any(|l| l.starts_with(path) && l.contains(ty)),
            "{path} {ty}"
        );
    }
}
