//! Cluster mode end to end: hosts on one machine sharing a dir pool through a real
//! 3-member etcd (tests/common/cluster.rs), each with its own state, driven through
//! the built binary (CLI and libvirt's hook) as an admin and libvirtd would.

mod common;

use common::cluster::ClusterBed;
use common::libvirt::{domain_xml, hook, hook_ok};
use common::*;

/// libvirt's calls on one host, in order, each followed by the label check.
fn calls(
    bed: &ClusterBed,
    host: usize,
    name: &str,
    xml: &str,
    ops: &[(&str, &str)],
    check: &dyn Fn(&str),
) {
    for (op, subop) in ops {
        hook_ok(&bed.hosts[host].config, name, op, subop, xml);
        check(&format!(
            "after {op} {subop} on host {}",
            bed.hosts[host].name
        ));
    }
}

const START: [(&str, &str); 3] = [
    ("prepare", "begin"),
    ("start", "begin"),
    ("started", "begin"),
];
const INCOMING: [(&str, &str); 4] = [
    ("migrate", "begin"),
    ("prepare", "begin"),
    ("start", "begin"),
    ("started", "begin"),
];
const STOP: [(&str, &str); 2] = [("stopped", "end"), ("release", "end")];

#[test]
fn a_guest_migrates_between_hosts_and_its_disk_keeps_its_label_throughout() {
    let bed = ClusterBed::new(2, "");
    let (disk, iso) = (bed.file("web.img"), bed.file("install.iso"));
    let uuid = new_uuid();
    // libvirt's own pair for the domain (a dynamic label it chose): the guest's disks
    // carry it while the domain runs, on whichever host.
    let run = "c17,c402";
    let xml = domain_xml(
        "web",
        &uuid,
        Some(&format!("system_u:system_r:svirt_t:s0:{run}")),
        &[(&disk, ""), (&iso, "cdrom<readonly/>")],
    );
    let running = || {
        assert_eq!(label(&disk), Some(image_label(run)));
        assert_eq!(label(&iso).as_deref(), Some(VIRT_CONTENT));
    };
    let check_running = |when: &str| {
        assert_eq!(label(&disk), Some(image_label(run)), "disk {when}");
        assert_eq!(label(&iso).as_deref(), Some(VIRT_CONTENT), "iso {when}");
    };
    calls(&bed, 0, "web", &xml, &START, &check_running);
    running();

    // A start of the same domain on b that is not a migration: refused, a keeps it.
    let out = hook(&bed.hosts[1].config, "web", "prepare", "begin", &xml);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("on host a") && err.contains("migrates"),
        "{err}"
    );
    hook_ok(&bed.hosts[1].config, "web", "release", "end", &xml);
    running();

    // a → b: the destination first, then the source lets go.
    calls(&bed, 1, "web", &xml, &INCOMING, &check_running);
    calls(&bed, 0, "web", &xml, &STOP, &check_running);
    // Host a lists the disk as held on host b (and nothing drifts).
    let status: serde_json::Value =
        serde_json::from_str(&bed.hosts[0].ok(&["status", "--json"])).unwrap();
    let text = status.to_string();
    assert!(text.contains("rw by web on host b"), "{status:#}");

    // b → a, failing on a after its start: a's holds go, b's stay, the label too.
    calls(&bed, 0, "web", &xml, &INCOMING[..3], &check_running);
    calls(&bed, 0, "web", &xml, &STOP, &check_running);
    // And the guest can still migrate to a afterwards.
    calls(&bed, 0, "web", &xml, &INCOMING, &check_running);
    calls(&bed, 1, "web", &xml, &STOP, &check_running);

    // It stops on a: every host let go, the disks rest.
    calls(&bed, 0, "web", &xml, &STOP, &|_| ());
    assert_eq!(label(&disk).as_deref(), Some(VIRT_IMAGE));
    assert_eq!(label(&iso).as_deref(), Some(VIRT_IMAGE));
}

#[test]
fn hosts_share_guests_pairs_and_the_rule_of_one_writer() {
    let bed = ClusterBed::new(3, "");
    let disk = bed.file("db.img");
    let (g1, cats1) = bed.hosts[0].define_guest("one");
    // Every host sees the guest with its pair.
    for h in &bed.hosts {
        let shown: serde_json::Value =
            serde_json::from_str(&h.ok(&["guest", "show", &g1])).unwrap();
        assert_eq!(
            shown["categories"].as_str(),
            Some(cats1.as_str()),
            "on {}",
            h.name
        );
    }
    bed.hosts[0].attach_ok(&g1, &disk, "rw");
    assert_eq!(label(&disk), Some(image_label(&cats1)));
    let (g2, _) = bed.hosts[1].define_guest("two");
    let out = bed.hosts[1].attach(&g2, &disk, "rw");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&g1) && err.contains("on host a"), "{err}");
    assert_eq!(label(&disk), Some(image_label(&cats1)), "unchanged");
}

#[test]
fn hosts_labeling_one_shared_file_at_once_leave_the_label_its_holders_give() {
    // Host a attaches its guest `shared` and detaches it, over and over, while host b
    // does the same `ro` with its own guest, on one file: each writes the label from the
    // holders it read, and a write from an older read can land last. Every round ends
    // with b's guest alone (ro): the label must be the content label, whatever the order.
    let bed = ClusterBed::new(2, "");
    let iso = bed.file("shared.iso");
    let (g1, _) = bed.hosts[0].define_guest("one");
    let (g2, _) = bed.hosts[1].define_guest("two");
    for round in 0..6 {
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..5 {
                    bed.hosts[0].attach_ok(&g1, &iso, "shared");
                    bed.hosts[0].ok(&["detach", "--guest", &g1, "--volume", iso.to_str().unwrap()]);
                }
            });
            s.spawn(|| {
                for i in 0..5 {
                    bed.hosts[1].attach_ok(&g2, &iso, "ro");
                    if i < 4 {
                        bed.hosts[1].ok(&[
                            "detach",
                            "--guest",
                            &g2,
                            "--volume",
                            iso.to_str().unwrap(),
                        ]);
                    }
                }
            });
        });
        assert_eq!(label(&iso).as_deref(), Some(VIRT_CONTENT), "round {round}");
    }
}

#[test]
fn without_quorum_cluster_calls_fail_in_time_local_pools_work_labels_stay_then_converge() {
    let mut bed = ClusterBed::new(1, "");
    let a = &bed.hosts[0];
    let agent = a.agent();
    let (g1, cats) = a.define_guest("one");
    let disk = bed.file("disk.img");
    a.attach_ok(&g1, &disk, "rw");
    let other = bed.file("other.img");
    let local = a.local.join("local.img");
    std::fs::write(&local, b"local").unwrap();

    // The agent has seen the new file.
    assert_label_within_1s(&other, VIRT_IMAGE);
    // Two of three members gone: no quorum.
    bed.etcd.kill(1);
    bed.etcd.kill(2);
    let a = &bed.hosts[0];
    let started = std::time::Instant::now();
    let out = a.attach(&g1, &other, "rw");
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("etcd (http://127.0.0.1:"), "{err}");
    // timeout_ms = 2000: one call to etcd is bounded by it; the CLI's own try of the
    // agent and its fallback add one more at most.
    assert!(
        took < std::time::Duration::from_secs(7),
        "took {took:?}: {err}"
    );
    assert_eq!(
        label(&other).as_deref(),
        Some(VIRT_IMAGE),
        "nothing changed"
    );

    // A libvirt start with a shared disk is refused within the hook's bound.
    let xml = domain_xml("db", &new_uuid(), None, &[(&other, "")]);
    let started = std::time::Instant::now();
    let out = hook(&a.config, "db", "prepare", "begin", &xml);
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < std::time::Duration::from_secs(11));

    // This host's own pool keeps working, on its copy of the guest.
    a.attach_ok(&g1, &local, "rw");
    assert_eq!(label(&local), Some(image_label(&cats)));

    // The running guest's disk keeps its label: events on it change nothing, and a
    // label set by hand meanwhile is left (the holders cannot be read).
    std::fs::write(&disk, b"written by the guest").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(label(&disk), Some(image_label(&cats)));
    set_label(&disk, VIRT_IMAGE);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(label(&disk).as_deref(), Some(VIRT_IMAGE));

    // Healed: the agent reads the cluster again and puts the label back.
    bed.etcd.restart(1);
    bed.etcd.restart(2);
    bed.etcd.wait_ready(std::time::Duration::from_secs(30));
    assert!(
        wait_for(std::time::Duration::from_secs(20), || label(&disk)
            == Some(image_label(&cats))),
        "the agent did not converge after etcd came back: {:?}",
        label(&disk)
    );
    drop(agent);
}

#[test]
fn a_dead_hosts_holds_stay_until_an_admin_evicts_it() {
    let bed = ClusterBed::new(2, "");
    let (a, b) = (&bed.hosts[0], &bed.hosts[1]);
    let agent_b = b.agent();
    let disk = bed.file("disk.img");
    let (g2, cats2) = b.define_guest("two");
    b.attach_ok(&g2, &disk, "rw");
    let (g1, _) = a.define_guest("one");

    let status: serde_json::Value =
        serde_json::from_str(&a.ok(&["cluster", "status", "--json"])).unwrap();
    let hosts = status["hosts"].as_array().unwrap();
    let host_b = hosts.iter().find(|h| h["host"] == "b").unwrap();
    assert_eq!(host_b["alive"], true, "{status:#}");
    assert_eq!(host_b["attachments"], 1, "{status:#}");
    assert_eq!(status["pairs_in_use"], 2, "{status:#}");

    // b's agent dies: its holds stay (no lease on holds), a is still refused.
    agent_b.kill();
    let out = a.attach(&g1, &disk, "rw");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("on host b"));
    // While b's key lives, evict is refused: b may still be running.
    let out = a.cli(&["cluster", "evict", "b"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("host b is alive") && err.contains("fence"),
        "{err}"
    );
    assert_eq!(label(&disk), Some(image_label(&cats2)));

    // Once its key ran out (15 s), the admin who fenced it evicts it.
    assert!(
        wait_for(std::time::Duration::from_secs(30), || {
            a.cli(&["cluster", "evict", "b"]).status.success()
        }),
        "evict still refused after b's key should have run out"
    );
    assert_eq!(label(&disk).as_deref(), Some(VIRT_IMAGE), "relabeled by a");
    // b holds nothing now, and is not alive: status no longer lists it.
    let status: serde_json::Value =
        serde_json::from_str(&a.ok(&["cluster", "status", "--json"])).unwrap();
    let hosts = status["hosts"].as_array().unwrap();
    assert!(hosts.iter().all(|h| h["host"] != "b"), "{status:#}");
    a.attach_ok(&g1, &disk, "rw");
}

#[test]
fn import_brings_a_single_hosts_guests_and_refuses_a_collision_naming_it() {
    // One pair in all (c0,c1): the cluster's guest and b's own guest get the same.
    let bed = ClusterBed::new(2, "\n[selinux]\ncategories = \"c0.c1\"\n");
    let (a, b) = (&bed.hosts[0], &bed.hosts[1]);
    let disk = bed.file("disk.img");
    // b alone (no [cluster]) defines a guest and attaches a file of the pool.
    let alone = b.alone_config();
    let uuid = new_uuid();
    let out = run_cli(
        &alone,
        &["guest", "define", "--uuid", &uuid, "--name", "old"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_attach(&alone, &uuid, &disk, "rw");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The cluster gives the only pair to another guest: b's import is refused, naming it.
    let (taker, _) = a.define_guest("taker");
    let out = b.cli(&["cluster", "import"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("c0,c1") && err.contains(&taker) && err.contains(&uuid),
        "{err}"
    );
    assert!(
        a.cli(&["guest", "show", &uuid]).status.code() != Some(0),
        "nothing imported"
    );

    // Without the collision it goes in, its hold of the now shared pool with it.
    a.ok(&["guest", "undefine", &taker]);
    b.ok(&["cluster", "import"]);
    let shown: serde_json::Value = serde_json::from_str(&a.ok(&["guest", "show", &uuid])).unwrap();
    assert_eq!(shown["categories"], "c0,c1");
    let (other, _) = (new_uuid(), ());
    let out = a.cli(&["guest", "define", "--uuid", &other]);
    assert!(!out.status.success(), "the one pair is taken");
    let out = a.attach(&uuid, &disk, "ro");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("on host b"));
}

#[test]
fn three_agents_define_3000_guests_at_once_with_the_leader_killed_midway() {
    let mut bed = ClusterBed::new(3, "");
    // A guest of a host that was alone, brought in first: its pair is the cluster's now.
    let c = &bed.hosts[2];
    let old = new_uuid();
    let out = run_cli(&c.alone_config(), &["guest", "define", "--uuid", &old]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old_pair = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["categories"]
        .as_str()
        .unwrap()
        .to_owned();
    c.ok(&["cluster", "import"]);
    let agents: Vec<Agent> = bed.hosts.iter().map(|h| h.agent()).collect();

    let done = std::sync::atomic::AtomicUsize::new(0);
    let per_thread = 250;
    let (acked, failed): (Vec<(String, String)>, usize) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..12)
            .map(|t| {
                let (host, done) = (&bed.hosts[t % 3], &done);
                s.spawn(move || {
                    let mut acked = Vec::new();
                    let mut failed = 0;
                    for _ in 0..per_thread {
                        let uuid = new_uuid();
                        let out = host.cli(&["guest", "define", "--uuid", &uuid]);
                        if out.status.success() {
                            let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                            acked.push((uuid, g["categories"].as_str().unwrap().to_owned()));
                        } else {
                            // Refused while etcd elects a new leader: said, not hung.
                            let err = String::from_utf8_lossy(&out.stderr);
                            assert!(err.contains("etcd"), "{err}");
                            failed += 1;
                        }
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    (acked, failed)
                })
            })
            .collect();
        // Midway, the leader dies (SIGKILL) and comes back a little later.
        while done.load(std::sync::atomic::Ordering::Relaxed) < 1000 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let leader = bed.etcd.leader().expect("a leader");
        bed.etcd.kill(leader);
        std::thread::sleep(std::time::Duration::from_secs(2));
        bed.etcd.restart(leader);
        workers.into_iter().map(|w| w.join().unwrap()).fold(
            (Vec::new(), 0),
            |(mut all, f), (acked, failed)| {
                all.extend(acked);
                (all, f + failed)
            },
        )
    });
    assert_eq!(acked.len() + failed, 3000);
    assert!(acked.len() >= 2900, "{failed} of 3000 refused");
    let mut pairs: Vec<&str> = acked.iter().map(|(_, p)| p.as_str()).collect();
    pairs.push(&old_pair);
    pairs.sort();
    pairs.dedup();
    assert_eq!(pairs.len(), acked.len() + 1, "two guests got one pair");
    // Every acknowledged define is there, with its pair, seen from every host.
    bed.etcd.wait_ready(std::time::Duration::from_secs(30));
    for h in &bed.hosts {
        let listed: Vec<serde_json::Value> =
            serde_json::from_str(&h.ok(&["guest", "list"])).unwrap();
        let by_uuid: std::collections::HashMap<&str, &str> = listed
            .iter()
            .map(|g| {
                (
                    g["uuid"].as_str().unwrap(),
                    g["categories"].as_str().unwrap(),
                )
            })
            .collect();
        for (uuid, pair) in &acked {
            assert_eq!(
                by_uuid.get(uuid.as_str()),
                Some(&pair.as_str()),
                "{uuid} on {}",
                h.name
            );
        }
        assert_eq!(by_uuid.get(old.as_str()), Some(&old_pair.as_str()));
    }
    drop(agents);
}

#[test]
fn etcd_with_tls_client_certificates() {
    let tls = common::etcd::Tls::make();
    let etcd = common::etcd::Etcd::start_with(3, Some(&tls));
    let keys = |cert: &str, key: &str| {
        format!(
            "ca = {:?}\ncert = {:?}\nkey = {:?}\n",
            tls.file("ca.pem"),
            tls.file(cert),
            tls.file(key)
        )
    };
    let bed = ClusterBed::on(etcd, 2, &keys("client.pem", "client.key"));
    assert!(bed.etcd.endpoints[0].starts_with("https://"));
    let disk = bed.file("disk.img");
    let (g1, cats) = bed.hosts[0].define_guest("one");
    bed.hosts[0].attach_ok(&g1, &disk, "rw");
    assert_eq!(label(&disk), Some(image_label(&cats)));
    let (g2, _) = bed.hosts[1].define_guest("two");
    let out = bed.hosts[1].attach(&g2, &disk, "rw");
    assert!(String::from_utf8_lossy(&out.stderr).contains("on host a"));

    // A client certificate of another CA: refused by etcd, said naming it.
    let text = std::fs::read_to_string(&bed.hosts[1].config).unwrap();
    let stranger = text.replace(
        &keys("client.pem", "client.key"),
        &keys("stranger.pem", "stranger.key"),
    );
    std::fs::write(&bed.hosts[1].config, stranger).unwrap();
    let out = bed.hosts[1].cli(&["guest", "define", "--uuid", &new_uuid()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("etcd (https://127.0.0.1:"), "{err}");
}

#[test]
fn a_shared_volume_group_has_one_rw_guest_across_hosts() {
    use common::lvm::LvmBed;
    // One VG on a loop device seen by hosts a and b (a SAN's in real life). On this one
    // machine both hosts have the same LV node; on real hosts each labels its own, for
    // the guests it runs (the registry's tests check that rule).
    let bed = LvmBed::new(true);
    let etcd = common::etcd::Etcd::start(3);
    let base = std::fs::read_to_string(&bed.config).unwrap();
    let config_of = |host: &str, state: &std::path::Path| {
        let endpoints: Vec<String> = etcd.endpoints.iter().map(|e| format!("{e:?}")).collect();
        let text = base.replace(
            &bed.state.0.display().to_string(),
            &state.display().to_string(),
        ) + &format!(
            "shared = true\n\n[cluster]\nendpoints = [{}]\nhost = \"{host}\"\n",
            endpoints.join(", ")
        );
        let path = state.join("svirt-pool.toml");
        std::fs::write(&path, text).unwrap();
        path
    };
    // a keeps the bed's own state (the udev hook reads that config).
    let a = config_of("a", &bed.state.0);
    let b_state = TempDir::new("/tmp", "svirt-pool-host-b");
    let b = config_of("b", &b_state.0);
    let node = bed.node("lv1");
    let volume = bed.volume("lv1");
    let define = |config: &std::path::Path, name: &str| {
        let uuid = new_uuid();
        let out = run_cli(
            config,
            &["guest", "define", "--uuid", &uuid, "--name", name],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (uuid, g["categories"].as_str().unwrap().to_owned())
    };
    let (g1, cats1) = define(&a, "one");
    let (g2, cats2) = define(&b, "two");
    let out = run_attach(&a, &g1, &volume, "rw");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(label(&node.devnode()), Some(image_label(&cats1)));

    let out = run_attach(&b, &g2, &volume, "rw");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&g1) && err.contains("on host a"), "{err}");
    let out = run_attach(&b, &g2, &volume, "ro");
    assert!(!out.status.success(), "ro beside a's rw");
    // udev resets the node (a refresh): a's udev hook asks the cluster and puts a's
    // guest's label back.
    set_label(&node.devnode(), VIRT_IMAGE);
    node.change();
    assert_eq!(label(&node.devnode()), Some(image_label(&cats1)));

    // a lets go: b's guest may have it.
    let out = run_cli(&a, &["detach", "--guest", &g1, "--volume", &volume]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_attach(&b, &g2, &volume, "rw");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(label(&node.devnode()), Some(image_label(&cats2)));
}

#[test]
fn a_refused_migration_takes_back_only_what_the_destination_attached() {
    let bed = ClusterBed::new(2, "");
    let (disk, busy) = (bed.file("web.img"), bed.file("busy.img"));
    let uuid = new_uuid();
    let xml = domain_xml("web", &uuid, None, &[(&disk, "")]);
    calls(&bed, 0, "web", &xml, &START, &|_| ());
    let (other, _) = bed.hosts[1].define_guest("other");
    bed.hosts[1].attach_ok(&other, &busy, "rw");
    // On b the domain also asks for a disk another guest writes: refused, and b's hold
    // of web.img (allowed: migrating) is taken back, a's stays.
    let with_busy = domain_xml("web", &uuid, None, &[(&disk, ""), (&busy, "")]);
    hook_ok(&bed.hosts[1].config, "web", "migrate", "begin", &with_busy);
    let out = hook(&bed.hosts[1].config, "web", "prepare", "begin", &with_busy);
    assert_eq!(out.status.code(), Some(1));
    let status: serde_json::Value =
        serde_json::from_str(&bed.hosts[0].ok(&["status", "--json"])).unwrap();
    let web = status["pools"][0]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["volume"] == "web.img")
        .unwrap();
    assert_eq!(web["state"], "rw by web", "b still holds web.img: {web:#}");
    let shown: serde_json::Value =
        serde_json::from_str(&bed.hosts[0].ok(&["guest", "show", &uuid])).unwrap();
    assert_eq!(
        shown["attachments"].as_array().unwrap().len(),
        1,
        "{shown:#}"
    );
    assert_eq!(
        label(&disk),
        Some(image_label(shown["categories"].as_str().unwrap()))
    );
}
