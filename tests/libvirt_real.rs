//! The qemu hook under a real libvirtd running real QEMU guests (TCG: no KVM needed).
//! SELinux is disabled on these machines, so libvirt runs only its DAC driver: these
//! tests check what the hook does at start, refusal, stop and libvirtd's restart;
//! tests/libvirt_hook.rs feeds it XML with SELinux labels.
//!
//! Needs libvirtd, virsh and qemu-system-x86_64 (`scripts/install-deps --tests`); it
//! starts libvirtd itself if none runs (scripts/start-libvirtd).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::libvirt::{LibvirtPool, install_hook, restart_libvirtd, virsh, virsh_ok};
use common::*;

const HOOK: &str = "/etc/libvirt/hooks/qemu.d/svirt-pool-test";
const HOOK_CONF: &str = "/run/svirt-pool-test/hook.conf";
/// The hook appends `NAME OP SUBOP` here for every call it passes to the binary.
const HOOK_CALLS: &str = "/run/svirt-pool-test/hook.calls";

/// Starts libvirtd if needed, installs the test hook (it runs this build's binary on
/// the config named in HOOK_CONF), and removes both the hook's config and every test
/// domain when dropped.
struct Libvirt {
    domains: Vec<String>,
    /// One test at a time: libvirtd, the hook and its config are the machine's.
    _turn: std::sync::MutexGuard<'static, ()>,
}

static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Libvirt {
    fn new(config: &Path) -> Libvirt {
        let turn = TURN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Written before libvirtd starts, or libvirtd is restarted: it finds hooks
        // only when it starts. Each call is logged, so a test can tell a hook that was
        // never called from one that did the wrong thing.
        install_hook(
            Path::new(HOOK),
            "#!/bin/sh\n# svirt-pool's tests: the test build's hook on the config a test names.\n\
             [ -r /run/svirt-pool-test/hook.conf ] || exit 0\n. /run/svirt-pool-test/hook.conf\n\
             echo \"$1 $2 $3\" >> /run/svirt-pool-test/hook.calls\n\
             exec \"$BIN\" --config \"$CONFIG\" libvirt-hook \"$@\"\n",
        );
        std::fs::create_dir_all("/run/svirt-pool-test").unwrap();
        std::fs::write(
            HOOK_CONF,
            format!(
                "BIN='{}'\nCONFIG='{}'\n",
                env!("CARGO_BIN_EXE_svirt-pool"),
                config.display()
            ),
        )
        .unwrap();
        Libvirt {
            domains: Vec::new(),
            _turn: turn,
        }
    }

    /// Starts a transient domain from `xml` (its `<name>` is `name`), asserting that
    /// libvirtd called the hook.
    fn create_xml(&mut self, name: &str, xml: &str) -> Output {
        let file = PathBuf::from(format!("/run/svirt-pool-test/{name}.xml"));
        std::fs::write(&file, xml).unwrap();
        self.domains.push(name.to_owned());
        let out = virsh(&["create", file.to_str().unwrap()]);
        let calls = std::fs::read_to_string(HOOK_CALLS).unwrap_or_default();
        assert!(
            calls.lines().any(|l| l == format!("{name} prepare begin")),
            "libvirtd did not call the test hook {HOOK} for {name} (it finds hooks only when \
             it starts; calls seen: {calls:?}); virsh create said: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts a transient TCG domain with these disks (`(file, readonly)`).
    fn create(&mut self, name: &str, disks: &[(&Path, bool)]) -> Output {
        let mut xml = format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>"
        );
        for (i, (file, ro)) in disks.iter().enumerate() {
            let (device, bus, extra) = if *ro {
                ("cdrom", "ide", "<readonly/>")
            } else {
                ("disk", "virtio", "")
            };
            let dev = if *ro {
                format!("hd{}", char::from(b'a' + u8::try_from(i).unwrap()))
            } else {
                format!("vd{}", char::from(b'a' + u8::try_from(i).unwrap()))
            };
            xml.push_str(&format!(
                "<disk type='file' device='{device}'><driver name='qemu' type='raw'/>\
                 <source file='{}'/><target dev='{dev}' bus='{bus}'/>{extra}</disk>",
                file.display()
            ));
        }
        xml.push_str("</devices></domain>");
        self.create_xml(name, &xml)
    }
}

impl Drop for Libvirt {
    fn drop(&mut self) {
        for d in &self.domains {
            let _ = virsh(&["destroy", d]);
        }
        let _ = std::fs::remove_file(HOOK_CONF);
    }
}

/// A raw disk image libvirt's DAC driver (which runs QEMU as libvirt-qemu) can open.
fn image(bed: &Bed, name: &str) -> PathBuf {
    let path = bed.file(name);
    std::fs::write(&path, vec![0u8; 1 << 20]).unwrap();
    path
}

#[test]
fn real_guests_start_refuse_stop_and_survive_a_libvirtd_restart() {
    let bed = Bed::new();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bed.pool.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut libvirt = Libvirt::new(&bed.config);
    let (disk, iso) = (image(&bed, "web.img"), image(&bed, "install.iso"));
    let name = unique("svirt-web").replace('-', "_");

    // Start with the agent running: the hook goes through its API.
    let agent = bed.agent();
    let out = libvirt.create(&name, &[(&disk, false), (&iso, true)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uuid = virsh_ok(&["domuuid", &name]).trim().to_owned();
    let shown: serde_json::Value =
        serde_json::from_str(&bed.ok(&["guest", "show", &uuid])).unwrap();
    let cats = shown["categories"].as_str().unwrap().to_owned();
    assert_eq!(shown["name"], name.as_str());
    assert_eq!(label(&disk), Some(image_label(&cats)));
    assert_eq!(label(&iso).as_deref(), Some(VIRT_CONTENT));

    // A second guest on the same rw disk does not start; the first keeps its label.
    let second = unique("svirt-db").replace('-', "_");
    let out = libvirt.create(&second, &[(&disk, false)]);
    assert!(!out.status.success(), "the second rw user started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("web.img"), "libvirt does not say why: {err}");
    assert_eq!(label(&disk), Some(image_label(&cats)));

    // The agent stops; libvirtd is killed and restarted while the guest runs. On
    // reconnect the hook asserts the attachments again (the CLI path, no agent): a
    // label taken away meanwhile comes back.
    drop(agent);
    bed.ok(&[
        "detach",
        "--guest",
        &uuid,
        "--volume",
        disk.to_str().unwrap(),
    ]);
    assert_eq!(label(&disk).as_deref(), Some(VIRT_IMAGE));
    restart_libvirtd();
    assert!(
        virsh_ok(&["list", "--name"]).contains(&name),
        "the guest died"
    );
    assert!(
        wait_for(Duration::from_secs(5), || label(&disk)
            == Some(image_label(&cats))),
        "reconnect did not re-attach: {:?}",
        label(&disk)
    );

    // Destroyed: its disks rest again.
    virsh_ok(&["destroy", &name]);
    assert_eq!(label(&disk).as_deref(), Some(VIRT_IMAGE));
    assert_eq!(label(&iso).as_deref(), Some(VIRT_IMAGE));
    let shown: serde_json::Value =
        serde_json::from_str(&bed.ok(&["guest", "show", &uuid])).unwrap();
    assert_eq!(shown["attachments"].as_array().unwrap().len(), 0);
}

#[test]
fn adopt_shows_the_diff_then_defines_the_domain_with_the_guest_s_label() {
    let bed = Bed::new();
    let _libvirt = Libvirt::new(&bed.config);
    let disk = image(&bed, "adopt.img");
    let outside = TempDir::new("/var/lib/libvirt", "svirt-pool-outside");
    let elsewhere = outside.join("elsewhere.img");
    std::fs::write(&elsewhere, b"x").unwrap();
    let name = unique("svirt-adopt").replace('-', "_");
    let xml = format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>\
         <disk type='file' device='disk'><source file='{}'/><target dev='vda'/></disk>\
         <disk type='file' device='disk'><source file='{}'/><target dev='vdb'/></disk>\
         </devices></domain>",
        disk.display(),
        elsewhere.display()
    );
    let file = bed.state.join("adopt.xml");
    std::fs::write(&file, xml).unwrap();
    virsh_ok(&["define", file.to_str().unwrap()]);
    struct Undefine(String);
    impl Drop for Undefine {
        fn drop(&mut self) {
            let _ = virsh(&["undefine", &self.0]);
        }
    }
    let _undefine = Undefine(name.clone());
    let dump = || virsh_ok(&["dumpxml", "--inactive", "--security-info", &name]);
    let before = dump();

    // First the diff, and nothing changes.
    let diff = bed.ok(&["libvirt", "adopt", &name]);
    let uuid = virsh_ok(&["domuuid", &name]).trim().to_owned();
    let shown: serde_json::Value =
        serde_json::from_str(&bed.ok(&["guest", "show", &uuid])).unwrap();
    let label = format!(
        "system_u:system_r:svirt_t:s0:{}",
        shown["categories"].as_str().unwrap()
    );
    assert!(
        diff.contains(&format!("+    <label>{label}</label>")),
        "{diff}"
    );
    assert!(diff.contains("relabel='no'"), "{diff}");
    assert!(diff.contains("not applied"), "{diff}");
    assert_eq!(dump(), before, "a dry run changed the domain");
    // The edited XML is valid for libvirt's schema.
    let edited = bed.state.join("edited.xml");
    std::fs::write(&edited, bed.ok(&["libvirt", "adopt", &name, "--xml"])).unwrap();
    assert_valid_domain_xml(&edited);

    // Applied: libvirt keeps both; the disk outside the pools is still libvirt's.
    bed.ok(&["libvirt", "adopt", &name, "--apply"]);
    let after = dump();
    assert!(
        after.contains(&format!("<label>{label}</label>")),
        "{after}"
    );
    let disk_of = |file: &str| {
        after
            .split("<disk")
            .map(|d| d.split("</disk>").next().unwrap())
            .find(|d| d.contains(file))
            .unwrap()
            .to_owned()
    };
    let pool_disk = disk_of("adopt.img");
    assert!(pool_disk.contains("relabel='no'"), "{after}");
    let other_disk = disk_of("elsewhere.img");
    assert!(!other_disk.contains("seclabel"), "{after}");
    assert!(
        bed.ok(&["libvirt", "adopt", &name])
            .contains("adopted already"),
        "adopting again must change nothing"
    );
}

#[test]
fn a_disk_named_by_libvirt_pool_and_volume_is_labeled_as_the_file_it_is() {
    let bed = Bed::new();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bed.pool.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut libvirt = Libvirt::new(&bed.config);
    let disk = image(&bed, "web.img");
    let pool = LibvirtPool::new(&bed.pool.0);
    let name = unique("svirt-vol").replace('-', "_");
    let xml = format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>\
         <disk type='volume' device='disk'><driver name='qemu' type='raw'/>\
         <source pool='{}' volume='web.img'/><target dev='vda' bus='virtio'/></disk>\
         </devices></domain>",
        pool.0
    );
    let file = bed.state.join("domain.xml");
    std::fs::write(&file, xml).unwrap();
    libvirt.domains.push(name.clone());
    virsh_ok(&["create", file.to_str().unwrap()]);
    let uuid = virsh_ok(&["domuuid", &name]).trim().to_owned();
    let shown: serde_json::Value =
        serde_json::from_str(&bed.ok(&["guest", "show", &uuid])).unwrap();
    let cats = shown["categories"].as_str().unwrap();
    assert_eq!(label(&disk), Some(image_label(cats)), "the volume's file");
    virsh_ok(&["destroy", &name]);
    assert_eq!(label(&disk).as_deref(), Some(VIRT_IMAGE));
}

/// A multiboot kernel QEMU boots with `-kernel` (the "a.out kludge" header: a flat
/// image loaded at 1 MiB) whose code halts: enough for a real guest to start from a
/// kernel and an initrd (its multiboot module) without a Linux kernel on the machine.
fn halting_kernel() -> Vec<u8> {
    const MAGIC: u32 = 0x1BAD_B002;
    const FLAGS: u32 = 0x0001_0000; // the load addresses below are valid
    const LOAD: u32 = 0x0010_0000;
    let checksum = 0u32.wrapping_sub(MAGIC.wrapping_add(FLAGS));
    // magic, flags, checksum, header_addr, load_addr, load_end_addr (0: the whole
    // file), bss_end_addr (none), entry_addr (right after this 32-byte header).
    let header = [MAGIC, FLAGS, checksum, LOAD, LOAD, 0, 0, LOAD + 32];
    let mut image: Vec<u8> = header.iter().flat_map(|w| w.to_le_bytes()).collect();
    image.extend([0xfa, 0xf4, 0xeb, 0xfd]); // cli; hlt; jmp back to hlt
    image.resize(64, 0);
    image
}

#[test]
fn a_real_guest_booting_from_a_kernel_or_uefi_in_a_pool_gets_libvirts_labels() {
    let bed = Bed::new();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bed.pool.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut libvirt = Libvirt::new(&bed.config);
    let put = |name: &str, bytes: &[u8]| {
        let path = bed.pool.join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    };
    let kernel = put("vmlinuz.bin", &halting_kernel());
    let initrd = put("initrd.img", b"a multiboot module");
    let ovmf = |f: &str| {
        std::fs::read(format!("/usr/share/OVMF/{f}")).unwrap_or_else(|e| {
            panic!("/usr/share/OVMF/{f}: {e} (Debian's ovmf: scripts/install-deps --tests)")
        })
    };
    let code = put("OVMF_CODE_4M.fd", &ovmf("OVMF_CODE_4M.fd"));
    let vars = put("uefi_VARS.fd", &ovmf("OVMF_VARS_4M.fd"));
    bed.ok(&["scan"]);

    // A kernel and an initrd: read, virt_content_t:s0 (libvirt's kernel.txt).
    let name = unique("svirt-kernel").replace('-', "_");
    let out = libvirt.create_xml(
        &name,
        &format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{}</kernel>\
             <initrd>{}</initrd></os><devices></devices></domain>",
            kernel.display(),
            initrd.display()
        ),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(virsh_ok(&["domstate", &name]).trim(), "running");
    for f in [&kernel, &initrd] {
        assert_eq!(label(f).as_deref(), Some(VIRT_CONTENT), "{}", f.display());
    }
    virsh_ok(&["destroy", &name]);
    for f in [&kernel, &initrd] {
        assert_eq!(label(f).as_deref(), Some(VIRT_IMAGE), "{}", f.display());
    }

    // UEFI: the firmware read (virt_content_t:s0), its variables written (the
    // guest's image label, as libvirt labels <nvram>).
    let name = unique("svirt-uefi").replace('-', "_");
    let out = libvirt.create_xml(
        &name,
        &format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='q35'>hvm</type>\
             <loader readonly='yes' type='pflash'>{}</loader><nvram>{}</nvram></os>\
             <features><acpi/></features><devices></devices></domain>",
            code.display(),
            vars.display()
        ),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(virsh_ok(&["domstate", &name]).trim(), "running");
    let uuid = virsh_ok(&["domuuid", &name]).trim().to_owned();
    let shown: serde_json::Value =
        serde_json::from_str(&bed.ok(&["guest", "show", &uuid])).unwrap();
    let cats = shown["categories"].as_str().unwrap();
    assert_eq!(label(&code).as_deref(), Some(VIRT_CONTENT));
    assert_eq!(label(&vars), Some(image_label(cats)), "nvram");
    virsh_ok(&["destroy", &name]);
    for f in [&code, &vars] {
        assert_eq!(label(f).as_deref(), Some(VIRT_IMAGE), "{}", f.display());
    }
}

#[test]
fn libvirts_disks_case_on_a_real_guest_gets_libvirts_labels() {
    // libvirt's disks.xml (tests/securityselinuxlabeldata), its plain, shareable and
    // readonly disks in a pool, started by a real libvirtd. Its two disks with an
    // SELinux <seclabel> of their own are tested through the hook only: without its
    // SELinux driver libvirt refuses them ("Security driver model 'selinux' is not
    // available"), and these machines cannot load it.
    let bed = Bed::new();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bed.pool.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut libvirt = Libvirt::new(&bed.config);
    let (plain, shared, readonly) = (
        image(&bed, "plain.raw"),
        image(&bed, "shared.raw"),
        image(&bed, "readonly.raw"),
    );
    let name = unique("svirt-disks").replace('-', "_");
    let disk = |file: &Path, dev: &str, extra: &str| {
        format!(
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='{}'/>{extra}<target dev='{dev}' bus='virtio'/></disk>",
            file.display()
        )
    };
    let out = libvirt.create_xml(
        &name,
        &format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>{}{}{}</devices></domain>",
            disk(&plain, "vda", ""),
            disk(&shared, "vdb", "<shareable/>"),
            disk(&readonly, "vdc", "<readonly/>")
        ),
    );
    assert!(out.status.success(), "{out:?}");
    let uuid = virsh_ok(&["domuuid", &name]).trim().to_owned();
    let shown: serde_json::Value =
        serde_json::from_str(&bed.ok(&["guest", "show", &uuid])).unwrap();
    let cats = shown["categories"].as_str().unwrap();
    assert_eq!(label(&plain), Some(image_label(cats)), "plain.raw");
    assert_eq!(label(&shared).as_deref(), Some(SVIRT_IMAGE), "shared.raw");
    assert_eq!(
        label(&readonly).as_deref(),
        Some(VIRT_CONTENT),
        "readonly.raw"
    );
    virsh_ok(&["destroy", &name]);
    for f in [&plain, &shared, &readonly] {
        assert_eq!(label(f).as_deref(), Some(VIRT_IMAGE), "{}", f.display());
    }
}
