//! LVM pools with real lvm2 metadata, real udevd events and the shipped udev rule:
//! LV nodes labeled by the hook (agent down) and by the agent (hook disabled), resting
//! labels restored, nodes that go and come back, unmanaged VGs and /dev/VG/LV links
//! never touched, and a hook that never fails an event.

mod common;

use std::process::Command;

use common::lvm::*;
use common::*;

#[test]
fn the_hook_labels_an_attached_lv_on_change_with_the_agent_stopped() {
    let bed = LvmBed::new(true);
    let node = bed.node("lv1");
    let (uuid, cats) = bed.define_guest("db");
    let out = bed.attach_ok(&uuid, bed.volume("lv1"), "rw");
    assert!(out.contains(&image_label(&cats)), "{out}");
    assert_eq!(
        label(&node.devnode()).unwrap(),
        image_label(&cats),
        "labeled before attach returns"
    );

    // udev resets the label (as on refresh); after settle the hook has put it back.
    set_label(&node.devnode(), FIXED_DISK);
    node.change();
    assert_eq!(label(&node.devnode()).unwrap(), image_label(&cats));

    // `/dev/VG/LV` is accepted too, and detach restores the file_contexts default.
    bed.ok(&[
        "detach",
        "--guest",
        &uuid,
        "--volume",
        &format!("/dev/{}/lv1", bed.vg),
    ]);
    assert_eq!(label(&node.devnode()).unwrap(), FIXED_DISK);
    set_label(&node.devnode(), &image_label(&cats));
    node.change();
    assert_eq!(
        label(&node.devnode()).unwrap(),
        FIXED_DISK,
        "a free LV rests"
    );
}

#[test]
fn the_agent_labels_an_attached_lv_on_change_without_the_hook() {
    let bed = LvmBed::new(false);
    let node = bed.node("lv1");
    let (uuid, cats) = bed.define_guest("web");
    bed.attach_ok(&uuid, bed.volume("lv1"), "ro");
    set_label(&node.devnode(), FIXED_DISK);
    node.change();
    assert_eq!(
        label(&node.devnode()).unwrap(),
        FIXED_DISK,
        "the hook is disabled in this bed"
    );

    let _agent = bed.agent();
    assert_eq!(
        label(&node.devnode()).unwrap(),
        VIRT_CONTENT,
        "the startup scan found the node"
    );
    set_label(&node.devnode(), FIXED_DISK);
    node.change();
    assert_label_within_1s(&node.devnode(), VIRT_CONTENT);
    let _ = cats;
}

#[test]
fn an_lv_node_that_goes_away_and_comes_back_gets_its_label_again() {
    for hook in [true, false] {
        let bed = LvmBed::new(hook);
        let (uuid, cats) = bed.define_guest("vm");
        // Attached while inactive: kept, and applied when the node appears.
        let out = bed.attach_ok(&uuid, bed.volume("lv1"), "rw");
        assert!(out.contains("inactive"), "{out}");
        let agent = (!hook).then(|| bed.agent());
        let mut node = bed.node("lv1");
        assert_label_within_1s(&node.devnode(), &image_label(&cats));

        node.detach();
        let status: serde_json::Value =
            serde_json::from_str(&bed.ok(&["status", "--json"])).unwrap();
        let lv = &status["pools"][0]["volumes"][0];
        assert_eq!(lv["volume"], bed.volume("lv1"));
        assert_eq!(lv["active"], false);
        assert_eq!(lv["attachments"][0]["guest"], uuid.as_str());

        let dev = node.attach();
        set_label(&dev, FIXED_DISK);
        node.change();
        assert_label_within_1s(&dev, &image_label(&cats));
        drop(agent);
    }
}

#[test]
fn lvs_of_unmanaged_vgs_and_dev_vg_lv_links_are_never_labeled() {
    let bed = LvmBed::new(true);
    let foreign_uuid = "abcdefABCDEF0123456789abcdefABCD";
    let foreign = bed.node_claiming("data", "unmanaged_vg", foreign_uuid);
    set_label(&foreign.devnode(), "system_u:object_r:etc_t:s0");
    let node = bed.node("lv1");
    let (uuid, cats) = bed.define_guest("vm");
    let _agent = bed.agent();
    foreign.change();
    node.change();
    // udev recreates the /dev/VG/LV link on every event; give it a label of its own
    // after the last one, then let the CLI and a scan label the LV.
    let link = std::path::Path::new("/dev").join(&bed.vg).join("lv1");
    assert!(link.is_symlink(), "udev made the /dev/VG/LV link");
    set_label(&link, "system_u:object_r:device_t:s0");
    bed.attach_ok(&uuid, format!("/dev/{}/lv1", bed.vg), "rw");
    bed.ok(&["scan"]);
    assert_eq!(label(&node.devnode()).unwrap(), image_label(&cats));
    assert_eq!(
        label(&foreign.devnode()).unwrap(),
        "system_u:object_r:etc_t:s0"
    );
    assert_eq!(
        label(&link).unwrap(),
        "system_u:object_r:device_t:s0",
        "the link keeps its own label"
    );
    let out = bed.attach(&uuid, "unmanaged_vg/data", "rw");
    assert_eq!(
        out.status.code(),
        Some(1),
        "an LV of an unmanaged VG is no volume"
    );
}

#[test]
fn a_renamed_lv_keeps_its_attachment() {
    let bed = LvmBed::new(true);
    let (uuid, _) = bed.define_guest("vm");
    bed.attach_ok(&uuid, bed.volume("lv1"), "shared");
    sh(
        "lvrename",
        &["-q", "--driverloaded", "n", &bed.vg, "lv1", "renamed"],
    );
    let status: serde_json::Value = serde_json::from_str(&bed.ok(&["status", "--json"])).unwrap();
    let lv = &status["pools"][0]["volumes"][0];
    assert_eq!(lv["volume"], bed.volume("renamed"));
    assert_eq!(lv["state"], "shared by vm");
    // Its node under the new name (udev names it by DM_LV_NAME) is labeled as attached.
    let node = bed.node("renamed");
    assert_eq!(label(&node.devnode()).as_deref(), Some(SVIRT_IMAGE));
    bed.ok(&[
        "detach",
        "--guest",
        &uuid,
        "--volume",
        &bed.volume("renamed"),
    ]);
    assert_eq!(label(&node.devnode()).as_deref(), Some(FIXED_DISK));
}

#[test]
fn lvm_errors_are_clear_refusals() {
    let bed = LvmBed::new(true);
    let (uuid, _) = bed.define_guest("vm");
    let out = bed.attach(&uuid, bed.volume("nosuch"), "rw");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no LV \"nosuch\""));
    // The VG disappears (exported, unplugged): named in the error.
    let config = bed.state.join("gone.toml");
    std::fs::write(&config, format!(
        "state_dir = \"{}\"\n[api]\nsocket = \"/nonexistent/api.sock\"\n[[pool]]\nname = \"gone\"\ntype = \"lvm\"\nvg = \"no_such_vg\"\nresting_label = \"{FIXED_DISK}\"\nlvm_args = [\"--driverloaded\", \"n\"]\n",
        bed.state.0.display()
    )).unwrap();
    let out = run_attach(&config, &uuid, "no_such_vg/lv", "rw");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("volume group \"no_such_vg\" not found"));
}

#[test]
fn the_hook_exits_0_on_bad_or_missing_environment() {
    let bed = LvmBed::new(true);
    let node = bed.node("lv1");
    set_label(&node.devnode(), "system_u:object_r:etc_t:s0");
    let dev = node.devnode();
    let dm_uuid = format!("LVM-{}{}", "x".repeat(32), bed.lv_uuid("lv1"));
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("ACTION", "change".into())],
        vec![
            ("ACTION", "change".into()),
            ("SVIRT_POOL_CONFIG", "/nonexistent.toml".into()),
        ],
        vec![
            ("ACTION", "change".into()),
            ("SVIRT_POOL_CONFIG", bed.config.display().to_string()),
            ("DEVNAME", "/dev/../etc/passwd".into()),
            ("DM_VG_NAME", bed.vg.clone()),
            ("DM_LV_NAME", "lv1".into()),
            ("DM_UUID", dm_uuid.clone()),
            ("MAJOR", "1".into()),
            ("MINOR", "3".into()),
        ],
        vec![
            ("ACTION", "change".into()),
            ("SVIRT_POOL_CONFIG", bed.config.display().to_string()),
            ("DEVNAME", dev.display().to_string()),
            ("DM_VG_NAME", bed.vg.clone()),
            ("DM_LV_NAME", "lv1".into()),
            ("DM_UUID", dm_uuid.clone()),
            ("MAJOR", "not-a-number".into()),
        ],
    ];
    // The slim binary the shipped rule runs, and the same hook in the full binary.
    let hooks = [
        vec![env!("CARGO_BIN_EXE_svirt-pool-udev-hook")],
        vec![env!("CARGO_BIN_EXE_svirt-pool"), "udev-hook"],
    ];
    for (hook, env) in hooks.iter().flat_map(|h| cases.iter().map(move |e| (h, e))) {
        let out = Command::new(hook[0])
            .args(&hook[1..])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{hook:?}, env {env:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Not run by udev, or a config that does not exist: said on stderr (and syslog).
        let is_error = env.is_empty() || env.get(1).is_some_and(|v| v.1 == "/nonexistent.toml");
        if is_error {
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("svirt-pool udev-hook: "),
                "{hook:?}, env {env:?}: the error is not reported"
            );
        }
        assert_eq!(
            label(&dev).unwrap(),
            "system_u:object_r:etc_t:s0",
            "{hook:?}, env {env:?} changed a label"
        );
    }
    let passwd = label(std::path::Path::new("/etc/passwd"));
    assert_ne!(passwd.as_deref(), Some(FIXED_DISK));
}

#[test]
fn a_failing_lvm_command_is_a_clear_error() {
    let lvm = LvmBed::new(true);
    let config = lvm.state.join("bad-args.toml");
    let text = std::fs::read_to_string(&lvm.config).unwrap().replace(
        "lvm_args = [\"--driverloaded\", \"n\"]",
        "lvm_args = [\"--no-such-option\"]",
    );
    std::fs::write(&config, text).unwrap();
    let (uuid, _) = lvm.define_guest("vm");
    let out = run_attach(&config, &uuid, lvm.volume("lv1"), "rw");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lvs") && err.contains("--no-such-option"),
        "{err}"
    );
}
