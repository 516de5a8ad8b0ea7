//! The state database (SQLite, WAL): guests, their MCS pairs, and attachments.
//!
//! The only module that runs SQL. Every change is one transaction; readers (the
//! udev hook, `status`) never block the writer.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::decide::context::{CategorySet, Pair};
use crate::decide::labels::{self, FileId, Holder, Mode};
use crate::decide::mcs;
use crate::error::{Error, Result};

/// The schema version this build writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;

const SCHEMA_V1: &str = "
CREATE TABLE guests (
    uuid      TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    cat_low   INTEGER NOT NULL,
    cat_high  INTEGER NOT NULL,
    created   INTEGER NOT NULL DEFAULT (unixepoch()),
    UNIQUE (cat_low, cat_high),
    CHECK (cat_low >= 0 AND cat_low < cat_high AND cat_high <= 1023)
);
CREATE TABLE attachments (
    guest    TEXT NOT NULL REFERENCES guests(uuid),
    pool     TEXT NOT NULL,
    volume   BLOB NOT NULL,
    mode     TEXT NOT NULL CHECK (mode IN ('rw', 'shared', 'ro')),
    created  INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY (guest, pool, volume)
);
CREATE INDEX attachments_by_volume ON attachments (pool, volume);
";

/// Version 2: guests have an owner (the uid that defined them; rows from version 1 are
/// root's), may run under the pair libvirt gave them (`run_low`/`run_high`, while a
/// libvirt domain runs with its own label) and say whether libvirt's hook manages them;
/// attachments record which file they hold (inode and birth time; NULL for LVs and rows
/// from version 1).
const SCHEMA_V2: &str = "
ALTER TABLE guests ADD COLUMN owner INTEGER NOT NULL DEFAULT 0;
CREATE INDEX guests_by_owner ON guests (owner);
ALTER TABLE guests ADD COLUMN run_low INTEGER;
ALTER TABLE guests ADD COLUMN run_high INTEGER;
ALTER TABLE guests ADD COLUMN via_libvirt INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX guests_by_run_pair ON guests (run_low, run_high) WHERE run_low IS NOT NULL;
ALTER TABLE attachments ADD COLUMN file_ino INTEGER;
ALTER TABLE attachments ADD COLUMN file_btime INTEGER;
";

/// The database file's name inside the state directory.
pub const DB_FILE: &str = "state.db";

/// A guest the agent knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guest {
    /// libvirt's domain UUID, lower case.
    pub uuid: String,
    /// Its name (the UUID when none was given).
    pub name: String,
    /// Its MCS pair.
    pub pair: Pair,
    /// The uid that defined it (root's guests: 0). Only it and root may change what
    /// the guest holds.
    pub owner: u32,
    /// The pair libvirt runs it with, when that is not `pair` (a libvirt domain with its
    /// own SELinux label): its volumes carry this one while it is set.
    pub run_pair: Option<Pair>,
    /// Whether libvirt's qemu hook defined or attached it.
    pub via_libvirt: bool,
}

impl Guest {
    /// The pair its volumes carry now.
    pub fn effective_pair(&self) -> Pair {
        self.run_pair.unwrap_or(self.pair)
    }
}

/// One attachment: a guest holds a volume of a pool in a mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The guest's UUID.
    pub guest: String,
    /// The pool's name.
    pub pool: String,
    /// The volume's path relative to the pool root, as bytes.
    pub volume: Vec<u8>,
    /// How the guest uses it.
    pub mode: Mode,
    /// The file attached (dir pools); `None` for LVs.
    pub file: Option<FileId>,
}

/// Every attachment: pool name → volume path → holders.
pub type HolderIndex = HashMap<String, HashMap<Vec<u8>, Vec<Holder>>>;

/// An open state database.
pub struct Store {
    /// Always `Some` until dropped, when a read-write connection goes back to this
    /// thread's cache.
    conn: Option<Connection>,
    /// Where the cached connection belongs: the database path and its inode.
    cache_key: Option<CacheKey>,
}

/// A database path and the (device, inode) of the file behind it.
type CacheKey = (PathBuf, (u64, u64));

thread_local! {
    /// Read-write connections this thread opened before, by database path and inode:
    /// the agent's API threads open the state once per request.
    static CONNECTIONS: RefCell<Vec<(CacheKey, Connection)>> =
        const { RefCell::new(Vec::new()) };
}

/// The identity of the database file, so a cached connection to a file that was
/// removed or replaced is never reused.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Drop for Store {
    fn drop(&mut self) {
        if let (Some(conn), Some(key)) = (self.conn.take(), self.cache_key.take()) {
            CONNECTIONS.with(|c| c.borrow_mut().push((key, conn)));
        }
    }
}

fn mode_of(text: &str) -> rusqlite::Result<Mode> {
    text.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

fn pair_of(low: i64, high: i64) -> rusqlite::Result<Pair> {
    u16::try_from(low)
        .ok()
        .zip(u16::try_from(high).ok())
        .and_then(|(l, h)| Pair::new(l, h))
        .ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Integer,
                format!("bad MCS pair c{low},c{high}").into(),
            )
        })
}

impl Store {
    /// Opens (creating if needed) the database in `state_dir` for reading and writing.
    pub fn open(state_dir: &Path) -> Result<Store> {
        let path = state_dir.join(DB_FILE);
        if let Some(id) = file_identity(&path) {
            let key = (path.clone(), id);
            let cached = CONNECTIONS.with(|c| {
                let mut c = c.borrow_mut();
                c.iter()
                    .position(|(k, _)| *k == key)
                    .map(|i| c.swap_remove(i).1)
            });
            if let Some(conn) = cached {
                return Ok(Store {
                    conn: Some(conn),
                    cache_key: Some(key),
                });
            }
        }
        let conn = Connection::open(&path)
            .map_err(|e| Error::failed(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Store {
            conn: Some(conn),
            cache_key: None,
        };
        store.migrate(&path)?;
        store.cache_key = file_identity(&path).map(|id| (path, id));
        Ok(store)
    }

    /// Opens an existing database read-only (the udev hook, while the agent writes).
    pub fn open_read_only(state_dir: &Path) -> Result<Store> {
        let path = state_dir.join(DB_FILE);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::failed(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_millis(500))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version != SCHEMA_VERSION {
            return Err(Error::failed(format!(
                "{}: schema version {version}, expected {SCHEMA_VERSION}",
                path.display()
            )));
        }
        Ok(Store {
            conn: Some(conn),
            cache_key: None,
        })
    }

    fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("open until dropped")
    }

    fn conn_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("open until dropped")
    }

    fn migrate(&mut self, path: &Path) -> Result<()> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        match version {
            0 => {
                tx.execute_batch(SCHEMA_V1)?;
                tx.execute_batch(SCHEMA_V2)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
            1 => {
                tx.execute_batch(SCHEMA_V2)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
            SCHEMA_VERSION => {}
            newer => {
                return Err(Error::failed(format!(
                    "{}: schema version {newer} is newer than this svirt-pool supports ({SCHEMA_VERSION})",
                    path.display()
                )));
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Defines a guest for `owner`, or returns the existing one with the same UUID.
    ///
    /// A new guest gets a random free pair from `categories`; `name` updates the name
    /// of an existing guest. A guest of another owner is refused unless `owner` is
    /// root, and an owner other than root may hold at most `quota` guests (so no one
    /// user can take every pair). Returns the guest and whether it was created.
    pub fn define_guest(
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
            if owner != 0 && guest.owner != owner {
                return Err(Error::Forbidden(format!(
                    "guest {uuid} belongs to another user (uid {})",
                    guest.owner
                )));
            }
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
            if held >= quota {
                return Err(Error::refused(format!(
                    "uid {owner} already has {held} guests, the most api.max_guests_per_user allows"
                )));
            }
        }
        // Taken: another guest's own pair, or the pair a libvirt domain runs with.
        let mut taken_stmt = tx.prepare(
            "SELECT 1 FROM guests WHERE (cat_low = ?1 AND cat_high = ?2)
             OR (run_low = ?1 AND run_high = ?2)",
        )?;
        let pair = mcs::pick_pair(categories, &mut rand::rng(), |p| {
            taken_stmt.exists(params![p.low(), p.high()])
        })?
        .ok_or_else(|| {
            Error::refused(format!(
                "no free MCS pair is left: all {} pairs of categories {categories} are in use",
                mcs::pair_count(categories)
            ))
        })?;
        drop(taken_stmt);
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

    /// The guest with this UUID.
    pub fn guest(&self, uuid: &str) -> Result<Option<Guest>> {
        Ok(guest_in(self.conn(), uuid)?)
    }

    /// Up to `limit` guests in UUID order, after UUID `after` (a page of a listing:
    /// each page costs the same, however far into the list it is).
    pub fn guests_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<Guest>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {GUEST_COLUMNS} FROM guests WHERE uuid > ?1 ORDER BY uuid LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![after.unwrap_or(""), limit], guest_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every guest, ordered by name then UUID.
    pub fn guests(&self) -> Result<Vec<Guest>> {
        let mut stmt = self.conn().prepare(&format!(
            "SELECT {GUEST_COLUMNS} FROM guests ORDER BY name, uuid"
        ))?;
        let rows = stmt.query_map([], guest_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Everyone holding a volume.
    pub fn holders(&self, pool: &str, volume: &[u8]) -> Result<Vec<Holder>> {
        Ok(holders_in(self.conn(), pool, volume)?)
    }

    /// Every attachment of every volume, for a scan.
    pub fn holder_index(&self) -> Result<HolderIndex> {
        let mut stmt = self.conn().prepare(
            "SELECT a.pool, a.volume, a.guest, coalesce(g.run_low, g.cat_low),
                    coalesce(g.run_high, g.cat_high), a.mode, a.file_ino, a.file_btime
             FROM attachments a JOIN guests g ON g.uuid = a.guest ORDER BY a.guest",
        )?;
        let mut index = HolderIndex::new();
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let holder = Holder {
                guest: r.get(2)?,
                pair: pair_of(r.get(3)?, r.get(4)?)?,
                mode: mode_of(&r.get::<_, String>(5)?)?,
                file: file_of(r.get(6)?, r.get(7)?),
            };
            index
                .entry(r.get(0)?)
                .or_default()
                .entry(r.get(1)?)
                .or_default()
                .push(holder);
        }
        Ok(index)
    }

    /// Every attachment, optionally of one guest only.
    pub fn attachments(&self, guest: Option<&str>) -> Result<Vec<Attachment>> {
        match guest {
            Some(uuid) => Ok(attachments_of(self.conn(), uuid)?),
            None => {
                let mut stmt = self.conn().prepare(
                    "SELECT guest, pool, volume, mode, file_ino, file_btime FROM attachments
                     ORDER BY pool, volume, guest",
                )?;
                let rows = stmt.query_map([], attachment_row)?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            }
        }
    }

    /// Records that `guest` holds a volume in `mode`, if the other holders allow it.
    ///
    /// Attachments of this name that hold another file (one deleted or replaced since)
    /// are dropped first: attachments follow files, not names. Check and insert are one
    /// transaction. Returns the previous mode, if the guest already held this file.
    pub fn attach(&mut self, att: &Attachment) -> Result<Option<Mode>> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if guest_in(&tx, &att.guest)?.is_none() {
            return Err(Error::NoSuchGuest(att.guest.clone()));
        }
        let (stale, holders): (Vec<Holder>, Vec<Holder>) = holders_in(&tx, &att.pool, &att.volume)?
            .into_iter()
            .partition(|h| !h.holds(att.file) && att.file.is_some());
        for h in &stale {
            tracing::info!(guest = %h.guest, pool = %att.pool,
                volume = %att.volume.escape_ascii(), "dropped the attachment of a file that is gone");
            tx.execute(
                "DELETE FROM attachments WHERE guest = ?1 AND pool = ?2 AND volume = ?3",
                params![h.guest, att.pool, att.volume],
            )?;
        }
        labels::check_attach(&holders, &att.guest, att.mode)
            .map_err(|why| Error::refused(format!("volume {} {why}", att.volume.escape_ascii())))?;
        let previous = holders
            .iter()
            .find(|h| h.guest == att.guest)
            .map(|h| h.mode);
        let (ino, btime) = file_columns(att.file);
        tx.execute(
            "INSERT INTO attachments (guest, pool, volume, mode, file_ino, file_btime)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (guest, pool, volume) DO UPDATE SET mode = excluded.mode,
                 file_ino = excluded.file_ino, file_btime = excluded.file_btime",
            params![
                att.guest,
                att.pool,
                att.volume,
                att.mode.as_str(),
                ino,
                btime
            ],
        )?;
        tx.commit()?;
        Ok(previous)
    }

    /// Sets the pair a guest runs with (`None`: its own again). Refused when another
    /// guest holds that pair, as its own or as the one it runs with: two guests with one
    /// pair could open each other's volumes.
    pub fn set_run_pair(&mut self, uuid: &str, pair: Option<Pair>) -> Result<()> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let guest = guest_in(&tx, uuid)?.ok_or_else(|| Error::NoSuchGuest(uuid.to_owned()))?;
        let pair = pair.filter(|p| *p != guest.pair);
        if let Some(p) = pair
            && let Some(other) = pair_holder(&tx, p)?
            && other.uuid != uuid
        {
            return Err(Error::refused(format!(
                "pair {p} is held by guest {} ({})",
                other.name, other.uuid
            )));
        }
        tx.execute(
            "UPDATE guests SET run_low = ?1, run_high = ?2 WHERE uuid = ?3",
            params![pair.map(Pair::low), pair.map(Pair::high), uuid],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records that libvirt's hook manages this guest.
    pub fn mark_via_libvirt(&mut self, uuid: &str) -> Result<()> {
        self.conn()
            .execute("UPDATE guests SET via_libvirt = 1 WHERE uuid = ?1", [uuid])?;
        Ok(())
    }

    /// The guests libvirt's hook manages.
    pub fn libvirt_guests(&self) -> Result<Vec<Guest>> {
        let mut stmt = self.conn().prepare(&format!(
            "SELECT {GUEST_COLUMNS} FROM guests WHERE via_libvirt = 1 ORDER BY uuid"
        ))?;
        let rows = stmt.query_map([], guest_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets a guest that holds nothing (its pair becomes free); refused while it holds
    /// something. Its volumes' labels must have been restored first.
    pub fn forget_guest(&mut self, uuid: &str) -> Result<()> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if guest_in(&tx, uuid)?.is_none() {
            return Err(Error::NoSuchGuest(uuid.to_owned()));
        }
        let held = attachments_of(&tx, uuid)?;
        if !held.is_empty() {
            return Err(Error::refused(format!(
                "guest {uuid} still has {} attachment(s); detach them, or use --force to release them",
                held.len()
            )));
        }
        tx.execute("DELETE FROM guests WHERE uuid = ?1", [uuid])?;
        tx.commit()?;
        Ok(())
    }

    /// Removes one attachment; returns its mode, `None` if there was none.
    pub fn detach(&mut self, guest: &str, pool: &str, volume: &[u8]) -> Result<Option<Mode>> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mode: Option<String> = tx
            .query_row(
                "DELETE FROM attachments WHERE guest = ?1 AND pool = ?2 AND volume = ?3 RETURNING mode",
                params![guest, pool, volume],
                |r| r.get(0),
            )
            .optional()?;
        tx.commit()?;
        mode.map(|m| mode_of(&m)).transpose().map_err(Error::from)
    }

    /// Removes every attachment of `guest`; returns them.
    pub fn release(&mut self, guest: &str) -> Result<Vec<Attachment>> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if guest_in(&tx, guest)?.is_none() {
            return Err(Error::NoSuchGuest(guest.to_owned()));
        }
        let held = attachments_of(&tx, guest)?;
        tx.execute("DELETE FROM attachments WHERE guest = ?1", [guest])?;
        tx.commit()?;
        Ok(held)
    }

    /// Runs SQLite's own consistency check; `Ok` when it answers "ok".
    pub fn integrity_check(&self) -> Result<()> {
        let answer: String = self
            .conn()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if answer == "ok" {
            Ok(())
        } else {
            Err(Error::failed(format!("integrity_check: {answer}")))
        }
    }
}

/// The columns [`guest_row`] reads, in order.
const GUEST_COLUMNS: &str = "uuid, name, cat_low, cat_high, owner, run_low, run_high, via_libvirt";

fn guest_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Guest> {
    let run_pair = match (r.get::<_, Option<i64>>(5)?, r.get::<_, Option<i64>>(6)?) {
        (Some(low), Some(high)) => Some(pair_of(low, high)?),
        _ => None,
    };
    Ok(Guest {
        uuid: r.get(0)?,
        name: r.get(1)?,
        pair: pair_of(r.get(2)?, r.get(3)?)?,
        owner: r.get(4)?,
        run_pair,
        via_libvirt: r.get(7)?,
    })
}

/// Which guest holds `pair`, as its own or as the pair it runs with.
fn pair_holder(conn: &Connection, pair: Pair) -> rusqlite::Result<Option<Guest>> {
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

fn guest_in(conn: &Connection, uuid: &str) -> rusqlite::Result<Option<Guest>> {
    conn.query_row(
        &format!("SELECT {GUEST_COLUMNS} FROM guests WHERE uuid = ?1"),
        [uuid],
        guest_row,
    )
    .optional()
}

/// A file identity from its two columns (both NULL: none recorded).
fn file_of(ino: Option<i64>, btime: Option<i64>) -> Option<FileId> {
    Some(FileId {
        ino: u64::from_ne_bytes(ino?.to_ne_bytes()),
        btime_ns: btime.unwrap_or(0),
    })
}

/// The two columns of a file identity (SQLite integers are signed: the bits are kept).
fn file_columns(file: Option<FileId>) -> (Option<i64>, Option<i64>) {
    match file {
        Some(f) => (
            Some(i64::from_ne_bytes(f.ino.to_ne_bytes())),
            Some(f.btime_ns),
        ),
        None => (None, None),
    }
}

fn holders_in(conn: &Connection, pool: &str, volume: &[u8]) -> rusqlite::Result<Vec<Holder>> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.guest, coalesce(g.run_low, g.cat_low), coalesce(g.run_high, g.cat_high),
                a.mode, a.file_ino, a.file_btime FROM attachments a
         JOIN guests g ON g.uuid = a.guest WHERE a.pool = ?1 AND a.volume = ?2 ORDER BY a.guest",
    )?;
    let rows = stmt.query_map(params![pool, volume], |r| {
        Ok(Holder {
            guest: r.get(0)?,
            pair: pair_of(r.get(1)?, r.get(2)?)?,
            mode: mode_of(&r.get::<_, String>(3)?)?,
            file: file_of(r.get(4)?, r.get(5)?),
        })
    })?;
    rows.collect()
}

fn attachment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Attachment> {
    Ok(Attachment {
        guest: r.get(0)?,
        pool: r.get(1)?,
        volume: r.get(2)?,
        mode: mode_of(&r.get::<_, String>(3)?)?,
        file: file_of(r.get(4)?, r.get(5)?),
    })
}

fn attachments_of(conn: &Connection, uuid: &str) -> rusqlite::Result<Vec<Attachment>> {
    let mut stmt = conn.prepare_cached(
        "SELECT guest, pool, volume, mode, file_ino, file_btime FROM attachments
         WHERE guest = ?1 ORDER BY pool, volume",
    )?;
    let rows = stmt.query_map([uuid], attachment_row)?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(guest: &str, volume: &str, mode: Mode) -> Attachment {
        Attachment {
            guest: guest.into(),
            pool: "p".into(),
            volume: volume.as_bytes().to_vec(),
            mode,
            file: None,
        }
    }

    #[test]
    fn attach_detach_release_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
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
            refused.to_string().contains("attached ro to guest g1"),
            "{refused}"
        );
        assert_eq!(store.holders("p", b"a.img").unwrap().len(), 2);

        assert_eq!(store.detach("g2", "p", b"a.img").unwrap(), Some(Mode::Ro));
        assert_eq!(store.detach("g2", "p", b"a.img").unwrap(), None);
        // The sole holder may switch to rw.
        assert_eq!(
            store.attach(&att("g1", "a.img", Mode::Rw)).unwrap(),
            Some(Mode::Ro)
        );
        assert!(store.forget_guest("g1").is_err(), "it still holds a.img");
        assert_eq!(store.release("g1").unwrap().len(), 1);
        assert!(store.holders("p", b"a.img").unwrap().is_empty());
        store.integrity_check().unwrap();
    }

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
    }

    #[test]
    fn exhaustion_is_a_clear_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let cats = CategorySet::parse("c0.c2").unwrap();
        for g in ["a", "b", "c"] {
            store.define_guest(g, None, &cats, 0, u32::MAX).unwrap();
        }
        let err = store
            .define_guest("d", None, &cats, 0, u32::MAX)
            .unwrap_err();
        assert!(err.to_string().contains("no free MCS pair"), "{err}");
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn guests_belong_to_who_defined_them_and_users_have_a_quota() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let cats = CategorySet::full();
        let (g, _) = store.define_guest("mine", None, &cats, 1000, 2).unwrap();
        assert_eq!(g.owner, 1000);
        let err = store
            .define_guest("mine", Some("x"), &cats, 1001, 2)
            .unwrap_err();
        assert!(matches!(err, Error::Forbidden(_)), "{err}");
        // Root may redefine (rename) anyone's guest; it stays its owner's.
        let (g, _) = store.define_guest("mine", Some("x"), &cats, 0, 2).unwrap();
        assert_eq!((g.owner, g.name.as_str()), (1000, "x"));
        store.define_guest("second", None, &cats, 1000, 2).unwrap();
        let err = store
            .define_guest("third", None, &cats, 1000, 2)
            .unwrap_err();
        assert!(err.to_string().contains("max_guests_per_user"), "{err}");
        // Root has no quota.
        for i in 0..3 {
            store
                .define_guest(&format!("r{i}"), None, &cats, 0, 2)
                .unwrap();
        }
    }

    #[test]
    fn attachments_follow_files_not_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
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

    #[test]
    fn a_run_pair_is_taken_while_set_and_every_listing_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
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
        store.attach(&att("a", "x.img", Mode::Rw)).unwrap();
        assert_eq!(store.holders("p", b"x.img").unwrap()[0].pair, free);
        assert_eq!(
            store.holder_index().unwrap()["p"][&b"x.img".to_vec()][0].pair,
            free
        );
        // New guests never draw a pair a guest runs with: 6 pairs, 2 own, 1 run pair.
        for g in ["c", "d", "e"] {
            let (n, _) = store.define_guest(g, None, &cats, 0, u32::MAX).unwrap();
            assert_ne!(n.pair, free);
        }
        assert!(store.define_guest("f", None, &cats, 0, u32::MAX).is_err());
        store.set_run_pair("a", None).unwrap();
        assert_eq!(store.guest("a").unwrap().unwrap().effective_pair(), a.pair);
    }
}
