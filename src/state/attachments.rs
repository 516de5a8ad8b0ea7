//! Attachments: who holds which volume (and which file), in which mode.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::rows::{
    HOLDS, attachment_row, attachments_of, file_columns, file_of, guest_in, holder_row, holders_in,
    mode_of,
};
use super::{Attachment, HolderIndex, Store};
use crate::decide::labels::{self, FileId, Holder, Mode};
use crate::error::{Error, Refusal, Result};
use crate::registry::{self, Holds};

impl Holds for Store {
    fn holders(&self, pool: &str, volume: &[u8]) -> Result<Vec<Holder>> {
        Ok(holders_in(self.conn(), pool, volume)?)
    }

    fn holder_index(&self) -> Result<HolderIndex> {
        let mut stmt = self.conn().prepare(HOLDS)?;
        let mut index = HolderIndex::new();
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            index
                .entry(r.get(0)?)
                .or_default()
                .entry(r.get(1)?)
                .or_default()
                .push(holder_row(r)?);
        }
        for holders in index.values_mut().flat_map(|volumes| volumes.values_mut()) {
            registry::dedup_holders(holders);
        }
        Ok(index)
    }

    fn attachments(&self, guest: Option<&str>) -> Result<Vec<Attachment>> {
        match guest {
            Some(uuid) => Ok(attachments_of(self.conn(), uuid)?),
            None => {
                let mut stmt = self.conn().prepare(
                    "SELECT guest, pool, volume, mode, file_ino, file_btime, label
                     FROM attachments ORDER BY pool, volume, guest",
                )?;
                let rows = stmt.query_map([], attachment_row)?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            }
        }
    }

    fn attach(&mut self, att: &Attachment) -> Result<Option<Mode>> {
        // A savepoint: its own transaction, or part of a batch's (`begin_batch`).
        let tx = self.conn_mut().savepoint()?;
        let previous = match &att.via {
            Some(overlay) => {
                hold_backing(&tx, att, overlay)?;
                None
            }
            None => attach_in(&tx, att)?,
        };
        tx.commit()?;
        Ok(previous)
    }

    fn attach_overlay(
        &mut self,
        att: &Attachment,
        chain: &[(Vec<u8>, Option<FileId>)],
    ) -> Result<Option<Mode>> {
        // A savepoint: its own transaction, or part of a batch's (`begin_batch`).
        let tx = self.conn_mut().savepoint()?;
        let previous = attach_in(&tx, att)?;
        exec(
            &tx,
            "DELETE FROM backing WHERE guest = ?1 AND pool = ?2 AND overlay = ?3",
            params![att.guest, att.pool, att.volume],
        )?;
        for (volume, file) in chain {
            let held = Attachment {
                volume: volume.clone(),
                mode: labels::BACKING_MODE,
                file: *file,
                via: Some(att.volume.clone()),
                ..att.clone()
            };
            hold_backing(&tx, &held, &att.volume)?;
        }
        tx.commit()?;
        Ok(previous)
    }

    fn detach(
        &mut self,
        guest: &str,
        pool: &str,
        volume: &[u8],
    ) -> Result<(Option<Mode>, Vec<Attachment>)> {
        // A savepoint: its own transaction, or part of a batch's (`begin_batch`).
        let tx = self.conn_mut().savepoint()?;
        let detached = detach_in(&tx, guest, pool, volume)?;
        tx.commit()?;
        Ok(detached)
    }

    fn release_pins(&mut self, pool: &str, volume: &[u8], owner: u32) -> Result<Vec<Attachment>> {
        let tx = self.conn_mut().savepoint()?;
        // (guest, the volume of its own that holds this one: the volume itself, or an
        // overlay on it)
        let mut pins: Vec<(String, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT a.guest, a.volume FROM attachments a JOIN guests g ON g.uuid = a.guest
                 WHERE a.pool = ?1 AND a.volume = ?2 AND a.mode = 'ro'
                   AND g.owner != 0 AND g.owner != ?3
                 UNION
                 SELECT b.guest, b.overlay FROM backing b JOIN guests g ON g.uuid = b.guest
                 WHERE b.pool = ?1 AND b.volume = ?2 AND g.owner != 0 AND g.owner != ?3",
            )?
            .query_map(params![pool, volume, owner], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        pins.sort();
        pins.dedup();
        let mut released = Vec::new();
        for (guest, held) in pins {
            let detached = detach_in(&tx, &guest, pool, &held)?;
            registry::add_released_pin(&mut released, (guest, pool, held, None), detached);
        }
        tx.commit()?;
        Ok(released)
    }

    fn release(&mut self, guest: &str) -> Result<Vec<Attachment>> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if guest_in(&tx, guest)?.is_none() {
            return Err(Error::NoSuchGuest(guest.to_owned()));
        }
        let mut held = attachments_of(&tx, guest)?;
        held.extend(backing_of(&tx, guest, None)?);
        exec(&tx, "DELETE FROM backing WHERE guest = ?1", [guest])?;
        exec(&tx, "DELETE FROM attachments WHERE guest = ?1", [guest])?;
        tx.commit()?;
        Ok(held)
    }
}

/// Removes `guest`'s attachment of `volume` and the backing-file holds it brings, inside
/// a transaction; returns its mode (`None`: it was not attached) and those holds.
fn detach_in(
    tx: &Connection,
    guest: &str,
    pool: &str,
    volume: &[u8],
) -> Result<(Option<Mode>, Vec<Attachment>)> {
    let backing = backing_of(tx, guest, Some((pool, volume)))?;
    exec(
        tx,
        "DELETE FROM backing WHERE guest = ?1 AND pool = ?2 AND overlay = ?3",
        params![guest, pool, volume],
    )?;
    let mode: Option<String> = tx
        .prepare_cached(
            "DELETE FROM attachments WHERE guest = ?1 AND pool = ?2 AND volume = ?3 RETURNING mode",
        )?
        .query_row(params![guest, pool, volume], |r| r.get(0))
        .optional()?;
    let mode = mode.map(|m| mode_of(&m)).transpose()?;
    Ok((mode, backing))
}

/// [`Store::attach`] inside a transaction.
fn attach_in(tx: &Connection, att: &Attachment) -> Result<Option<Mode>> {
    if guest_in(tx, &att.guest)?.is_none() {
        return Err(Error::NoSuchGuest(att.guest.clone()));
    }
    let (stale, holders): (Vec<Holder>, Vec<Holder>) = holders_in(tx, &att.pool, &att.volume)?
        .into_iter()
        .partition(|h| !h.holds(att.file) && att.file.is_some());
    for h in &stale {
        tracing::info!(guest = %h.guest, pool = %att.pool,
            volume = %att.volume.escape_ascii(), "dropped the attachment of a file that is gone");
        exec(
            tx,
            "DELETE FROM attachments WHERE guest = ?1 AND pool = ?2 AND volume = ?3",
            params![h.guest, att.pool, att.volume],
        )?;
        exec(
            tx,
            "DELETE FROM backing WHERE guest = ?1 AND pool = ?2 AND volume = ?3",
            params![h.guest, att.pool, att.volume],
        )?;
    }
    if att.mode == Mode::Rw
        && let Some((overlay, guest)) = backing_users(tx, &att.pool, &att.volume, att.file)?.first()
    {
        return Err(Refusal::BackingOfOverlay {
            volume: att.volume.escape_ascii().to_string(),
            overlay: overlay.escape_ascii().to_string(),
            guest: guest.clone(),
        }
        .into());
    }
    registry::check_held(&holders, att)?;
    let previous = holders
        .iter()
        .find(|h| h.guest == att.guest)
        .map(|h| h.mode);
    let (ino, btime) = file_columns(att.file);
    exec(
        tx,
        "INSERT INTO attachments (guest, pool, volume, mode, file_ino, file_btime, label)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (guest, pool, volume) DO UPDATE SET mode = excluded.mode,
             file_ino = excluded.file_ino, file_btime = excluded.file_btime,
             label = excluded.label",
        params![
            att.guest,
            att.pool,
            att.volume,
            att.mode.as_str(),
            ino,
            btime,
            att.label.as_ref().map(|l| l.as_str())
        ],
    )?;
    Ok(previous)
}

/// Records that `att.guest` reads `att.volume` as a backing file of `overlay`; refused
/// while anyone (the guest too) holds that file `rw`.
fn hold_backing(tx: &Connection, att: &Attachment, overlay: &[u8]) -> Result<()> {
    if guest_in(tx, &att.guest)?.is_none() {
        return Err(Error::NoSuchGuest(att.guest.clone()));
    }
    let writer = holders_in(tx, &att.pool, &att.volume)?
        .into_iter()
        .find(|h| h.holds(att.file) && h.mode == Mode::Rw);
    if let Some(w) = writer {
        return Err(Refusal::BackingWritten {
            volume: att.volume.escape_ascii().to_string(),
            overlay: overlay.escape_ascii().to_string(),
            guest: w.guest,
        }
        .into());
    }
    let (ino, btime) = file_columns(att.file);
    exec(
        tx,
        "INSERT OR REPLACE INTO backing (guest, pool, overlay, volume, file_ino, file_btime)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![att.guest, att.pool, overlay, att.volume, ino, btime],
    )?;
    Ok(())
}

/// The overlays (and their guests) that hold `volume` of `pool` as a backing file,
/// counting only holds of `file` when it is known.
pub(super) fn backing_users(
    conn: &Connection,
    pool: &str,
    volume: &[u8],
    file: Option<FileId>,
) -> rusqlite::Result<Vec<(Vec<u8>, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT overlay, guest, file_ino, file_btime FROM backing
         WHERE pool = ?1 AND volume = ?2 ORDER BY overlay, guest",
    )?;
    let rows = stmt.query_map(params![pool, volume], |r| {
        Ok((r.get(0)?, r.get(1)?, file_of(r.get(2)?, r.get(3)?)))
    })?;
    let mut users = Vec::new();
    for row in rows {
        let (overlay, guest, held): (Vec<u8>, String, Option<FileId>) = row?;
        if file.is_none() || held.is_none() || held == file {
            users.push((overlay, guest));
        }
    }
    Ok(users)
}

/// The backing-file holds of `guest` (of overlay `overlay` only, when given), as
/// read-only attachments `via` their overlay.
fn backing_of(
    conn: &Connection,
    guest: &str,
    pool_overlay: Option<(&str, &[u8])>,
) -> rusqlite::Result<Vec<Attachment>> {
    let row = |r: &rusqlite::Row<'_>| {
        Ok(Attachment {
            guest: r.get(0)?,
            pool: r.get(1)?,
            volume: r.get(3)?,
            mode: labels::BACKING_MODE,
            file: file_of(r.get(4)?, r.get(5)?),
            via: Some(r.get(2)?),
            host: None,
            label: None,
        })
    };
    let columns = "SELECT guest, pool, overlay, volume, file_ino, file_btime FROM backing";
    match pool_overlay {
        Some((pool, overlay)) => conn
            .prepare_cached(&format!(
                "{columns} WHERE guest = ?1 AND pool = ?2 AND overlay = ?3 ORDER BY volume"
            ))?
            .query_map(params![guest, pool, overlay], row)?
            .collect(),
        None => conn
            .prepare_cached(&format!(
                "{columns} WHERE guest = ?1 ORDER BY pool, overlay, volume"
            ))?
            .query_map([guest], row)?
            .collect(),
    }
}

/// Runs one statement through the connection's statement cache (the attach and detach
/// paths run the same few statements on every call).
fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

impl Store {
    /// Every hold on volumes of `pool`: attachments, then backing-file holds (with
    /// `via`), as `cluster import` moves them into the cluster.
    pub fn holds_of_pool(&self, pool: &str) -> Result<Vec<Attachment>> {
        let mut held: Vec<Attachment> = self
            .conn()
            .prepare(
                "SELECT guest, pool, volume, mode, file_ino, file_btime, label
                 FROM attachments WHERE pool = ?1 ORDER BY guest, volume",
            )?
            .query_map([pool], super::rows::attachment_row)?
            .collect::<rusqlite::Result<_>>()?;
        let guests: Vec<String> = self
            .conn()
            .prepare("SELECT DISTINCT guest FROM backing WHERE pool = ?1 ORDER BY guest")?
            .query_map([pool], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for guest in guests {
            let backing = backing_of(self.conn(), &guest, None)?;
            held.extend(backing.into_iter().filter(|a| a.pool == pool));
        }
        Ok(held)
    }

    /// Forgets every hold on volumes of `pool` (once the cluster keeps them).
    pub fn forget_pool_holds(&mut self, pool: &str) -> Result<()> {
        let tx = self.conn_mut().transaction()?;
        tx.execute("DELETE FROM backing WHERE pool = ?1", [pool])?;
        tx.execute("DELETE FROM attachments WHERE pool = ?1", [pool])?;
        tx.commit()?;
        Ok(())
    }
}
