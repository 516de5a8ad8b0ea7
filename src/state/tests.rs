//! What only the SQLite store does: reopening, read-only readers, its integrity check.
//! The registry's rules are tested against the interface (`registry/contract.rs`).
use super::*;
use crate::decide::context::CategorySet;
use crate::decide::labels::Mode;
use crate::registry::contract::att;
use crate::registry::{Guests, Holds};

#[test]
fn state_survives_reopening_and_read_only_readers_see_it() {
    let dir = tempfile::tempdir().unwrap();
    let pair = {
        let mut store = Store::open(dir.path()).unwrap();
        let (g, _) = store
            .define_guest("g1", None, &CategorySet::full(), 0, u32::MAX)
            .unwrap();
        store.attach(&att("g1", "x", Mode::Rw)).unwrap();
        g.pair
    };
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.guest("g1").unwrap().unwrap().pair, pair);
    assert_eq!(ro.holders("p", b"x").unwrap()[0].mode, Mode::Rw);
    ro.integrity_check().unwrap();
}

/// The registry's contract (`registry/contract.rs`), on a fresh store in a temporary
/// directory.
mod contract {
    fn fresh() -> (tempfile::TempDir, Box<dyn crate::registry::Registry>) {
        let dir = tempfile::tempdir().unwrap();
        let store = super::Store::open(dir.path()).unwrap();
        (dir, Box::new(store))
    }

    crate::registry::contract::contract_tests!(fresh);
}
