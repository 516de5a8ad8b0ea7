//! 10,000 guests get 10,000 distinct pairs, persisted in the real SQLite state.

use std::collections::HashSet;

use svirt_pool::decide::context::CategorySet;
use svirt_pool::registry::Guests;
use svirt_pool::state::Store;

#[test]
fn ten_thousand_guests_get_distinct_pairs_that_persist() {
    // On /dev/shm when there is one: the same SQLite, without 10,000 disk fsyncs.
    let parent = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    let dir = tempfile::tempdir_in(parent).unwrap();
    let cats = CategorySet::full();
    let mut pairs = HashSet::new();
    {
        let mut store = Store::open(dir.path()).unwrap();
        for i in 0..10_000 {
            let (g, created) = store
                .define_guest(
                    &format!("00000000-0000-4000-8000-{i:012}"),
                    None,
                    &cats,
                    0,
                    u32::MAX,
                )
                .unwrap();
            assert!(created);
            assert!(pairs.insert(g.pair), "pair {} handed out twice", g.pair);
        }
    }
    let store = Store::open(dir.path()).unwrap();
    let guests = store.guests().unwrap();
    assert_eq!(guests.len(), 10_000);
    let persisted: HashSet<_> = guests.iter().map(|g| g.pair).collect();
    assert_eq!(
        persisted, pairs,
        "the pairs read back are the pairs handed out"
    );
    store.integrity_check().unwrap();
}
