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

/// A state written by every older schema is upgraded in place and keeps its guests
/// and attachments (a package upgrade keeps the state).
#[test]
fn an_older_state_is_upgraded_and_keeps_what_it_held() {
    use super::schema::STEPS;
    for version in 1..STEPS.len() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
            for step in &STEPS[..version] {
                conn.execute_batch(step).unwrap();
            }
            conn.pragma_update(None, "user_version", version as i64)
                .unwrap();
            conn.execute(
                "INSERT INTO guests (uuid, name, cat_low, cat_high) VALUES ('g1', 'web', 3, 7)",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO attachments (guest, pool, volume, mode) VALUES ('g1', 'p', X'78', 'rw')",
                [],
            )
            .unwrap();
        }
        let mut store = Store::open(dir.path()).unwrap();
        let g = store.guest("g1").unwrap().unwrap();
        assert_eq!(
            (g.name.as_str(), g.pair.low(), g.pair.high()),
            ("web", 3, 7)
        );
        let held = store.holders("p", b"x").unwrap();
        assert_eq!(
            (held.len(), held[0].mode, held[0].label.clone()),
            (1, Mode::Rw, None)
        );
        // What the newest schema added works on it.
        let own = crate::registry::Attachment {
            label: Some("system_u:object_r:svirt_image_t:s0:c3,c7".parse().unwrap()),
            ..att("g1", "y", Mode::Rw)
        };
        store.attach(&own).unwrap();
        assert_eq!(
            store.holders("p", b"y").unwrap()[0].label,
            own.label,
            "from version {version}"
        );
    }
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
