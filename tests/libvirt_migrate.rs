//! A real live migration between two libvirtds on this machine, each with its own
//! svirt-pool agent and hook, the hosts of a cluster sharing a dir pool through a real
//! etcd. libvirtd `a` is the machine's; libvirtd `b` runs in its own mount and UTS
//! namespaces (its own `/run/libvirt`, `/var/lib/libvirt/qemu`, `/etc/libvirt`,
//! `/var/log/libvirt`, `/var/cache/libvirt` bind-mounted, its own `host_uuid` and host
//! name) and sees the same `/var/lib/libvirt/images`: the shared storage.
//!
//! libvirt calls a migration unsafe unless the disk is on a filesystem it knows as
//! shared (NFS, GFS2, OCFS2…): a local directory seen by both daemons is shared here,
//! so the test passes `--unsafe`, as an admin would only in this setup.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::cluster::ClusterBed;
use common::libvirt::{install_hook, virsh, virsh_ok};
use common::*;

const HOOK: &str = "/etc/libvirt/hooks/qemu.d/svirt-pool-test";
const HOOK_CONF: &str = "/run/svirt-pool-test/hook.conf";

/// The test hook: logs `NAME OP SUBOP` to `calls`, then runs this build's binary on
/// `config` (libvirtd a's reads both from HOOK_CONF, as tests/libvirt_real.rs's).
fn hook_script(conf: &Path) -> String {
    format!(
        "#!/bin/sh\n# svirt-pool's tests: the test build's hook on the config a test names.\n\
         [ -r {conf} ] || exit 0\n. {conf}\n\
         echo \"$1 $2 $3\" >> \"$CALLS\"\n\
         exec \"$BIN\" --config \"$CONFIG\" libvirt-hook \"$@\"\n",
        conf = conf.display()
    )
}

fn write_conf(conf: &Path, config: &Path, calls: &Path) {
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    std::fs::write(
        conf,
        format!(
            "BIN='{}'\nCONFIG='{}'\nCALLS='{}'\n",
            env!("CARGO_BIN_EXE_svirt-pool"),
            config.display(),
            calls.display()
        ),
    )
    .unwrap();
}

/// libvirtd `b`, in its own namespaces; killed (with its virtlogd) when dropped.
struct SecondLibvirtd {
    dir: TempDir,
}

impl SecondLibvirtd {
    fn start(hook: &str) -> SecondLibvirtd {
        let dir = TempDir::new("/var/tmp", "svirt-libvirtd-b");
        for sub in ["run", "lib", "etc", "log", "cache"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let etc = dir.join("etc");
        let copied = Command::new("cp")
            .args(["-a", "/etc/libvirt/.", etc.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(copied.success());
        let hooks = etc.join("hooks/qemu.d");
        let _ = std::fs::remove_dir_all(&hooks);
        std::fs::create_dir_all(&hooks).unwrap();
        let hook_path = hooks.join("svirt-pool-test");
        std::fs::write(&hook_path, hook).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook_path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let conf = etc.join("libvirtd.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap_or_default();
        text.push_str(&format!("\nhost_uuid = \"{}\"\n", new_uuid()));
        std::fs::write(&conf, text).unwrap();
        let d = |sub: &str| dir.join(sub).display().to_string();
        let script = format!(
            "set -e\nhostname svirt-host-b\n\
             mount --bind {run} /run/libvirt\nmount --bind {lib} /var/lib/libvirt/qemu\n\
             mount --bind {etc} /etc/libvirt\nmount --bind {log} /var/log/libvirt\n\
             mount --bind {cache} /var/cache/libvirt\n\
             virtlogd -d -p /run/libvirt/virtlogd-b.pid\n\
             exec libvirtd -d -p /run/libvirt/libvirtd-b.pid\n",
            run = d("run"),
            lib = d("lib"),
            etc = d("etc"),
            log = d("log"),
            cache = d("cache"),
        );
        let out = Command::new("unshare")
            .args(["-m", "-u", "--propagation", "private", "sh", "-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "libvirtd b: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let b = SecondLibvirtd { dir };
        assert!(
            wait_for(Duration::from_secs(10), || b
                .virsh(&["version"])
                .status
                .success()),
            "libvirtd b did not answer"
        );
        b
    }

    fn uri(&self) -> String {
        format!(
            "qemu:///system?socket={}/libvirt-sock",
            self.dir.join("run").display()
        )
    }

    fn virsh(&self, args: &[&str]) -> std::process::Output {
        Command::new("virsh")
            .args(["-c", &self.uri()])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for SecondLibvirtd {
    fn drop(&mut self) {
        for pid in ["libvirtd-b.pid", "virtlogd-b.pid"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join("run").join(pid)) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A raw image both libvirtds' QEMUs can open.
fn image(bed: &ClusterBed, name: &str) -> PathBuf {
    let path = bed.file(name);
    std::fs::write(&path, vec![0u8; 1 << 20]).unwrap();
    path
}

#[test]
fn a_tcg_guest_migrates_live_to_another_libvirtd_and_back_its_disk_labeled_throughout() {
    let bed = ClusterBed::new(2, "");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bed.pool.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (a, b) = (&bed.hosts[0], &bed.hosts[1]);
    // libvirtd a: the machine's, started after its hook is written.
    let a_calls = a.state.join("hook.calls");
    write_conf(Path::new(HOOK_CONF), &a.config, &a_calls);
    install_hook(Path::new(HOOK), &hook_script(Path::new(HOOK_CONF)));
    // libvirtd b, its hook reading b's config.
    let b_conf = b.state.join("hook.conf");
    let b_calls = b.state.join("hook.calls");
    write_conf(&b_conf, &b.config, &b_calls);
    let lb = SecondLibvirtd::start(&hook_script(&b_conf));
    let _agents = (a.agent(), b.agent());

    let disk = image(&bed, "web.img");
    let name = unique("svirt-mig").replace('-', "_");
    let xml = format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>\
         <disk type='file' device='disk'><driver name='qemu' type='raw' cache='none'/>\
         <source file='{}'/><target dev='vda' bus='virtio'/></disk></devices></domain>",
        disk.display()
    );
    let file = a.state.join("domain.xml");
    std::fs::write(&file, xml).unwrap();
    virsh_ok(&["create", file.to_str().unwrap()]);
    struct Destroy<'a>(&'a str, &'a SecondLibvirtd);
    impl Drop for Destroy<'_> {
        fn drop(&mut self) {
            let _ = virsh(&["destroy", self.0]);
            let _ = self.1.virsh(&["destroy", self.0]);
        }
    }
    let _destroy = Destroy(&name, &lb);
    let uuid = virsh_ok(&["domuuid", &name]).trim().to_owned();
    let shown: serde_json::Value = serde_json::from_str(&a.ok(&["guest", "show", &uuid])).unwrap();
    let expected = image_label(shown["categories"].as_str().unwrap());
    assert_eq!(label(&disk).as_deref(), Some(expected.as_str()));

    // Watch the label every few milliseconds while the guest moves.
    let stop = AtomicBool::new(false);
    let seen_wrong = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut wrong = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let now = label(&disk);
                if now.as_deref() != Some(expected.as_str()) {
                    wrong.push(now);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            wrong
        });
        let to_b = virsh(&[
            "migrate",
            "--live",
            "--unsafe",
            &name,
            &lb.uri(),
            "--migrateuri",
            "tcp://127.0.0.1",
        ]);
        assert!(
            to_b.status.success(),
            "a → b: {}",
            String::from_utf8_lossy(&to_b.stderr)
        );
        let state = lb.virsh(&["domstate", &name]);
        assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "running");
        assert!(!virsh_ok(&["list", "--name"]).contains(&name), "still on a");
        // a lists the disk as held on host b.
        let status = a.ok(&["status", "--json"]);
        assert!(status.contains("on host b"), "{status}");
        let back = lb.virsh(&[
            "migrate",
            "--live",
            "--unsafe",
            &name,
            "qemu:///system",
            "--migrateuri",
            "tcp://127.0.0.1",
        ]);
        assert!(
            back.status.success(),
            "b → a: {}",
            String::from_utf8_lossy(&back.stderr)
        );
        assert_eq!(virsh_ok(&["domstate", &name]).trim(), "running");
        stop.store(true, Ordering::Relaxed);
        watcher.join().unwrap()
    });
    assert!(
        seen_wrong.is_empty(),
        "the disk's label changed during the migrations: {seen_wrong:?}"
    );
    let calls = |f: &Path| std::fs::read_to_string(f).unwrap_or_default();
    let b_seen = calls(&b_calls);
    for op in [
        "migrate begin",
        "prepare begin",
        "start begin",
        "started begin",
        "stopped end",
        "release end",
    ] {
        assert!(
            b_seen.contains(&format!("{name} {op}")),
            "b's hook never saw {op}: {b_seen}"
        );
    }
    assert!(calls(&a_calls).contains(&format!("{name} release end")));

    // Destroyed on a: no host holds it, the disk rests.
    virsh_ok(&["destroy", &name]);
    assert_eq!(label(&disk).as_deref(), Some(VIRT_IMAGE));
    let _ = std::fs::remove_file(HOOK_CONF);
}
