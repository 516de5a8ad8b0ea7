//! The registry's contract: what every backend must do, as tests written against the
//! interface alone. A backend runs them all with [`contract_tests!`] (a backend of
//! guests alone: [`guest_contract_tests!`]) and a function that opens a fresh, empty
//! one of its kind (the SQLite store's: `state/tests.rs`; etcd's: `cluster/tests.rs`).

use super::{Attachment, Guests, Registry};
use crate::decide::context::{CategorySet, Pair};
use crate::decide::labels::AttachRefusal;
use crate::decide::labels::{FileId, Mode};
use crate::error::{Error, Refusal};

/// The kind of a refusal (`None`: another error).
fn refusal(e: &Error) -> Option<&Refusal> {
    match e {
        Error::Refused(why) => Some(why),
        _ => None,
    }
}

/// An attachment of `volume` of pool `p`, of no recorded file.
pub(crate) fn att(guest: &str, volume: &str, mode: Mode) -> Attachment {
    Attachment {
        guest: guest.into(),
        pool: "p".into(),
        volume: volume.as_bytes().to_vec(),
        mode,
        file: None,
        via: None,
        host: None,
        label: None,
    }
}

pub(crate) fn attach_detach_release_round_trip(store: &mut dyn Registry) {
    let cats = CategorySet::full();
    let (g1, created) = store
        .define_guest("g1", Some("one"), &cats, 0, u32::MAX)
        .unwrap();
    assert!(created);
    let (again, created) = store.define_guest("g1", None, &cats, 0, u32::MAX).unwrap();
    assert!(!created);
    assert_eq!(again, g1);
    store.define_guest("g2", None, &cats, 0, u32::MAX).unwrap();

    assert_eq!(store.attach(&att("g1", "a.img", Mode::Ro)).unwrap(), None);
    assert_eq!(store.attach(&att("g2", "a.img", Mode::Ro)).unwrap(), None);
    let refused = store.attach(&att("g2", "a.img", Mode::Rw)).unwrap_err();
    assert!(
        matches!(refusal(&refused), Some(Refusal::Held { why: AttachRefusal::NotSole { guest, mode: Mode::Ro, .. }, .. }) if guest == "g1"),
        "{refused}"
    );
    assert_eq!(store.holders("p", b"a.img").unwrap().len(), 2);

    assert_eq!(store.detach("g2", "p", b"a.img").unwrap().0, Some(Mode::Ro));
    assert_eq!(store.detach("g2", "p", b"a.img").unwrap().0, None);
    // The sole holder may switch to rw.
    assert_eq!(
        store.attach(&att("g1", "a.img", Mode::Rw)).unwrap(),
        Some(Mode::Ro)
    );
    let held = store.forget_guest("g1").unwrap_err();
    assert!(
        matches!(refusal(&held), Some(Refusal::GuestHolds { count: 1, .. })),
        "it still holds a.img: {held}"
    );
    assert_eq!(store.release("g1").unwrap().len(), 1);
    assert!(store.holders("p", b"a.img").unwrap().is_empty());
}

pub(crate) fn exhaustion_is_a_clear_refusal(store: &mut dyn Guests) {
    let cats = CategorySet::parse("c0.c2").unwrap();
    for g in ["a", "b", "c"] {
        store.define_guest(g, None, &cats, 0, u32::MAX).unwrap();
    }
    let err = store
        .define_guest("d", None, &cats, 0, u32::MAX)
        .unwrap_err();
    assert!(
        matches!(
            refusal(&err),
            Some(Refusal::PairsExhausted { total: 3, .. })
        ),
        "{err}"
    );
    assert_eq!(err.exit_code(), 1);
}

pub(crate) fn members_never_take_the_pairs_kept_for_root(store: &mut dyn Guests) {
    // c0.c9: 45 pairs, 8 of them kept for root. Members (each within its quota) take
    // what they may; root still defines guests.
    let cats = CategorySet::parse("c0.c9").unwrap();
    let mut members = 0;
    for uid in 1000..1100 {
        match store.define_guest(&format!("m{uid}"), None, &cats, uid, 64) {
            Ok(_) => members += 1,
            Err(e) => {
                assert!(
                    matches!(refusal(&e), Some(Refusal::PairsReserved { .. })),
                    "{e}"
                );
                break;
            }
        }
    }
    assert_eq!(members, 45 - 8);
    for i in 0..8 {
        store
            .define_guest(&format!("root{i}"), None, &cats, 0, 64)
            .unwrap();
    }
}

pub(crate) fn guests_belong_to_who_defined_them_and_users_have_a_quota(store: &mut dyn Guests) {
    let cats = CategorySet::full();
    let (g, _) = store.define_guest("mine", None, &cats, 1000, 2).unwrap();
    assert_eq!(g.owner, 1000);
    let err = store
        .define_guest("mine", Some("x"), &cats, 1001, 2)
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err}");
    // Root's define never reuses a member's guest: refused, naming the owner.
    let err = store
        .define_guest("mine", Some("x"), &cats, 0, 2)
        .unwrap_err();
    assert!(
        matches!(
            refusal(&err),
            Some(Refusal::MembersGuest { owner: 1000, .. })
        ),
        "{err}"
    );
    assert_eq!(store.guest("mine").unwrap().unwrap().owner, 1000);
    // Taken over (the qemu hook for a libvirt domain): root's, with another pair.
    assert_eq!(store.take_over_guest("mine", &cats).unwrap(), Some(1000));
    let taken = store.guest("mine").unwrap().unwrap();
    assert_eq!(taken.owner, 0);
    assert_ne!(taken.pair, g.pair);
    assert_eq!(store.take_over_guest("mine", &cats).unwrap(), None);
    let (g, _) = store.define_guest("mine", Some("x"), &cats, 0, 2).unwrap();
    assert_eq!((g.owner, g.name.as_str()), (0, "x"));
    // The guest taken over no longer counts against its old owner's quota of 2.
    store.define_guest("second", None, &cats, 1000, 2).unwrap();
    store.define_guest("third", None, &cats, 1000, 2).unwrap();
    let err = store
        .define_guest("fourth", None, &cats, 1000, 2)
        .unwrap_err();
    assert!(
        matches!(
            refusal(&err),
            Some(Refusal::GuestQuota { uid: 1000, held: 2 })
        ),
        "{err}"
    );
    // Root has no quota.
    for i in 0..3 {
        store
            .define_guest(&format!("r{i}"), None, &cats, 0, 2)
            .unwrap();
    }
}

pub(crate) fn attachments_follow_files_not_names(store: &mut dyn Registry) {
    let cats = CategorySet::full();
    for g in ["old", "new"] {
        store.define_guest(g, None, &cats, 0, u32::MAX).unwrap();
    }
    let file = |ino| Some(FileId { ino, btime_ns: 7 });
    let mut first = att("old", "a.img", Mode::Rw);
    first.file = file(u64::MAX - 1);
    store.attach(&first).unwrap();
    let held = store.holders("p", b"a.img").unwrap();
    assert_eq!(held[0].file, file(u64::MAX - 1), "identity round-trips");
    // Same name, another file: the old attachment is gone, not a conflict.
    let mut second = att("new", "a.img", Mode::Rw);
    second.file = file(12);
    store.attach(&second).unwrap();
    let held = store.holders("p", b"a.img").unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].guest, "new");
    // The same file is still a conflict.
    let mut again = att("old", "a.img", Mode::Ro);
    again.file = file(12);
    assert!(store.attach(&again).is_err());
}

pub(crate) fn a_run_pair_is_taken_while_set_and_every_listing_reads_it(store: &mut dyn Guests) {
    let cats = CategorySet::parse("c0.c3").unwrap();
    let (a, _) = store.define_guest("a", None, &cats, 0, u32::MAX).unwrap();
    let (b, _) = store.define_guest("b", None, &cats, 0, u32::MAX).unwrap();
    // b may not run with a's pair; a may run with a pair nobody holds.
    assert!(store.set_run_pair("b", Some(a.pair)).is_err());
    let free = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
        .into_iter()
        .filter_map(|(l, h)| Pair::new(l, h))
        .find(|p| *p != a.pair && *p != b.pair)
        .unwrap();
    store.set_run_pair("a", Some(free)).unwrap();
    assert!(
        store.set_run_pair("b", Some(free)).is_err(),
        "taken while a runs"
    );
    for g in store.guests().unwrap() {
        let want = if g.uuid == "a" { Some(free) } else { None };
        assert_eq!(g.run_pair, want);
    }
    // New guests never draw a pair a guest runs with: 6 pairs, 2 own, 1 run pair.
    for g in ["c", "d", "e"] {
        let (n, _) = store.define_guest(g, None, &cats, 0, u32::MAX).unwrap();
        assert_ne!(n.pair, free);
    }
    assert!(store.define_guest("f", None, &cats, 0, u32::MAX).is_err());
    store.set_run_pair("a", None).unwrap();
    assert_eq!(store.guest("a").unwrap().unwrap().effective_pair(), a.pair);
}

pub(crate) fn backing_files_are_held_ro_per_overlay_and_block_rw(store: &mut dyn Registry) {
    let cats = CategorySet::full();
    for g in ["g1", "g2"] {
        store.define_guest(g, None, &cats, 0, u32::MAX).unwrap();
    }
    let base = FileId {
        ino: 7,
        btime_ns: 1,
    };
    let chain = [(b"base.qcow2".to_vec(), Some(base))];
    store
        .attach_overlay(&att("g1", "o1.qcow2", Mode::Rw), &chain)
        .unwrap();
    store
        .attach_overlay(&att("g2", "o2.qcow2", Mode::Rw), &chain)
        .unwrap();
    let holders = store.holders("p", b"base.qcow2").unwrap();
    assert_eq!(holders.len(), 2, "{holders:?}");
    assert!(
        holders
            .iter()
            .all(|h| h.mode == Mode::Ro && h.file == Some(base))
    );
    assert_eq!(
        store.holder_index().unwrap()["p"][&b"base.qcow2".to_vec()].len(),
        2
    );
    // Nobody, not even an overlay's own guest, may write the base while it is read.
    for g in ["g1", "g2"] {
        let rw = Attachment {
            file: Some(base),
            ..att(g, "base.qcow2", Mode::Rw)
        };
        let e = store.attach(&rw).unwrap_err();
        assert!(
            matches!(refusal(&e), Some(Refusal::BackingOfOverlay { .. })),
            "{e}"
        );
    }
    // An overlay on a base someone writes is refused, and records nothing.
    store.define_guest("g3", None, &cats, 0, u32::MAX).unwrap();
    let other = [(b"w.img".to_vec(), None)];
    store.attach(&att("g3", "w.img", Mode::Rw)).unwrap();
    let e = store
        .attach_overlay(&att("g1", "o3.qcow2", Mode::Ro), &other)
        .unwrap_err();
    assert!(
        matches!(refusal(&e), Some(Refusal::BackingWritten { guest, .. }) if guest == "g3"),
        "{e}"
    );
    assert!(store.holders("p", b"o3.qcow2").unwrap().is_empty());
    // Detaching one overlay keeps the other's hold; releasing the guest drops the rest.
    let (mode, backing) = store.detach("g1", "p", b"o1.qcow2").unwrap();
    assert_eq!(mode, Some(Mode::Rw));
    assert_eq!(backing.len(), 1);
    assert_eq!(backing[0].via.as_deref(), Some(&b"o1.qcow2"[..]));
    assert_eq!(store.holders("p", b"base.qcow2").unwrap().len(), 1);
    let released = store.release("g2").unwrap();
    assert_eq!(released.iter().filter(|a| a.via.is_some()).count(), 1);
    assert!(store.holders("p", b"base.qcow2").unwrap().is_empty());
    // A hold recorded `via` an overlay (undefine putting one back) is a backing hold.
    let back = Attachment {
        via: Some(b"o2.qcow2".to_vec()),
        ..att("g2", "base.qcow2", Mode::Ro)
    };
    store.attach(&back).unwrap();
    assert_eq!(store.holders("p", b"base.qcow2").unwrap().len(), 1);
    assert!(store.attachments(Some("g2")).unwrap().is_empty());
}

/// A member's read-only holds, and its overlays on a file, give way to its owner's
/// (or root's) `rw`; root's and the owner's own guests never do.
pub(crate) fn read_access_never_pins(store: &mut dyn Registry) {
    let cats = CategorySet::full();
    store.define_guest("owner", None, &cats, 1000, 10).unwrap();
    store.define_guest("reader", None, &cats, 1001, 10).unwrap();
    store
        .define_guest("layered", None, &cats, 1002, 10)
        .unwrap();
    store.define_guest("root", None, &cats, 0, 10).unwrap();
    store.attach(&att("reader", "base.img", Mode::Ro)).unwrap();
    let base = vec![(b"base.img".to_vec(), None)];
    store
        .attach_overlay(&att("layered", "top.qcow2", Mode::Rw), &base)
        .unwrap();
    store.attach(&att("root", "base.img", Mode::Ro)).unwrap();

    let released = store.release_pins("p", b"base.img", 1000).unwrap();
    let mut who: Vec<(&str, &[u8])> = released
        .iter()
        .map(|a| (a.guest.as_str(), a.volume.as_slice()))
        .collect();
    who.sort();
    assert_eq!(
        who,
        [
            ("layered", &b"base.img"[..]),
            ("layered", b"top.qcow2"),
            ("reader", b"base.img"),
        ],
        "{released:?}"
    );
    let left: Vec<String> = store
        .holders("p", b"base.img")
        .unwrap()
        .into_iter()
        .map(|h| h.guest)
        .collect();
    assert_eq!(left, ["root"], "root's read-only hold stays");
    assert!(store.attachments(Some("layered")).unwrap().is_empty());
}

/// A member's guest taken over for root gets a fresh pair and loses its run pair;
/// root's own guests and unknown UUIDs are left alone.
pub(crate) fn a_take_over_gives_root_a_fresh_pair(store: &mut dyn Guests) {
    let cats = CategorySet::full();
    let (member, _) = store.define_guest("m", None, &cats, 1000, 10).unwrap();
    let run = Pair::new(7, 9).unwrap();
    store.set_run_pair("m", Some(run)).unwrap();
    store.define_guest("r", None, &cats, 0, 10).unwrap();

    assert_eq!(store.take_over_guest("m", &cats).unwrap(), Some(1000));
    let taken = store.guest("m").unwrap().unwrap();
    assert_eq!((taken.owner, taken.run_pair), (0, None));
    assert_ne!(
        taken.pair, member.pair,
        "a pair the member knew is never root's"
    );
    assert_ne!(taken.pair, run);
    assert_eq!(store.take_over_guest("r", &cats).unwrap(), None);
    assert_eq!(store.take_over_guest("absent", &cats).unwrap(), None);
}

/// Guests page in UUID order, each page after the last UUID of the one before.
pub(crate) fn guests_page_in_uuid_order(store: &mut dyn Guests) {
    let cats = CategorySet::full();
    for uuid in ["e", "b", "d", "a", "c"] {
        store.define_guest(uuid, None, &cats, 0, u32::MAX).unwrap();
    }
    let uuids =
        |page: Vec<crate::registry::Guest>| page.into_iter().map(|g| g.uuid).collect::<Vec<_>>();
    assert_eq!(uuids(store.guests_page(None, 2).unwrap()), ["a", "b"]);
    assert_eq!(uuids(store.guests_page(Some("b"), 2).unwrap()), ["c", "d"]);
    assert_eq!(uuids(store.guests_page(Some("d"), 2).unwrap()), ["e"]);
    assert!(store.guests_page(Some("e"), 2).unwrap().is_empty());
    assert!(store.guests_page(None, 0).unwrap().is_empty());
}

/// A guest's volumes carry the pair it runs with while it has one.
pub(crate) fn holders_carry_the_run_pair(store: &mut dyn Registry) {
    let cats = CategorySet::parse("c0.c3").unwrap();
    let (a, _) = store.define_guest("a", None, &cats, 0, u32::MAX).unwrap();
    let run = [(0, 1), (0, 2), (0, 3)]
        .into_iter()
        .filter_map(|(l, h)| Pair::new(l, h))
        .find(|p| *p != a.pair)
        .unwrap();
    store.set_run_pair("a", Some(run)).unwrap();
    store.attach(&att("a", "x.img", Mode::Rw)).unwrap();
    assert_eq!(store.holders("p", b"x.img").unwrap()[0].pair, run);
    assert_eq!(
        store.holder_index().unwrap()["p"][&b"x.img".to_vec()][0].pair,
        run
    );
    store.set_run_pair("a", None).unwrap();
    assert_eq!(store.holders("p", b"x.img").unwrap()[0].pair, a.pair);
}

/// A disk's own label is kept with its attachment (read back by every listing), the
/// holders carry it, and another guest may share the file only with the same label.
pub(crate) fn a_disks_own_label_is_kept_and_shared_only_alike(store: &mut dyn Registry) {
    let cats = CategorySet::parse("c0.c9").unwrap();
    for g in ["a", "b", "c"] {
        store.define_guest(g, None, &cats, 0, u32::MAX).unwrap();
    }
    let custom: crate::decide::context::Context =
        "system_u:object_r:svirt_image_custom_t:s0:c41,c264"
            .parse()
            .unwrap();
    let with = |g: &str, mode| Attachment {
        label: Some(custom.clone()),
        ..att(g, "alt.raw", mode)
    };
    store.attach(&with("a", Mode::Shared)).unwrap();
    assert_eq!(
        store.attachments(Some("a")).unwrap()[0].label,
        Some(custom.clone())
    );
    assert_eq!(
        store.attachments(None).unwrap()[0].label,
        Some(custom.clone())
    );
    assert_eq!(
        store.holders("p", b"alt.raw").unwrap()[0].label,
        Some(custom.clone())
    );
    assert_eq!(
        store.holder_index().unwrap()["p"][&b"alt.raw".to_vec()][0].label,
        Some(custom.clone())
    );
    // Without the label, or with another: refused, naming the label in use.
    let refused = store
        .attach(&att("b", "alt.raw", Mode::Shared))
        .unwrap_err();
    assert!(
        refused.to_string().contains("svirt_image_custom_t"),
        "{refused}"
    );
    let other = Attachment {
        label: Some("system_u:object_r:svirt_image_t:s0:c1,c2".parse().unwrap()),
        ..att("b", "alt.raw", Mode::Shared)
    };
    assert!(store.attach(&other).is_err());
    store.attach(&with("b", Mode::Shared)).unwrap();
    assert_eq!(store.holders("p", b"alt.raw").unwrap().len(), 2);
    // A file used without a label of its own refuses one.
    store.attach(&att("a", "plain.raw", Mode::Ro)).unwrap();
    assert!(store.attach(&with("c", Mode::Ro)).is_ok(), "another file");
    let on_plain = Attachment {
        label: Some(custom.clone()),
        ..att("b", "plain.raw", Mode::Ro)
    };
    let refused = store.attach(&on_plain).unwrap_err();
    assert!(
        refused.to_string().contains("the label its mode decides"),
        "{refused}"
    );
}

/// One `#[test]` per contract test of guests and pairs, each on a fresh `Guests` from
/// `$fresh` (which returns it and whatever must live as long as it).
macro_rules! guest_contract_tests {
    ($fresh:expr) => {
        $crate::registry::contract::contract_tests!(@each $fresh;
            exhaustion_is_a_clear_refusal,
            members_never_take_the_pairs_kept_for_root,
            guests_belong_to_who_defined_them_and_users_have_a_quota,
            a_run_pair_is_taken_while_set_and_every_listing_reads_it,
            a_take_over_gives_root_a_fresh_pair,
            guests_page_in_uuid_order,
        );
    };
}

/// One `#[test]` per contract test (the guests' and the holds'), each on a fresh
/// registry from `$fresh` (which returns the registry and whatever must live as long
/// as it, such as its directory).
macro_rules! contract_tests {
    ($fresh:expr) => {
        $crate::registry::contract::guest_contract_tests!($fresh);
        $crate::registry::contract::contract_tests!(@each $fresh;
            attach_detach_release_round_trip,
            attachments_follow_files_not_names,
            holders_carry_the_run_pair,
            backing_files_are_held_ro_per_overlay_and_block_rw,
            read_access_never_pins,
            a_disks_own_label_is_kept_and_shared_only_alike,
        );
    };
    (@each $fresh:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let (_keep, mut registry) = $fresh();
                $crate::registry::contract::$name(&mut *registry);
            }
        )*
    };
}

pub(crate) use {contract_tests, guest_contract_tests};
