//! `svirt-pool verify`: each planted fault found, naming volume, guest and access; a
//! sound host reports nothing; every access verdict is audit2why's on the installed
//! refpolicy (SELinux is not enabled in this kernel: the policy file is asked offline,
//! by verify through libsepol and by the oracle through python3-selinux).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use common::libvirt::{domain_xml, hook, hook_ok};
use common::oracle::Oracle;
use common::*;

/// (kind, file name, guest UUID, accesses) of each finding.
type Seen = BTreeSet<(String, String, String, String)>;

fn verify_json(bed: &Bed) -> (Option<i32>, serde_json::Value) {
    let out = bed.cli(&["verify", "--json"]);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify --json: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), json)
}

fn seen(json: &serde_json::Value) -> Seen {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let file = Path::new(f["path"].as_str().unwrap());
            let access: Vec<&str> = f["access"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_str().unwrap()).collect())
                .unwrap_or_default();
            (
                f["kind"].as_str().unwrap().to_owned(),
                file.file_name().unwrap().to_string_lossy().into_owned(),
                f["guest"].as_str().unwrap_or("").to_owned(),
                access.join(","),
            )
        })
        .collect()
}

fn finding(kind: &str, file: &str, guest: &str, access: &str) -> (String, String, String, String) {
    (kind.into(), file.into(), guest.into(), access.into())
}

fn process_label(bed: &Bed, uuid: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(&bed.ok(&["guest", "show", uuid])).unwrap();
    json["process_label"].as_str().unwrap().to_owned()
}

/// Each file's holders (guest → mode) and desired label, as `status` shows them.
fn holds_and_desired(bed: &Bed) -> HashMap<String, (HashMap<String, String>, Option<String>)> {
    let json: serde_json::Value =
        serde_json::from_str(&bed.ok(&["status", "--json", "--all"])).unwrap();
    let mut out = HashMap::new();
    for v in json["pools"][0]["volumes"].as_array().unwrap() {
        let holders = v["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["guest"].as_str().unwrap().to_owned(),
                    h["mode"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let desired = v["desired"].as_str().map(str::to_owned);
        out.insert(v["volume"].as_str().unwrap().to_owned(), (holders, desired));
    }
    out
}

/// What the oracle says verify must report about guests' access: for each guest and
/// file, what audit2why allows that its holds do not give it (a hold `ro` gives read,
/// `rw`/`shared` read and write) and that a desired label without categories (shared or
/// content) would not give it either; and each holder denied what its mode needs.
fn expected_by_oracle(
    bed: &Bed,
    oracle: &mut Oracle,
    guests: &[(&str, String)],
    files: &[&Path],
) -> Seen {
    let holds = holds_and_desired(bed);
    let mut expected = Seen::new();
    let may = |oracle: &mut Oracle, p: &str, l: &str| {
        [
            oracle.allows(p, l, &["read"]),
            oracle.allows(p, l, &["write"]),
        ]
    };
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let current = label(file).unwrap();
        let (holders, desired) = &holds[&name];
        let open = desired.as_deref().filter(|d| !d.contains(":c"));
        for (uuid, process) in guests {
            let now = may(oracle, process, &current);
            let by_open = open.map_or([false, false], |d| may(oracle, process, d));
            let mode = holders.get(*uuid).map(String::as_str);
            let held = match mode {
                Some("ro") => [true, false],
                Some(_) => [true, true],
                None => [false, false],
            };
            let beyond: Vec<&str> = ["read", "write"]
                .iter()
                .zip(now.iter().zip(held.iter().zip(by_open)))
                .filter(|(_, (now, (held, open)))| **now && !**held && !*open)
                .map(|(p, _)| *p)
                .collect();
            if !beyond.is_empty() {
                expected.insert(finding("unheld_access", &name, uuid, &beyond.join(",")));
            }
            if mode.is_some() {
                let denied: Vec<&str> = ["read", "write"]
                    .iter()
                    .zip(now.iter().zip(held))
                    .filter(|(_, (now, held))| *held && !**now)
                    .map(|(p, _)| *p)
                    .collect();
                if !denied.is_empty() {
                    expected.insert(finding("holder_denied", &name, uuid, &denied.join(",")));
                }
            }
        }
    }
    expected
}

/// Two categories no guest of `taken` has.
fn unused_pair(taken: &[&str]) -> String {
    (900..1000)
        .map(|a| format!("c{a},c{}", a + 1))
        .find(|p| !taken.contains(&p.as_str()))
        .unwrap()
}

#[test]
fn each_planted_fault_is_found_and_a_sound_host_reports_nothing() {
    let bed = Bed::new();
    let (one, c1) = bed.define_guest("one");
    let (two, c2) = bed.define_guest("two");
    let (three, c3) = bed.define_guest("three");
    let guests: Vec<(&str, String)> = [&one, &two, &three]
        .iter()
        .map(|g| (g.as_str(), process_label(&bed, g)))
        .collect();
    let disk1 = bed.file("one.qcow2");
    let disk2 = bed.file("two.qcow2");
    let disk3 = bed.file("three.raw");
    let iso = bed.file("media.iso");
    let data = bed.file("data.img");
    let free = bed.file("free.img");
    let leftover = bed.file("leftover.img");
    let stale = bed.file("stale.img");
    bed.attach_ok(&one, &disk1, "rw");
    bed.attach_ok(&two, &disk2, "rw");
    bed.attach_ok(&three, &disk3, "rw");
    for g in [&one, &two] {
        bed.attach_ok(g, &iso, "ro");
        bed.attach_ok(g, &data, "shared");
    }
    bed.ok(&["scan"]);
    let files: Vec<&Path> = [
        &disk1, &disk2, &disk3, &iso, &data, &free, &leftover, &stale,
    ]
    .iter()
    .map(|p| p.as_path())
    .collect();
    let mut oracle = Oracle::start();

    // Sound: nothing found, exit 0, and the oracle agrees there is nothing to find.
    let (code, json) = verify_json(&bed);
    assert_eq!(seen(&json), Seen::new(), "{json:#}");
    assert_eq!(code, Some(0));
    assert_eq!(json["volumes"], 8, "{json:#}");
    assert_eq!(json["guests"], 3);
    assert_eq!(json["open_to_all"], 2, "the shared data and the ro media");
    assert_eq!(
        expected_by_oracle(&bed, &mut oracle, &guests, &files),
        Seen::new()
    );
    // The oracle does see what verify must count: a guest reads the others' media.
    assert!(oracle.allows(&guests[2].1, &label(&iso).unwrap(), &["read"]));

    // The faults.
    let pair = unused_pair(&[&c1, &c2, &c3]);
    set_label(&leftover, &image_label(&pair));
    set_label(&disk2, &image_label(&c1)); // one's label on two's disk
    set_label(&disk3, SVIRT_IMAGE); // the shared label on three's private disk
    set_label(&disk1, VIRT_IMAGE); // one's disk back at rest while one holds it
    let stale_pair = unused_pair(&[&c1, &c2, &c3, &pair]);
    set_label(&stale, &image_label(&stale_pair));
    libvirt_remembers(&stale, VIRT_IMAGE);

    let (code, json) = verify_json(&bed);
    assert_eq!(code, Some(1), "{json:#}");
    let found = seen(&json);
    let by_hand: Seen = [
        finding("unheld_access", "two.qcow2", &one, "read,write"),
        finding("holder_denied", "two.qcow2", &two, "read,write"),
        finding("unheld_access", "three.raw", &one, "read,write"),
        finding("unheld_access", "three.raw", &two, "read,write"),
        finding("holder_denied", "one.qcow2", &one, "read,write"),
        finding("unknown_pair", "leftover.img", "", ""),
        finding("stale_libvirt", "stale.img", "", ""),
    ]
    .into_iter()
    .collect();
    assert_eq!(found, by_hand, "{json:#}");
    // Every access verdict is audit2why's: the findings about guests are exactly those
    // the oracle's answers for every guest and every file give.
    let about_guests: Seen = found
        .iter()
        .filter(|f| f.0 == "unheld_access" || f.0 == "holder_denied")
        .cloned()
        .collect();
    assert_eq!(
        about_guests,
        expected_by_oracle(&bed, &mut oracle, &guests, &files)
    );

    // For people: one line per finding naming the file, the guest and the access.
    let out = bed.cli(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{}:", disk2.display())) && l.contains("guest one"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains(&one) && line.contains("read and write"),
        "{line}"
    );
    assert!(text.contains(&format!("{}:", leftover.display())), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("7 finding(s)"),
        "{out:?}"
    );

    // Put right: scan restores what the agent owns; libvirt's stale hold is removed by
    // hand (the agent never rewrites a label libvirt holds), then scan rests it too.
    libvirt_forgets(&stale);
    bed.ok(&["scan"]);
    let (code, json) = verify_json(&bed);
    assert_eq!((code, seen(&json)), (Some(0), Seen::new()), "{json:#}");
}

#[test]
fn only_the_pool_asked_is_verified_and_an_unknown_pool_is_refused() {
    let bed = Bed::new();
    let other = TempDir::new(IMAGES, "svirt-pool-verify-other");
    let config = std::fs::read_to_string(&bed.config).unwrap();
    std::fs::write(
        &bed.config,
        format!(
            "{config}\n[[pool]]\nname = \"other\"\ntype = \"dir\"\npath = \"{}\"\n",
            other.0.display()
        ),
    )
    .unwrap();
    let planted = other.join("planted.img");
    std::fs::write(&planted, b"x").unwrap();
    set_label(&planted, &image_label("c990,c991"));
    bed.file("fine.img");
    bed.ok(&["scan", "--json"]);
    set_label(&planted, &image_label("c990,c991"));
    let ok = bed.cli(&["verify", "--pool", "test", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(
        (
            ok.status.code(),
            json["pools"].clone(),
            json["volumes"].clone()
        ),
        (Some(0), serde_json::json!(["test"]), serde_json::json!(1))
    );
    let found = bed.cli(&["verify", "--pool", "other"]);
    assert_eq!(found.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&found.stdout).contains("c990,c991"),
        "{found:?}"
    );
    let unknown = bed.cli(&["verify", "--pool", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(err.contains("--pool") && err.contains("nope"), "{err}");
}

/// A label libvirt keeps is explained while its domain runs, and a finding once it
/// does not: libvirtd stopped the domain without restoring (it died meanwhile).
#[test]
fn a_label_libvirt_keeps_is_stale_once_its_domain_is_gone() {
    let status = TempDir::new("/tmp", "svirt-pool-libvirt-status");
    let bed = Bed::with_extra(&format!(
        "[libvirt]\nstatus_dir = \"{}\"\n",
        status.0.display()
    ));
    let disk = bed.file("web.img");
    let uuid = new_uuid();
    let process = "system_u:system_r:svirt_t:s0:c41,c264";
    let xml = domain_xml("web", &uuid, Some(process), &[(&disk, "")]);
    hook_ok(&bed.config, "web", "prepare", "begin", &xml);
    std::fs::write(
        status.join("web.xml"),
        format!("<domstatus state='running' pid='1'>{xml}</domstatus>"),
    )
    .unwrap();
    assert_eq!(label(&disk), Some(image_label("c41,c264")));
    // libvirt's own driver labeled it too (what relabel='yes' does with SELinux on).
    libvirt_remembers(&disk, VIRT_IMAGE);
    // Also a domain libvirt runs that the agent never heard of: checked as a guest.
    let stranger = bed.file("stranger.img");
    let stranger_uuid = new_uuid();
    let stranger_xml = domain_xml(
        "stranger",
        &stranger_uuid,
        Some("system_u:system_r:svirt_t:s0:c41,c264,c300"),
        &[],
    );
    std::fs::write(
        status.join("stranger.xml"),
        format!("<domstatus state='running' pid='2'>{stranger_xml}</domstatus>"),
    )
    .unwrap();
    let (code, json) = verify_json(&bed);
    // The stranger's range dominates web's pair: it may use web's disk.
    assert_eq!(
        seen(&json),
        [finding(
            "unheld_access",
            "web.img",
            &stranger_uuid,
            "read,write"
        )]
        .into_iter()
        .collect::<Seen>(),
        "{json:#}"
    );
    assert_eq!(code, Some(1));
    drop(std::fs::remove_file(status.join("stranger.xml")));
    drop(stranger);
    let (code, json) = verify_json(&bed);
    assert_eq!((code, seen(&json)), (Some(0), Seen::new()), "{json:#}");

    // The domain is gone; libvirt's xattrs and label stay.
    std::fs::remove_file(status.join("web.xml")).unwrap();
    let out = hook(&bed.config, "web", "release", "end", &xml);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("held by libvirt"),
        "{out:?}"
    );
    assert_eq!(label(&disk), Some(image_label("c41,c264")));
    let (code, json) = verify_json(&bed);
    assert_eq!(code, Some(1));
    assert_eq!(
        seen(&json),
        [finding("stale_libvirt", "web.img", "", "")]
            .into_iter()
            .collect::<Seen>(),
        "{json:#}"
    );
    let message = json["findings"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(VIRT_IMAGE),
        "names what libvirt would restore: {message}"
    );
}
