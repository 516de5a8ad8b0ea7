//! libvirt's qemu hook fed with domain XML as libvirtd passes it (SELinux is disabled
//! on these machines, so real libvirtd never puts an SELinux label in the XML: those
//! paths are tested here with XML that carries one), and volumes libvirt holds.
//! tests/libvirt_real.rs runs the hook under a real libvirtd with real TCG guests.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use common::libvirt::{domain_xml, hook, hook_ok};
use common::*;

const PROCESS: &str = "system_u:system_r:svirt_t:s0";

/// A test bed whose libvirt status directory is a temporary one: a domain "runs" while
/// its status XML is there.
fn libvirt_bed(api: &str) -> (Bed, TempDir) {
    let status = TempDir::new("/tmp", "svirt-pool-libvirt-status");
    let bed = Bed::with_api_and_extra(
        api,
        &format!("[libvirt]\nstatus_dir = \"{}\"\n", status.0.display()),
    );
    (bed, status)
}

fn starts_and_stops_with_the_hook(with_agent: bool) {
    let (bed, status) = libvirt_bed("");
    let _agent = with_agent.then(|| bed.agent());
    let outside = TempDir::new("/var/lib/libvirt", "svirt-pool-outside");
    let out_disk = outside.join("elsewhere.img");
    std::fs::write(&out_disk, b"x").unwrap();
    set_label(&out_disk, "system_u:object_r:etc_t:s0");
    let (disk, iso, shared) = (
        bed.file("web.img"),
        bed.file("debian.iso"),
        bed.file("data.img"),
    );
    let uuid = new_uuid();
    let xml = domain_xml(
        "web",
        &uuid,
        None,
        &[
            (&disk, ""),
            (&iso, "cdrom<readonly/>"),
            (&shared, "<shareable/>"),
            (&out_disk, ""),
        ],
    );
    hook_ok(&bed.config, "web", "prepare", "begin", &xml);
    hook_ok(&bed.config, "web", "start", "begin", &xml);
    let shown: serde_json::Value =
        serde_json::from_str(&bed.ok(&["guest", "show", &uuid])).unwrap();
    assert_eq!(shown["name"], "web");
    let cats = shown["categories"].as_str().unwrap();
    assert_eq!(label(&disk), Some(image_label(cats)));
    assert_eq!(label(&iso).as_deref(), Some(VIRT_CONTENT));
    assert_eq!(label(&shared).as_deref(), Some(SVIRT_IMAGE));
    assert_eq!(
        label(&out_disk).as_deref(),
        Some("system_u:object_r:etc_t:s0"),
        "a disk outside the pools is libvirt's"
    );
    // A second domain on the same rw disk must not start; the first keeps its label.
    let other = new_uuid();
    let other_iso = bed.file("other.iso");
    let xml2 = domain_xml(
        "db",
        &other,
        None,
        &[(&other_iso, "cdrom<readonly/>"), (&disk, "")],
    );
    let out = hook(&bed.config, "db", "prepare", "begin", &xml2);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("vdb") && err.contains("web.img") && err.contains(&uuid),
        "{err}"
    );
    assert_eq!(
        err.trim().lines().count(),
        1,
        "one line for libvirt's log: {err}"
    );
    assert_eq!(label(&disk), Some(image_label(cats)));
    assert_eq!(
        label(&other_iso).as_deref(),
        Some(VIRT_IMAGE),
        "nothing stays attached"
    );
    hook_ok(&bed.config, "db", "release", "end", &xml2);
    // Stop: everything rests again.
    hook_ok(&bed.config, "web", "stopped", "end", &xml);
    hook_ok(&bed.config, "web", "release", "end", &xml);
    for f in [&disk, &iso, &shared] {
        assert_eq!(label(f).as_deref(), Some(VIRT_IMAGE), "{}", f.display());
    }
    drop(status);
}

#[test]
fn the_hook_attaches_at_start_refuses_a_second_rw_user_and_releases() {
    starts_and_stops_with_the_hook(false);
}

#[test]
fn the_hook_works_through_a_running_agent() {
    starts_and_stops_with_the_hook(true);
}

#[test]
fn a_label_libvirt_chose_is_adopted_and_a_pair_collision_refused() {
    let (bed, _status) = libvirt_bed("");
    let disk = bed.file("dyn.img");
    let uuid = new_uuid();
    // At prepare libvirt has not chosen the pair yet; at start the XML carries it.
    let at_prepare = domain_xml("dyn", &uuid, None, &[(&disk, "")]);
    hook_ok(&bed.config, "dyn", "prepare", "begin", &at_prepare);
    let dynamic = format!("{PROCESS}:c123,c456");
    let at_start = domain_xml("dyn", &uuid, Some(&dynamic), &[(&disk, "")]);
    hook_ok(&bed.config, "dyn", "start", "begin", &at_start);
    assert_eq!(label(&disk), Some(image_label("c123,c456")));
    // The pair is taken while it runs: another domain with it may not start, and its
    // disks stay as they were.
    let (twin_disk, twin) = (bed.file("twin.img"), new_uuid());
    let twin_xml = domain_xml("twin", &twin, Some(&dynamic), &[(&twin_disk, "")]);
    let out = hook(&bed.config, "twin", "start", "begin", &twin_xml);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("c123,c456") && err.contains("dyn"), "{err}");
    assert_eq!(
        label(&twin_disk),
        None,
        "the refused domain's disk was labeled"
    );
    // A guest of the agent holding that pair as its own is protected the same way.
    let own = bed.define_guest("own").1;
    let clash = domain_xml("clash", &new_uuid(), Some(&format!("{PROCESS}:{own}")), &[]);
    assert_eq!(
        hook(&bed.config, "clash", "start", "begin", &clash)
            .status
            .code(),
        Some(1)
    );
    // Released: the disk rests, and the guest runs with its own pair next time.
    hook_ok(&bed.config, "dyn", "release", "end", &at_start);
    assert_eq!(label(&disk).as_deref(), Some(VIRT_IMAGE));
    hook_ok(&bed.config, "dyn", "start", "begin", &at_prepare);
    let shown: serde_json::Value =
        serde_json::from_str(&bed.ok(&["guest", "show", &uuid])).unwrap();
    assert_eq!(
        label(&disk),
        Some(image_label(shown["categories"].as_str().unwrap()))
    );
    // Bad XML is refused with a reason, and changes nothing.
    let out = hook(
        &bed.config,
        "x",
        "prepare",
        "begin",
        "<domain><name>x</name>",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("domain XML"));
    // Operations the agent has nothing to do for exit 0 without reading the XML.
    hook_ok(&bed.config, "dyn", "started", "begin", "");
}

#[test]
fn guests_whose_domain_died_without_a_release_are_released() {
    let (bed, status) = libvirt_bed("");
    let (alive_disk, dead_disk) = (bed.file("alive.img"), bed.file("dead.img"));
    let (alive, dead) = (new_uuid(), new_uuid());
    let alive_xml = domain_xml("alive", &alive, None, &[(&alive_disk, "")]);
    let dead_xml = domain_xml("dead", &dead, None, &[(&dead_disk, "")]);
    hook_ok(&bed.config, "alive", "start", "begin", &alive_xml);
    hook_ok(&bed.config, "dead", "start", "begin", &dead_xml);
    // libvirtd's status file says only "alive" runs (as after a crash of "dead").
    std::fs::write(
        status.join("alive.xml"),
        format!("<domstatus state='running' pid='1'>{alive_xml}</domstatus>"),
    )
    .unwrap();
    let _agent = bed.agent();
    assert_eq!(
        label(&dead_disk).as_deref(),
        Some(VIRT_IMAGE),
        "dead guest released"
    );
    assert!(
        label(&alive_disk).unwrap().starts_with(SVIRT_IMAGE),
        "running guest kept"
    );
    // libvirtd restarted (reconnect) after "alive" died too.
    std::fs::remove_file(status.join("alive.xml")).unwrap();
    let third = bed.file("third.img");
    let third_xml = domain_xml("third", &new_uuid(), None, &[(&third, "")]);
    std::fs::write(status.join("third.xml"), &third_xml).unwrap();
    hook_ok(&bed.config, "third", "reconnect", "begin", &third_xml);
    assert_label_within_1s(&alive_disk, VIRT_IMAGE);
    assert!(label(&third).unwrap().starts_with(SVIRT_IMAGE));
}

#[test]
fn volumes_libvirt_holds_are_never_relabeled_under_a_running_vm() {
    let bed = Bed::new();
    let (held, other) = (bed.file("held.img"), bed.file("other.img"));
    let _agent = bed.agent();
    // What libvirt's SELinux driver does at VM start: remember, then label.
    libvirt_remembers(&held, VIRT_IMAGE);
    let running = "system_u:object_r:svirt_image_t:s0:c123,c456";
    set_label(&held, running);
    set_label(&other, "system_u:object_r:etc_t:s0");
    assert_label_within_1s(&other, VIRT_IMAGE);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        label(&held).as_deref(),
        Some(running),
        "rewritten under a running VM"
    );
    let status = bed.ok(&["status", "--all"]);
    assert!(status.contains("held by libvirt"), "{status}");
    // libvirt restores at stop and removes its xattrs: the agent's own labels apply again.
    set_label(&held, "system_u:object_r:svirt_image_t:s0:c1,c2");
    libvirt_forgets(&held);
    assert_label_within_1s(&held, VIRT_IMAGE);
}

#[test]
fn the_seclabel_printed_for_a_guest_is_valid_domain_xml() {
    let bed = Bed::new();
    let (uuid, cats) = bed.define_guest("adoptee");
    let snippet = bed.ok(&["guest", "seclabel", &uuid]);
    let label = format!("{PROCESS}:{cats}");
    assert!(
        snippet.contains(&format!("<label>{label}</label>")),
        "{snippet}"
    );
    assert!(
        snippet.contains("type='static'") && snippet.contains("relabel='no'"),
        "{snippet}"
    );
    // Put both where they go in a domain, and let libvirt's schema judge.
    let disk_seclabel = snippet
        .lines()
        .find(|l| l.contains("relabel='no'"))
        .unwrap();
    let domain_seclabel: String = snippet
        .lines()
        .skip_while(|l| !l.starts_with("<seclabel type='static'"))
        .take_while(|l| !l.starts_with("<!--"))
        .collect::<Vec<_>>()
        .join("\n");
    let xml = format!(
        "<domain type='qemu'><name>adoptee</name><uuid>{uuid}</uuid><memory>65536</memory>\
         <os><type>hvm</type></os><devices><disk type='file' device='disk'>\
         <source file='{}'>{disk_seclabel}</source><target dev='vda'/></disk></devices>\
         {domain_seclabel}</domain>",
        bed.pool.join("adoptee.img").display()
    );
    let file = bed.state.join("adoptee.xml");
    std::fs::write(&file, xml).unwrap();
    assert_valid_domain_xml(&file);
}

#[test]
fn a_hook_that_cannot_finish_in_10_s_refuses_the_start() {
    let (bed, _status) = libvirt_bed("");
    let disk = bed.file("slow.img");
    let xml = domain_xml("slow", &new_uuid(), None, &[(&disk, "")]);
    // Someone holds the state lock (a stuck CLI, say) and never lets go.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(bed.state.join("lock"))
        .unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let started = std::time::Instant::now();
    let out = hook(&bed.config, "slow", "prepare", "begin", &xml);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("gave up after 10 s"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert_eq!(label(&disk), None);
}

/// The CLI run as `nobody` (group nogroup, the API group of these beds): it goes
/// through the running agent's socket as an API member. The binary runs from a copy
/// anyone may execute (removed with it): the build may be in a directory only root can
/// enter (CI's is).
struct Member(TempDir);

impl Member {
    fn new() -> Member {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("/tmp", "svirt-pool-member-bin");
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_svirt-pool"), dir.join("svirt-pool")).unwrap();
        Member(dir)
    }

    fn run(&self, bed: &Bed, args: &[&str]) -> Output {
        let copy = &self.0;
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(copy.join("svirt-pool"))
            .arg("--config")
            .arg(&bed.config)
            .args(args)
            .current_dir("/")
            .output()
            .expect("setpriv (util-linux) is needed")
    }
}

#[test]
fn a_member_who_defines_a_domain_s_uuid_first_never_holds_the_running_domain() {
    let (bed, _status) = libvirt_bed("group = \"nogroup\"\n");
    let _agent = bed.agent();
    let member = Member::new();
    // libvirt's domain UUIDs are readable by anyone (`virsh -r list --uuid`). A member
    // defines the UUID of root's domain before the domain first starts, and pins a
    // file of its own to it.
    let uuid = new_uuid();
    let out = member.run(
        &bed,
        &["guest", "define", "--uuid", &uuid, "--name", "squat"],
    );
    assert!(out.status.success(), "{out:?}");
    let own = bed.file("member/own.iso");
    std::os::unix::fs::chown(&own, Some(65534), Some(65534)).unwrap();
    let out = member.run(
        &bed,
        &[
            "attach",
            "--guest",
            &uuid,
            "--volume",
            own.to_str().unwrap(),
            "--mode",
            "ro",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(label(&own).as_deref(), Some(VIRT_CONTENT));

    // Root's own define of that UUID is refused, naming the member.
    let out = bed.cli(&["guest", "define", "--uuid", &uuid, "--name", "web"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("uid 65534"),
        "{out:?}"
    );

    // The domain starts: the hook takes the guest over for it.
    let disk = bed.file("web.img");
    let xml = domain_xml("web", &uuid, None, &[(&disk, "")]);
    hook_ok(&bed.config, "web", "prepare", "begin", &xml);
    let shown: serde_json::Value =
        serde_json::from_str(&bed.ok(&["guest", "show", &uuid])).unwrap();
    let cats = shown["categories"].as_str().unwrap().to_owned();
    assert_eq!(label(&disk), Some(image_label(&cats)));
    // What the member attached is released, and the member can no longer act for it.
    assert_eq!(label(&own).as_deref(), Some(VIRT_IMAGE));
    let attached: Vec<&str> = shown["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["volume"].as_str().unwrap())
        .collect();
    assert_eq!(attached, ["web.img"], "{shown}");
    let out = member.run(
        &bed,
        &[
            "detach",
            "--guest",
            &uuid,
            "--volume",
            disk.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "the member detached the running disk: {out:?}"
    );
    assert_eq!(label(&disk), Some(image_label(&cats)));
    let out = member.run(&bed, &["release", "--guest", &uuid]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(label(&disk), Some(image_label(&cats)));
}

#[test]
fn a_member_cannot_take_the_pairs_root_s_domains_need() {
    // A small range: c0.c9 has 45 pairs, fewer than a member's guest quota (64).
    let bed = Bed::with_api_and_extra(
        "group = \"nogroup\"\n",
        "\n[selinux]\ncategories = \"c0.c9\"\n",
    );
    let _agent = bed.agent();
    let member = Member::new();
    let mut defined = 0;
    let refusal = loop {
        let out = member.run(&bed, &["guest", "define", "--uuid", &new_uuid()]);
        if !out.status.success() {
            break String::from_utf8_lossy(&out.stderr).into_owned();
        }
        defined += 1;
        assert!(defined <= 45, "the member took every pair");
    };
    println!("pair reserve: the member defined {defined} of 45 guests, then: {refusal}");
    assert_eq!(defined, 45 - 8, "{refusal}");
    assert!(refusal.contains("kept for root"), "{refusal}");
    // Root's domains still get pairs, through the hook and by hand.
    let disk = bed.file("web.img");
    let uuid = new_uuid();
    hook_ok(
        &bed.config,
        "web",
        "prepare",
        "begin",
        &domain_xml("web", &uuid, None, &[(&disk, "")]),
    );
    bed.define_guest("by-hand");
}

#[test]
fn what_a_domain_boots_from_is_labeled_as_libvirt_labels_it() {
    // libvirt's own case (tests/securityselinuxlabeldata/kernel.xml and kernel.txt:
    // kernel and initrd `virt_content_t:s0`), its paths moved into a pool, with the
    // firmware (read), its variables (written: the guest's image label, as libvirt's
    // `<nvram>`), a device tree and an ACPI table.
    let (bed, _status) = libvirt_bed("");
    let files: Vec<PathBuf> = [
        "vmlinuz.raw",
        "initrd.raw",
        "OVMF_CODE.fd",
        "vm1_VARS.fd",
        "board.dtb",
        "slic.dat",
    ]
    .iter()
    .map(|f| bed.file(f))
    .collect();
    let p = |i: usize| files[i].display().to_string();
    let outside = TempDir::new("/var/lib/libvirt", "svirt-pool-outside");
    let kernel_outside = outside.join("vmlinuz");
    std::fs::write(&kernel_outside, b"x").unwrap();
    set_label(&kernel_outside, "system_u:object_r:boot_t:s0");
    let xml = |kernel: &str| {
        format!(
            "<domain type='kvm'><name>vm1</name><uuid>c7b3edbd-edaf-9455-926a-d65c16db1800</uuid>\
             <os><type arch='x86_64' machine='pc-1.0'>hvm</type>\
             <loader readonly='yes' type='pflash'>{}</loader><nvram>{}</nvram>\
             <kernel>{kernel}</kernel><initrd>{}</initrd><dtb>{}</dtb>\
             <acpi><table type='slic'>{}</table></acpi></os>\
             <seclabel model='selinux' type='dynamic' relabel='yes'>\
             <label>system_u:system_r:svirt_t:s0:c41,c264</label></seclabel></domain>",
            p(2),
            p(3),
            p(1),
            p(4),
            p(5)
        )
    };
    let in_pool = xml(&p(0));
    hook_ok(&bed.config, "vm1", "prepare", "begin", &in_pool);
    for i in [0, 1, 2, 4, 5] {
        assert_eq!(label(&files[i]).as_deref(), Some(VIRT_CONTENT), "{}", p(i));
    }
    assert_eq!(label(&files[3]), Some(image_label("c41,c264")), "nvram");
    hook_ok(&bed.config, "vm1", "release", "end", &in_pool);
    for f in &files {
        assert_eq!(label(f).as_deref(), Some(VIRT_IMAGE), "{}", f.display());
    }
    // A kernel outside the pools is libvirt's.
    let elsewhere = xml(&kernel_outside.display().to_string());
    hook_ok(&bed.config, "vm1", "prepare", "begin", &elsewhere);
    assert_eq!(
        label(&kernel_outside).as_deref(),
        Some("system_u:object_r:boot_t:s0")
    );
    hook_ok(&bed.config, "vm1", "release", "end", &elsewhere);
}

#[test]
fn libvirts_disks_case_gets_libvirts_labels() {
    // libvirt's own case (tests/securityselinuxlabeldata/disks.xml and disks.txt), its
    // paths moved into a pool: plain, shareable, readonly, a disk with relabel='no' and
    // one with a label of its own. One difference, by design: relabel='no' on a disk
    // means the agent labels it (libvirt leaves it; disks.txt expects no label).
    let (bed, _status) = libvirt_bed("");
    let names = [
        "plain.raw",
        "shared.raw",
        "readonly.raw",
        "nolabel.raw",
        "altlabel.raw",
    ];
    let files: Vec<PathBuf> = names.iter().map(|f| bed.file(f)).collect();
    let p = |i: usize| files[i].display().to_string();
    let custom = "system_u:object_r:svirt_image_custom_t:s0:c41,c264";
    let xml = |alt: &str| {
        format!(
            "<domain type='kvm'><name>vm1</name><uuid>c7b3edbd-edaf-9455-926a-d65c16db1800</uuid>\
             <memory unit='KiB'>219200</memory>\
             <os><type arch='x86_64' machine='pc-1.0'>hvm</type><boot dev='cdrom'/></os>\
             <devices>\
             <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
               <source file='{}'/><target dev='vda' bus='virtio'/></disk>\
             <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
               <source file='{}'/><shareable/><target dev='vdb' bus='virtio'/></disk>\
             <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
               <source file='{}'/><readonly/><target dev='vdc' bus='virtio'/></disk>\
             <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
               <source file='{}'><seclabel model='selinux' relabel='no'/></source>\
               <target dev='vdd' bus='virtio'/></disk>\
             <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
               <source file='{}'><seclabel model='selinux' relabel='yes'>\
               <label>{alt}</label></seclabel></source>\
               <target dev='vde' bus='virtio'/></disk>\
             </devices>\
             <seclabel model='selinux' type='dynamic' relabel='yes'>\
             <label>system_u:system_r:svirt_t:s0:c41,c264</label>\
             <imagelabel>system_u:object_r:svirt_image_t:s0:c41,c264</imagelabel>\
             </seclabel></domain>",
            p(0),
            p(1),
            p(2),
            p(3),
            p(4)
        )
    };
    let domain = xml(custom);
    hook_ok(&bed.config, "vm1", "prepare", "begin", &domain);
    // disks.txt, line by line.
    let expected = [
        image_label("c41,c264"),
        SVIRT_IMAGE.to_owned(),
        VIRT_CONTENT.to_owned(),
        image_label("c41,c264"), // libvirt: left alone
        custom.to_owned(),
    ];
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(label(&files[i]).as_ref(), Some(want), "{}", names[i]);
    }
    // status shows the disk's own label as the one it must carry: no drift.
    let status = bed.ok(&["status", "--json"]);
    assert!(
        status.contains(custom) && !status.contains("\"drift\":true"),
        "{status}"
    );
    bed.ok(&["scan"]);
    assert_eq!(
        label(&files[4]).as_deref(),
        Some(custom),
        "a rescan keeps it"
    );
    // The refpolicy has no svirt_image_custom_t (libvirt's test policy has): verify
    // says so, and that the guest could not use that disk; nothing else.
    let out = bed.cli(&["verify", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<(&str, &str)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["kind"].as_str().unwrap(), f["volume"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("holder_denied", "altlabel.raw")], "{v:#}");
    assert!(
        v["unchecked"][0]
            .as_str()
            .unwrap()
            .contains("svirt_image_custom_t"),
        "{v:#}"
    );
    hook_ok(&bed.config, "vm1", "release", "end", &domain);
    for (i, f) in files.iter().enumerate() {
        assert_eq!(label(f).as_deref(), Some(VIRT_IMAGE), "{}", names[i]);
    }
    // A label that is no context: the domain does not start, the message names the
    // disk, and nothing is attached.
    let out = hook(&bed.config, "vm1", "prepare", "begin", &xml("not a label"));
    assert_eq!(out.status.code(), Some(2), "a domain XML error: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("disk vde") && err.contains("not a label"),
        "{err}"
    );
    for f in &files {
        assert_eq!(label(f).as_deref(), Some(VIRT_IMAGE), "{}", f.display());
    }
}
