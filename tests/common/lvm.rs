//! An LVM test bed: a real volume group on a loop-device PV (real lvm2 metadata; no
//! device-mapper in these kernels, so LVs stay inactive), and loop devices standing in
//! for LV nodes. A test rule in /run/udev/rules.d gives each stand-in the properties
//! lvm2's rules give a real LV node (DM_VG_NAME, DM_LV_NAME, DM_UUID = LVM-<vg
//! uuid><lv uuid>, the /dev/VG/LV link), so the real udevd emits real events with them
//! and runs the shipped hook rule.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// Where the shipped hook rule is installed for the tests (pointing at the test binary).
const HOOK_RULE: &str = "/run/udev/rules.d/99-svirt-pool.rules";

/// Runs a command and returns stdout; panics with its stderr on failure.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Fails the test unless udevd answers.
pub fn require_udevd() {
    // A ping can time out while udevd reloads rules for a parallel test: retry.
    let ok = (0..5).any(|_| {
        let ok = Command::new("udevadm")
            .args(["control", "--ping", "--timeout=5"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        ok
    });
    assert!(
        ok,
        "systemd-udevd is not running: start it with scripts/start-udevd"
    );
}

/// Installs the shipped rule with the test binary as its RUN program (idempotent;
/// written to a temporary name and renamed, so parallel tests never see half a file).
pub fn install_hook_rule() {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/udev/99-svirt-pool.rules"
    ))
    .unwrap();
    let rule = shipped.replace(
        "/usr/local/bin/svirt-pool-udev-hook",
        env!("CARGO_BIN_EXE_svirt-pool-udev-hook"),
    );
    assert_ne!(
        rule, shipped,
        "the shipped rule no longer runs /usr/local/bin/svirt-pool-udev-hook"
    );
    std::fs::create_dir_all("/run/udev/rules.d").unwrap();
    let tmp = format!("{HOOK_RULE}.{}", unique("tmp"));
    std::fs::write(&tmp, rule).unwrap();
    std::fs::rename(&tmp, HOOK_RULE).unwrap();
}

/// Runs udevadm, retrying: its control socket answers EAGAIN while udevd is busy with
/// the requests of tests running in parallel.
pub fn udevadm(args: &[&str]) {
    for _ in 0..20 {
        let ok = Command::new("udevadm")
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    sh("udevadm", args);
}

fn reload_rules() {
    udevadm(&["control", "--reload"]);
}

/// The uuid lvm2 reports, without dashes.
fn uuid_of(report: &str) -> String {
    report.trim().replace('-', "")
}

/// A stand-in LV node: a loop device whose udev properties say it is `vg/lv`.
pub struct FakeNode {
    backing: PathBuf,
    rule: PathBuf,
    loop_dev: Option<String>,
}

impl FakeNode {
    /// The node, e.g. `/dev/loop3`.
    pub fn devnode(&self) -> PathBuf {
        PathBuf::from(self.loop_dev.as_ref().expect("attached"))
    }

    /// Attaches the backing file to a free loop device (udev sends `change`), settles.
    pub fn attach(&mut self) -> PathBuf {
        let dev = sh("losetup", &["-f", "--show", self.backing.to_str().unwrap()]);
        self.loop_dev = Some(dev.trim().to_owned());
        udevadm(&["settle"]);
        self.devnode()
    }

    /// Detaches the loop device: the "LV" loses its node, as on deactivation.
    pub fn detach(&mut self) {
        if let Some(dev) = self.loop_dev.take() {
            sh("losetup", &["-d", &dev]);
            // The kernel detaches a loop device only at its last close (udev's own probe
            // may hold it): wait for that, then for udev's event about it. A settle alone
            // can return before the event is even queued.
            let backing = std::path::Path::new("/sys/block")
                .join(std::path::Path::new(&dev).file_name().unwrap())
                .join("loop/backing_file");
            assert!(
                super::wait_for(std::time::Duration::from_secs(10), || !backing.exists()),
                "{dev} was not detached within 10 s"
            );
            udevadm(&["settle"]);
        }
    }

    /// Sends a real `change` event for the node and waits for udev to finish it
    /// (RUN programs included), as `lvchange --refresh` or `lvextend` would.
    pub fn change(&self) {
        let node = self.devnode();
        udevadm(&[
            "trigger",
            "--action=change",
            "--settle",
            node.to_str().unwrap(),
        ]);
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.rule);
        reload_rules();
        self.detach();
    }
}

/// A volume group on a loop PV with LVs, and a config managing it.
pub struct LvmBed {
    /// The volume group's name.
    pub vg: String,
    vg_uuid: String,
    dir: TempDir,
    /// The state directory.
    pub state: TempDir,
    /// The config file.
    pub config: PathBuf,
    pv_loop: String,
}

impl LvmBed {
    /// A VG with LV `lv1`, managed by an lvm pool named `vms`. With `hook`, the shipped
    /// udev rule labels nodes; without, the rule still runs but finds no config (so
    /// only the agent can label).
    pub fn new(hook: bool) -> LvmBed {
        require_root_and_policy();
        require_udevd();
        install_hook_rule();
        let dir = TempDir::new("/var/tmp", "svirt-lvm");
        let state = TempDir::new("/tmp", "svirt-pool-state");
        let vg = unique("svt").replace('-', "_");
        let pv_file = dir.join("pv.img");
        sh("truncate", &["-s", "32M", pv_file.to_str().unwrap()]);
        let pv_loop = sh("losetup", &["-f", "--show", pv_file.to_str().unwrap()])
            .trim()
            .to_owned();
        sh("pvcreate", &["-q", &pv_loop]);
        sh("vgcreate", &["-q", &vg, &pv_loop]);
        let vg_uuid = uuid_of(&sh("vgs", &["--noheadings", "-o", "vg_uuid", &vg]));
        let config = state.join("svirt-pool.toml");
        let config_for_hook = if hook {
            config.clone()
        } else {
            state.join("no-hook.toml")
        };
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{}\"\n\n[api]\nsocket = \"{}/api.sock\"\n\n[[pool]]\nname = \"vms\"\ntype = \"lvm\"\nvg = \"{vg}\"\nlvm_args = [\"--driverloaded\", \"n\"]\n",
                state.0.display(),
                state.0.display()
            ),
        )
        .unwrap();
        let bed = LvmBed {
            vg,
            vg_uuid,
            dir,
            state,
            config,
            pv_loop,
        };
        std::fs::write(
            bed.dir.join("hook-config"),
            config_for_hook.to_str().unwrap(),
        )
        .unwrap();
        bed.create_lv("lv1");
        bed
    }

    /// Creates an inactive LV of 4 MiB (metadata only).
    pub fn create_lv(&self, name: &str) {
        sh(
            "lvcreate",
            &[
                "-q",
                "--driverloaded",
                "n",
                "-an",
                "-Zn",
                "-L",
                "4M",
                "-n",
                name,
                &self.vg,
            ],
        );
    }

    /// The LV's uuid without dashes.
    pub fn lv_uuid(&self, name: &str) -> String {
        let lv = format!("{}/{name}", self.vg);
        uuid_of(&sh(
            "lvs",
            &["--driverloaded", "n", "--noheadings", "-o", "lv_uuid", &lv],
        ))
    }

    /// A stand-in node for LV `name` claiming volume group `vg` (normally this bed's),
    /// attached and settled.
    pub fn node(&self, name: &str) -> FakeNode {
        self.node_claiming(name, &self.vg.clone(), &self.lv_uuid(name))
    }

    /// A stand-in node whose properties claim `vg/name` with LV uuid `lv_uuid`.
    pub fn node_claiming(&self, name: &str, vg: &str, lv_uuid: &str) -> FakeNode {
        let backing = self.dir.join(&format!("{vg}-{name}.node"));
        sh("truncate", &["-s", "4M", backing.to_str().unwrap()]);
        let hook_config = std::fs::read_to_string(self.dir.join("hook-config")).unwrap();
        let rule = PathBuf::from(format!(
            "/run/udev/rules.d/90-{}.rules",
            unique("svirt-test")
        ));
        std::fs::write(
            &rule,
            format!(
                "SUBSYSTEM==\"block\", KERNEL==\"loop*\", ATTR{{loop/backing_file}}==\"{}\", \
                 ENV{{DM_VG_NAME}}=\"{vg}\", ENV{{DM_LV_NAME}}=\"{name}\", \
                 ENV{{DM_UUID}}=\"LVM-{}{lv_uuid}\", ENV{{SVIRT_POOL_CONFIG}}=\"{hook_config}\", \
                 SYMLINK+=\"{vg}/{name}\"\n",
                backing.display(),
                self.vg_uuid
            ),
        )
        .unwrap();
        reload_rules();
        let mut node = FakeNode {
            backing,
            rule,
            loop_dev: None,
        };
        node.attach();
        node
    }

    /// `VG/LV` of an LV of this bed.
    pub fn volume(&self, name: &str) -> String {
        format!("{}/{name}", self.vg)
    }
}

impl Configured for LvmBed {
    fn config_path(&self) -> &Path {
        &self.config
    }
}

impl Drop for LvmBed {
    fn drop(&mut self) {
        let run = |p: &str, a: &[&str]| {
            let _ = Command::new(p)
                .args(a)
                .env("LVM_SUPPRESS_FD_WARNINGS", "1")
                .output();
        };
        run("vgremove", &["-f", "-q", "--driverloaded", "n", &self.vg]);
        run("pvremove", &["-q", &self.pv_loop]);
        run("losetup", &["-d", &self.pv_loop]);
        let _ = std::fs::remove_dir_all(Path::new("/dev").join(&self.vg));
    }
}

/// The file_contexts default of an LV node here (`/dev/loopN`, `/dev/dm-N`: block devices).
pub const FIXED_DISK: &str = "system_u:object_r:fixed_disk_device_t:s0";
