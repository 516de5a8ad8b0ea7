//! The state database (SQLite, WAL): guests, their MCS pairs, and attachments.
//!
//! The only module that runs SQL. Every change is one transaction (or a savepoint of a
//! batch's: attach and detach calls waiting together commit once); readers (the udev
//! hook, `status`) never block the writer.

use crate::registry::Batches;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::{Error, Result};

pub use crate::registry::{Attachment, Guest, HolderIndex};

mod attachments;
mod guests;
mod rows;
mod schema;
#[cfg(test)]
mod tests;

use schema::*;

/// The database file's name inside the state directory.
pub const DB_FILE: &str = "state.db";

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

impl Batches for Store {
    fn begin_batch(&mut self) -> Result<()> {
        Ok(self.conn().execute_batch("BEGIN IMMEDIATE")?)
    }

    fn commit_batch(&mut self) -> Result<()> {
        Ok(self.conn().execute_batch("COMMIT")?)
    }

    fn in_batch(&self) -> bool {
        !self.conn().is_autocommit()
    }

    fn rollback_batch(&mut self) {
        if self.in_batch() {
            let _ = self.conn().execute_batch("ROLLBACK");
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // A batch left open by an error is rolled back before the connection is reused.
        self.rollback_batch();
        if let (Some(conn), Some(key)) = (self.conn.take(), self.cache_key.take()) {
            CONNECTIONS.with(|c| c.borrow_mut().push((key, conn)));
        }
    }
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
        // Plans fixed at prepare time: SQLite (built with STAT4) would otherwise
        // recompile a statement on every new binding of a parameter it compares with an
        // expression (a partial index's WHERE), i.e. every cached statement, every call.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
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
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
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
            SCHEMA_VERSION => {}
            older @ 0..SCHEMA_VERSION => {
                let from = usize::try_from(older).expect("0 or more");
                for step in &STEPS[from..] {
                    tx.execute_batch(step)?;
                }
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
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
