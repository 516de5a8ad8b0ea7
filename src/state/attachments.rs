//! Attachments: who holds which volume (and which file), in which mode.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::guests::{guest_in, pair_of};
use super::{Attachment, HolderIndex, Store};
use crate::decide::labels::{self, FileId, Holder, Mode};
use crate::error::{Error, Result};

impl Store {
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
}

/// A file identity from its two columns (both NULL: none recorded).
pub(super) fn file_of(ino: Option<i64>, btime: Option<i64>) -> Option<FileId> {
    Some(FileId {
        ino: u64::from_ne_bytes(ino?.to_ne_bytes()),
        btime_ns: btime.unwrap_or(0),
    })
}

/// The two columns of a file identity (SQLite integers are signed: the bits are kept).
pub(super) fn file_columns(file: Option<FileId>) -> (Option<i64>, Option<i64>) {
    match file {
        Some(f) => (
            Some(i64::from_ne_bytes(f.ino.to_ne_bytes())),
            Some(f.btime_ns),
        ),
        None => (None, None),
    }
}

pub(super) fn holders_in(
    conn: &Connection,
    pool: &str,
    volume: &[u8],
) -> rusqlite::Result<Vec<Holder>> {
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

pub(super) fn attachment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Attachment> {
    Ok(Attachment {
        guest: r.get(0)?,
        pool: r.get(1)?,
        volume: r.get(2)?,
        mode: mode_of(&r.get::<_, String>(3)?)?,
        file: file_of(r.get(4)?, r.get(5)?),
    })
}

pub(super) fn attachments_of(conn: &Connection, uuid: &str) -> rusqlite::Result<Vec<Attachment>> {
    let mut stmt = conn.prepare_cached(
        "SELECT guest, pool, volume, mode, file_ino, file_btime FROM attachments
         WHERE guest = ?1 ORDER BY pool, volume",
    )?;
    let rows = stmt.query_map([uuid], attachment_row)?;
    rows.collect()
}

pub(super) fn mode_of(text: &str) -> rusqlite::Result<Mode> {
    text.parse().map_err(|e: labels::UnknownMode| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}
