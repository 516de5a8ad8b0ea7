//! Reading rows into the model: guests, attachments and holders. Shared by the guest
//! and attachment halves of the store; the decisions a row needs (which pair a holder's
//! volume carries, the mode of a backing-file hold) are made in `decide`, not in SQL.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Attachment, Guest};
use crate::decide::context::{self, Context, Pair};
use crate::decide::labels::{self, FileId, Holder, Mode};

/// The columns [`guest_row`] reads, in order.
pub(super) const GUEST_COLUMNS: &str =
    "uuid, name, cat_low, cat_high, owner, run_low, run_high, via_libvirt";

pub(super) fn guest_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Guest> {
    Ok(Guest {
        uuid: r.get(0)?,
        name: r.get(1)?,
        pair: pair_of(r.get(2)?, r.get(3)?)?,
        owner: r.get(4)?,
        run_pair: run_pair_of(r.get(5)?, r.get(6)?)?,
        via_libvirt: r.get(7)?,
    })
}

pub(super) fn guest_in(conn: &Connection, uuid: &str) -> rusqlite::Result<Option<Guest>> {
    // Cached: every attach and detach looks its guest up.
    conn.prepare_cached(&format!(
        "SELECT {GUEST_COLUMNS} FROM guests WHERE uuid = ?1"
    ))?
    .query_row([uuid], guest_row)
    .optional()
}

pub(super) fn pair_of(low: i64, high: i64) -> rusqlite::Result<Pair> {
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

/// A run pair from its two nullable columns.
fn run_pair_of(low: Option<i64>, high: Option<i64>) -> rusqlite::Result<Option<Pair>> {
    match (low, high) {
        (Some(low), Some(high)) => Ok(Some(pair_of(low, high)?)),
        _ => Ok(None),
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

/// Every hold as the label decision needs it: `pool, volume`, then [`holder_row`]'s
/// columns from column 2 on. An attachment's mode, or NULL for a backing-file hold.
pub(super) const HOLDS: &str = "
    SELECT a.pool, a.volume, a.guest, g.cat_low, g.cat_high, g.run_low, g.run_high,
           a.mode, a.file_ino, a.file_btime, a.label
    FROM attachments a JOIN guests g ON g.uuid = a.guest
    UNION ALL
    SELECT b.pool, b.volume, b.guest, g.cat_low, g.cat_high, g.run_low, g.run_high,
           NULL, b.file_ino, b.file_btime, NULL
    FROM backing b JOIN guests g ON g.uuid = b.guest";

/// A holder from a row of [`HOLDS`]: the pair its volumes carry and a backing hold's
/// mode are decided where they always are ([`context::effective_pair`],
/// [`labels::BACKING_MODE`]).
pub(super) fn holder_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Holder> {
    let pair = pair_of(r.get(3)?, r.get(4)?)?;
    let run_pair = run_pair_of(r.get(5)?, r.get(6)?)?;
    let mode = match r.get::<_, Option<String>>(7)? {
        Some(mode) => mode_of(&mode)?,
        None => labels::BACKING_MODE,
    };
    Ok(Holder {
        guest: r.get(2)?,
        pair: context::effective_pair(pair, run_pair),
        mode,
        file: file_of(r.get(8)?, r.get(9)?),
        host: None,
        label: label_of(r.get(10)?)?,
    })
}

/// The holds of one volume (`?1` pool, `?2` volume): [`HOLDS`] filtered, built once
/// (the udev hook asks it for every event).
static HOLDERS_OF: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT * FROM ({HOLDS}) WHERE pool = ?1 AND volume = ?2"));

pub(super) fn holders_in(
    conn: &Connection,
    pool: &str,
    volume: &[u8],
) -> rusqlite::Result<Vec<Holder>> {
    let mut stmt = conn.prepare_cached(&HOLDERS_OF)?;
    let rows = stmt.query_map(params![pool, volume], holder_row)?;
    let mut holders = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    crate::registry::dedup_holders(&mut holders);
    Ok(holders)
}

pub(super) fn attachment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Attachment> {
    Ok(Attachment {
        guest: r.get(0)?,
        pool: r.get(1)?,
        volume: r.get(2)?,
        mode: mode_of(&r.get::<_, String>(3)?)?,
        file: file_of(r.get(4)?, r.get(5)?),
        via: None,
        host: None,
        label: label_of(r.get(6)?)?,
    })
}

pub(super) fn attachments_of(conn: &Connection, uuid: &str) -> rusqlite::Result<Vec<Attachment>> {
    let mut stmt = conn.prepare_cached(
        "SELECT guest, pool, volume, mode, file_ino, file_btime, label FROM attachments
         WHERE guest = ?1 ORDER BY pool, volume",
    )?;
    let rows = stmt.query_map([uuid], attachment_row)?;
    rows.collect()
}

/// A disk's own label as stored (validated again: the state file may be edited).
pub(super) fn label_of(text: Option<String>) -> rusqlite::Result<Option<Context>> {
    text.map(|t| {
        t.parse().map_err(|e: context::ParseError| {
            rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, Box::new(e))
        })
    })
    .transpose()
}

pub(super) fn mode_of(text: &str) -> rusqlite::Result<Mode> {
    text.parse().map_err(|e: labels::UnknownMode| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}
