//! Guests: defining them (with a unique pair), finding them, their run pairs, forgetting them.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::rows::{GUEST_COLUMNS, attachments_of, guest_in, guest_row};
use super::{Guest, Store};
use crate::decide::context::{CategorySet, Pair};
use crate::decide::mcs;
use crate::error::{Error, Refusal, Result};
use crate::registry::{self, Guests};

impl Guests for Store {
    fn define_guest(
        &mut self,
        uuid: &str,
        name: Option<&str>,
        categories: &CategorySet,
        owner: u32,
        quota: u32,
    ) -> Result<(Guest, bool)> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(mut guest) = guest_in(&tx, uuid)? {
            registry::may_redefine(&guest, owner)?;
            if let Some(name) = name.filter(|n| *n != guest.name) {
                tx.execute(
                    "UPDATE guests SET name = ?1 WHERE uuid = ?2",
                    params![name, uuid],
                )?;
                guest.name = name.to_owned();
            }
            tx.commit()?;
            return Ok((guest, false));
        }
        if owner != 0 {
            let held: u32 = tx.query_row(
                "SELECT count(*) FROM guests WHERE owner = ?1",
                [owner],
                |r| r.get(0),
            )?;
            // Pairs in use: every guest's own, and the other pairs domains run with.
            let used: i64 = tx.query_row(
                "SELECT count(*) + count(CASE WHEN run_low IS NOT NULL
                   AND (run_low != cat_low OR run_high != cat_high) THEN 1 END) FROM guests",
                [],
                |r| r.get(0),
            )?;
            let used = usize::try_from(used).unwrap_or(usize::MAX);
            registry::member_may_define(owner, held, quota, used, categories)?;
        }
        let pair = free_pair(&tx, categories)?;
        let name = name.unwrap_or(uuid);
        tx.execute(
            "INSERT INTO guests (uuid, name, cat_low, cat_high, owner) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![uuid, name, pair.low(), pair.high(), owner],
        )?;
        tx.commit()?;
        let guest = Guest {
            uuid: uuid.to_owned(),
            name: name.to_owned(),
            pair,
            owner,
            run_pair: None,
            via_libvirt: false,
        };
        Ok((guest, true))
    }

    fn take_over_guest(&mut self, uuid: &str, categories: &CategorySet) -> Result<Option<u32>> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(guest) = guest_in(&tx, uuid)?.filter(|g| g.owner != 0) else {
            return Ok(None);
        };
        let pair = free_pair(&tx, categories)?;
        tx.execute(
            "UPDATE guests SET owner = 0, cat_low = ?1, cat_high = ?2, run_low = NULL,
             run_high = NULL WHERE uuid = ?3",
            params![pair.low(), pair.high(), uuid],
        )?;
        tx.commit()?;
        Ok(Some(guest.owner))
    }

    fn guest(&self, uuid: &str) -> Result<Option<Guest>> {
        Ok(guest_in(self.conn(), uuid)?)
    }

    fn guests_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<Guest>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {GUEST_COLUMNS} FROM guests WHERE uuid > ?1 ORDER BY uuid LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![after.unwrap_or(""), limit], guest_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn guests(&self) -> Result<Vec<Guest>> {
        let mut stmt = self.conn().prepare(&format!(
            "SELECT {GUEST_COLUMNS} FROM guests ORDER BY name, uuid"
        ))?;
        let rows = stmt.query_map([], guest_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn set_run_pair(&mut self, uuid: &str, pair: Option<Pair>) -> Result<()> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let guest = guest_in(&tx, uuid)?.ok_or_else(|| Error::NoSuchGuest(uuid.to_owned()))?;
        let pair = pair.filter(|p| *p != guest.pair);
        if let Some(p) = pair
            && let Some(other) = pair_holder(&tx, p)?
            && other.uuid != uuid
        {
            return Err(Refusal::PairTaken {
                pair: p,
                name: other.name,
                uuid: other.uuid,
            }
            .into());
        }
        tx.execute(
            "UPDATE guests SET run_low = ?1, run_high = ?2 WHERE uuid = ?3",
            params![pair.map(Pair::low), pair.map(Pair::high), uuid],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn mark_via_libvirt(&mut self, uuid: &str) -> Result<()> {
        self.conn()
            .execute("UPDATE guests SET via_libvirt = 1 WHERE uuid = ?1", [uuid])?;
        Ok(())
    }

    fn libvirt_guests(&self) -> Result<Vec<Guest>> {
        let mut stmt = self.conn().prepare(&format!(
            "SELECT {GUEST_COLUMNS} FROM guests WHERE via_libvirt = 1 ORDER BY uuid"
        ))?;
        let rows = stmt.query_map([], guest_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn forget_guest(&mut self, uuid: &str) -> Result<()> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if guest_in(&tx, uuid)?.is_none() {
            return Err(Error::NoSuchGuest(uuid.to_owned()));
        }
        let held = attachments_of(&tx, uuid)?;
        if !held.is_empty() {
            return Err(Refusal::GuestHolds {
                uuid: uuid.to_owned(),
                count: held.len(),
            }
            .into());
        }
        tx.execute("DELETE FROM guests WHERE uuid = ?1", [uuid])?;
        tx.commit()?;
        Ok(())
    }
}

/// A random pair of `categories` that no guest holds, as its own or as the pair a
/// libvirt domain runs with.
fn free_pair(conn: &Connection, categories: &CategorySet) -> Result<Pair> {
    let mut taken = conn.prepare_cached(
        "SELECT 1 FROM guests WHERE (cat_low = ?1 AND cat_high = ?2)
         OR (run_low = ?1 AND run_high = ?2)",
    )?;
    mcs::pick_pair(categories, &mut rand::rng(), |p| {
        taken.exists(params![p.low(), p.high()])
    })?
    .ok_or_else(|| {
        Refusal::PairsExhausted {
            total: mcs::pair_count(categories),
            categories: categories.clone(),
        }
        .into()
    })
}

/// Which guest holds `pair`, as its own or as the pair it runs with.
pub(super) fn pair_holder(conn: &Connection, pair: Pair) -> rusqlite::Result<Option<Guest>> {
    conn.query_row(
        &format!(
            "SELECT {GUEST_COLUMNS} FROM guests WHERE (cat_low = ?1 AND cat_high = ?2)
             OR (run_low = ?1 AND run_high = ?2) LIMIT 1"
        ),
        params![pair.low(), pair.high()],
        guest_row,
    )
    .optional()
}

impl Store {
    /// Keeps a copy of a guest the cluster's registry holds (docs/cluster.md): this
    /// host's own pools record their attachments here, against it, and still find it
    /// while etcd cannot be reached. Another guest's copy with one of its pairs is
    /// stale (the cluster gave the pair to this guest) and goes, unless it holds
    /// something here, which is refused naming it.
    pub fn mirror_guest(&mut self, guest: &Guest) -> Result<()> {
        let tx = self.conn_mut().savepoint()?;
        let run = guest.run_pair.map(|p| (p.low(), p.high()));
        let stale: Vec<String> = tx
            .prepare_cached(
                "SELECT uuid FROM guests WHERE uuid != ?1 AND (
                    (cat_low = ?2 AND cat_high = ?3) OR (run_low = ?2 AND run_high = ?3)
                    OR (cat_low = ?4 AND cat_high = ?5) OR (run_low = ?4 AND run_high = ?5))",
            )?
            .query_map(
                params![
                    guest.uuid,
                    guest.pair.low(),
                    guest.pair.high(),
                    run.map(|r| r.0),
                    run.map(|r| r.1)
                ],
                |r| r.get(0),
            )?
            .collect::<rusqlite::Result<_>>()?;
        for other in stale {
            let held: i64 = tx.query_row(
                "SELECT (SELECT count(*) FROM attachments WHERE guest = ?1)
                      + (SELECT count(*) FROM backing WHERE guest = ?1)",
                [&other],
                |r| r.get(0),
            )?;
            if held > 0 {
                return Err(Error::failed(format!(
                    "guest {other} of this host's state holds {held} volume(s) with a pair the \
                     cluster gives guest {}: import this host's guests first \
                     (svirt-pool cluster import)",
                    guest.uuid
                )));
            }
            tx.execute("DELETE FROM guests WHERE uuid = ?1", [&other])?;
        }
        tx.prepare_cached(
            "INSERT INTO guests (uuid, name, cat_low, cat_high, owner, run_low, run_high, via_libvirt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (uuid) DO UPDATE SET name = excluded.name, cat_low = excluded.cat_low,
                 cat_high = excluded.cat_high, owner = excluded.owner, run_low = excluded.run_low,
                 run_high = excluded.run_high, via_libvirt = excluded.via_libvirt",
        )?
        .execute(params![
            guest.uuid,
            guest.name,
            guest.pair.low(),
            guest.pair.high(),
            guest.owner,
            run.map(|r| r.0),
            run.map(|r| r.1),
            guest.via_libvirt
        ])?;
        tx.commit()?;
        Ok(())
    }

    /// Drops the copy of a guest the cluster forgot, if it holds nothing here.
    pub fn unmirror_guest(&mut self, uuid: &str) -> Result<()> {
        match Guests::forget_guest(self, uuid) {
            Ok(()) | Err(Error::NoSuchGuest(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
