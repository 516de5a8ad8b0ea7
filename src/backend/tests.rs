//! A host's registry in cluster mode against a real 3-member etcd: the registry's
//! whole contract with the test pool shared (its holds in etcd) and local (in SQLite,
//! the guests copied there), then what only hosts sharing a pool can do to each other.

use std::collections::HashSet;

use super::Clustered;
use crate::cluster::tests::Etcd;
use crate::decide::context::CategorySet;
use crate::decide::labels::{AttachRefusal, Mode};
use crate::error::{Error, Refusal};
use crate::registry::contract::att;
use crate::registry::{Guests, Holds, Registry};
use crate::state::Store;

/// Host `host`'s registry on `etcd`, with its own state in `dir`, pool `p` shared or not.
fn host(etcd: &Etcd, host: &str, dir: &std::path::Path, shared: bool) -> Clustered {
    let store = Store::open(dir).unwrap();
    let pools: HashSet<String> = shared.then(|| "p".to_owned()).into_iter().collect();
    Clustered::with_shared(store, &etcd.settings(host, "/svirt-pool"), pools)
}

type Fresh = ((Etcd, tempfile::TempDir), Box<dyn Registry>);

fn fresh(shared: bool) -> Fresh {
    let etcd = Etcd::start(3);
    let dir = tempfile::tempdir().unwrap();
    let registry = host(&etcd, "a", dir.path(), shared);
    ((etcd, dir), Box::new(registry))
}

/// The registry's contract, the pool's holds in etcd.
mod shared_pool {
    crate::registry::contract::contract_tests!(|| super::fresh(true));
}

/// The registry's contract, the pool's holds in this host's state.
mod local_pool {
    crate::registry::contract::contract_tests!(|| super::fresh(false));
}

fn refusal(e: &Error) -> &Refusal {
    match e {
        Error::Refused(why) => why,
        other => panic!("not a refusal: {other}"),
    }
}

/// Three hosts on one etcd, each with its own state.
struct Three {
    _etcd: Etcd,
    _dirs: Vec<tempfile::TempDir>,
    hosts: Vec<Clustered>,
}

fn three(shared: bool) -> Three {
    let etcd = Etcd::start(3);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let hosts = ["a", "b", "c"]
        .iter()
        .zip(&dirs)
        .map(|(name, dir)| host(&etcd, name, dir.path(), shared))
        .collect();
    Three {
        _etcd: etcd,
        _dirs: dirs,
        hosts,
    }
}

#[test]
fn one_rw_guest_of_a_shared_volume_on_any_host_naming_the_holder_and_its_host() {
    let mut t = three(true);
    let cats = CategorySet::full();
    t.hosts[0]
        .define_guest("g1", None, &cats, 0, u32::MAX)
        .unwrap();
    t.hosts[1]
        .define_guest("g2", None, &cats, 0, u32::MAX)
        .unwrap();
    t.hosts[2]
        .define_guest("g3", None, &cats, 0, u32::MAX)
        .unwrap();
    t.hosts[0].attach(&att("g1", "disk.img", Mode::Rw)).unwrap();
    let e = t.hosts[1]
        .attach(&att("g2", "disk.img", Mode::Rw))
        .unwrap_err();
    assert!(
        matches!(refusal(&e), Refusal::Held { why: AttachRefusal::HeldRw { guest, host: Some(h) }, .. } if guest == "g1" && h == "a"),
        "{e}"
    );
    assert!(e.to_string().contains("guest g1 on host a"), "{e}");
    // Read-only beside it is refused too; every host sees the one holder, with its host.
    assert!(t.hosts[2].attach(&att("g3", "disk.img", Mode::Ro)).is_err());
    let seen = t.hosts[2].holders("p", b"disk.img").unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].guest.as_str(), seen[0].host.as_deref()),
        ("g1", Some("a"))
    );
    let mine = t.hosts[0].holders("p", b"disk.img").unwrap();
    assert_eq!(mine[0].host, None, "a's own hold names no host");

    // Read-only and shared across hosts.
    for (i, g) in ["g1", "g2", "g3"].iter().enumerate() {
        t.hosts[i].attach(&att(g, "iso", Mode::Ro)).unwrap();
    }
    let e = t.hosts[0].attach(&att("g1", "iso", Mode::Rw)).unwrap_err();
    assert!(
        matches!(
            refusal(&e),
            Refusal::Held {
                why: AttachRefusal::NotSole { host: Some(_), .. },
                ..
            }
        ),
        "{e}"
    );
    t.hosts[1].attach(&att("g2", "data", Mode::Shared)).unwrap();
    t.hosts[2].attach(&att("g3", "data", Mode::Shared)).unwrap();
    assert_eq!(t.hosts[0].holders("p", b"data").unwrap().len(), 2);

    // Detach frees it for another host's guest.
    t.hosts[0].detach("g1", "p", b"disk.img").unwrap();
    t.hosts[1].attach(&att("g2", "disk.img", Mode::Rw)).unwrap();
}

#[test]
fn a_guest_holds_a_private_volume_on_a_second_host_only_while_it_migrates() {
    let mut t = three(true);
    let cats = CategorySet::full();
    t.hosts[0]
        .define_guest("g1", None, &cats, 0, u32::MAX)
        .unwrap();
    t.hosts[0].attach(&att("g1", "disk.img", Mode::Rw)).unwrap();
    // Not migrating: two QEMUs of one guest would write one disk.
    let e = t.hosts[1]
        .attach(&att("g1", "disk.img", Mode::Rw))
        .unwrap_err();
    assert!(
        matches!(refusal(&e), Refusal::OnOtherHost { host, .. } if host == "a"),
        "{e}"
    );
    // Migrating to b: both hold it, the label counts one guest.
    t.hosts[1].begin_migration("g1").unwrap();
    t.hosts[1].attach(&att("g1", "disk.img", Mode::Rw)).unwrap();
    assert_eq!(t.hosts[2].holders("p", b"disk.img").unwrap().len(), 1);
    // The source lets go of its holds only: the destination's stay.
    let released = t.hosts[0].release("g1").unwrap();
    assert_eq!(released.len(), 1);
    let left = t.hosts[2].holders("p", b"disk.img").unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].host.as_deref(), Some("b"));
    t.hosts[1].end_migration("g1").unwrap();
    // Forgetting a guest that holds on another host is refused.
    assert!(matches!(
        refusal(&t.hosts[0].forget_guest("g1").unwrap_err()),
        Refusal::GuestHolds { .. }
    ));
}

#[test]
fn guests_are_the_clusters_and_local_pools_use_this_hosts_copy() {
    let mut t = three(false);
    let cats = CategorySet::full();
    let (g, _) = t.hosts[0]
        .define_guest("g1", Some("web"), &cats, 0, u32::MAX)
        .unwrap();
    // Another host sees the guest with its pair, and attaches its own pool's volume.
    assert_eq!(t.hosts[1].guest("g1").unwrap(), Some(g.clone()));
    t.hosts[1]
        .attach(&att("g1", "local.img", Mode::Rw))
        .unwrap();
    // Its own pool is its own: host a's pool of that name holds nothing.
    assert!(t.hosts[0].holders("p", b"local.img").unwrap().is_empty());
    t.hosts[0]
        .attach(&att("g1", "local.img", Mode::Rw))
        .unwrap();
    let holders = t.hosts[1].holders("p", b"local.img").unwrap();
    assert_eq!((holders.len(), holders[0].pair), (1, g.pair));
}

#[test]
fn hosts_racing_for_one_volume_rw_leave_one_holder() {
    // 3 hosts × 4 threads, each its own guest, race for 20 volumes rw: each volume ends
    // with exactly one holder, the one whose attach succeeded (etcd's comparison of
    // the volume's keys, not a check made before, decides).
    let etcd = Etcd::start(3);
    let dirs: Vec<_> = (0..12).map(|_| tempfile::tempdir().unwrap()).collect();
    let cats = CategorySet::full();
    let won: Vec<(String, String)> = std::thread::scope(|s| {
        let workers: Vec<_> = dirs
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                let (etcd, cats) = (&etcd, &cats);
                s.spawn(move || {
                    let name = ["a", "b", "c"][i % 3];
                    let mut r = host(etcd, name, dir.path(), true);
                    let guest = format!("g{i}");
                    r.define_guest(&guest, None, cats, 0, u32::MAX).unwrap();
                    (0..20)
                        .filter_map(|v| {
                            let volume = format!("v{v}");
                            match r.attach(&att(&guest, &volume, Mode::Rw)) {
                                Ok(_) => Some((volume, guest.clone())),
                                Err(Error::Refused(_)) => None,
                                Err(e) => panic!("{e}"),
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let reader = host(&etcd, "c", dirs[2].path(), true);
    for v in 0..20 {
        let volume = format!("v{v}");
        let winners: Vec<_> = won.iter().filter(|(vol, _)| *vol == volume).collect();
        assert_eq!(winners.len(), 1, "{volume}: {winners:?}");
        let holders = reader.holders("p", volume.as_bytes()).unwrap();
        assert_eq!(holders.len(), 1, "{volume}");
        assert_eq!(holders[0].guest, winners[0].1);
    }
}

#[test]
fn a_batch_is_one_transaction_checked_against_its_own_writes_and_other_hosts() {
    use crate::registry::Batches;
    let mut t = three(true);
    let cats = CategorySet::full();
    for (i, g) in ["g1", "g2", "g3"].iter().enumerate() {
        t.hosts[i]
            .define_guest(g, None, &cats, 0, u32::MAX)
            .unwrap();
    }
    // Within one batch, a later call sees the earlier ones' writes.
    t.hosts[0].begin_batch().unwrap();
    t.hosts[0].attach(&att("g1", "v", Mode::Rw)).unwrap();
    let e = t.hosts[0].attach(&att("g3", "v", Mode::Ro)).unwrap_err();
    assert!(matches!(refusal(&e), Refusal::Held { .. }), "{e}");
    // Nothing is in etcd before the commit.
    assert!(t.hosts[1].holders("p", b"v").unwrap().is_empty());
    // Host b's batch reads v free too, and is staged.
    t.hosts[1].begin_batch().unwrap();
    t.hosts[1].attach(&att("g2", "v", Mode::Rw)).unwrap();
    t.hosts[1].attach(&att("g2", "w", Mode::Rw)).unwrap();
    t.hosts[0].commit_batch().unwrap();
    // b's batch read what a then changed: none of it is written.
    let e = t.hosts[1].commit_batch().unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    assert!(
        t.hosts[2].holders("p", b"w").unwrap().is_empty(),
        "nothing of b's batch"
    );
    // Staged again, b's attach of v is refused naming a; w goes through.
    t.hosts[1].begin_batch().unwrap();
    let e = t.hosts[1].attach(&att("g2", "v", Mode::Rw)).unwrap_err();
    assert!(e.to_string().contains("on host a"), "{e}");
    t.hosts[1].attach(&att("g2", "w", Mode::Rw)).unwrap();
    t.hosts[1].commit_batch().unwrap();
    assert_eq!(t.hosts[2].holders("p", b"v").unwrap()[0].guest, "g1");
    assert_eq!(t.hosts[2].holders("p", b"w").unwrap()[0].guest, "g2");
    // A batch rolled back writes nothing.
    t.hosts[2].begin_batch().unwrap();
    t.hosts[2].attach(&att("g3", "x", Mode::Rw)).unwrap();
    t.hosts[2].rollback_batch();
    assert!(t.hosts[0].holders("p", b"x").unwrap().is_empty());
}
