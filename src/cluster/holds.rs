//! The holders of shared pools' volumes in etcd, with the host each holds on: every
//! host sees who holds a shared volume anywhere, so the rules of one host (one `rw`
//! guest of a private volume, a backing file never written) hold across hosts.
//!
//! Keys below the prefix (a volume's path is hex: it may hold any byte, `/` too):
//!
//! | key | value |
//! |---|---|
//! | `volumes/POOL/VOLUME/a/GUEST/HOST` | an attachment: `{"mode":…, "file":[ino, btime]}` |
//! | `volumes/POOL/VOLUME/b/GUEST/HOST/OVERLAY` | a backing-file hold: `{"file":…}` |
//! | `held/GUEST/HOST/a/POOL/VOLUME` | the same attachment, found by guest |
//! | `held/GUEST/HOST/b/POOL/OVERLAY/VOLUME` | the same backing hold, found by guest |
//! | `migrating/GUEST/HOST` | the guest is migrating to HOST (libvirt's hook) |
//!
//! A change is one transaction comparing what it read: no key below each volume it
//! checked changed since (a key added there has a later revision). A hold has no lease:
//! a host that dies keeps its holds until it comes back, or an admin evicts it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use etcd_client::{Compare, CompareOp, TxnOp};
use serde::{Deserialize, Serialize};

use super::guests::{self, EtcdGuests};
use super::kv::{Entry, Kv};
use crate::decide::context::Context;
use crate::decide::labels::{self, FileId, Holder, Mode};
use crate::error::{Error, Refusal, Result};
use crate::registry::{self, Attachment, Guest, HolderIndex, Holds};

/// How many times a change is tried against a store that others change meanwhile.
const TRIES: usize = 32;

/// How long a guest's mark "migrating here" lasts at most.
pub const MIGRATION_MARK: std::time::Duration = std::time::Duration::from_secs(600);

/// A hold's value.
#[derive(Serialize, Deserialize)]
struct Record {
    /// The attachment's mode; absent for a backing-file hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<Mode>,
    /// The file held (inode, birth time in ns); absent for LVs.
    file: Option<(u64, i64)>,
    /// The disk's own label from its domain XML; absent for the mode's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<String>,
}

/// One hold as read back.
#[derive(Clone, Debug)]
pub(super) struct Hold {
    pub(super) guest: String,
    pub(super) host: String,
    pub(super) pool: String,
    pub(super) volume: Vec<u8>,
    /// `None`: an attachment; `Some(overlay)`: a backing-file hold for that overlay.
    pub(super) via: Option<Vec<u8>>,
    pub(super) mode: Mode,
    pub(super) file: Option<FileId>,
    pub(super) label: Option<Context>,
}

impl Hold {
    /// The hold as an attachment, its host named when it is not `me`.
    pub(super) fn attachment(&self, me: &str) -> Attachment {
        Attachment {
            guest: self.guest.clone(),
            pool: self.pool.clone(),
            volume: self.volume.clone(),
            mode: self.mode,
            file: self.file,
            via: self.via.clone(),
            host: (self.host != me).then(|| self.host.clone()),
            label: self.label.clone(),
        }
    }

    fn holder(&self, guest: &Guest, me: &str) -> Holder {
        Holder {
            guest: self.guest.clone(),
            pair: guest.effective_pair(),
            mode: self.mode,
            file: self.file,
            host: (self.host != me).then(|| self.host.clone()),
            label: self.label.clone(),
        }
    }
}

/// The holders of the shared pools of a cluster, as this host sees and changes them.
pub struct EtcdHolds {
    kv: Arc<Kv>,
    guests: EtcdGuests,
    /// The guests read, kept for the life of this object once [`EtcdHolds::keep_guests`]
    /// asked for it (a batch of attach and detach calls reads each guest's pair once).
    kept: Option<std::cell::RefCell<HashMap<String, Guest>>>,
    /// A batch's one transaction, while [`EtcdHolds::begin`] has opened it.
    pending: Option<Pending>,
    /// What [`EtcdHolds::prefetch`] read at once, and the revision it was read at.
    snapshot: std::cell::RefCell<Option<Snapshot>>,
}

/// Key ranges read together in one round trip: the reads a transaction guards are
/// served from it (their comparisons use its revision); a read of the latest state
/// takes a range from it once (so a second read of a volume's holders, the check
/// after a label write, asks etcd again).
struct Snapshot {
    ranges: Vec<(Vec<u8>, Vec<Entry>)>,
    revision: i64,
}

impl Snapshot {
    /// The entries below `prefix`, if a range read holds it.
    fn lookup(&self, prefix: &[u8]) -> Option<(usize, Vec<Entry>)> {
        self.ranges
            .iter()
            .enumerate()
            .find_map(|(i, (range, entries))| {
                prefix.starts_with(range).then(|| {
                    let below = entries.iter().filter(|(k, _)| k.starts_with(prefix));
                    (i, below.cloned().collect())
                })
            })
    }
}

/// The writes and comparisons of a batch of calls, committed as one transaction: a
/// batch of attaches costs one round of consensus, not one each.
#[derive(Default)]
struct Pending {
    writes: Writes,
    when: Vec<Compare>,
}

/// A pending transaction is committed early once it holds this many writes or
/// comparisons (etcd refuses more than 128 of either by default, `--max-txn-ops`).
const PENDING_MAX: usize = 96;

impl EtcdHolds {
    /// The holds kept by the cluster `kv` is connected to; this host is
    /// `kv.settings().host`.
    pub fn new(kv: Arc<Kv>) -> EtcdHolds {
        EtcdHolds {
            guests: EtcdGuests::new(kv.clone()),
            kv,
            kept: None,
            pending: None,
            snapshot: Default::default(),
        }
    }

    /// Reads at once, at one revision, what calls about these guests and volumes will
    /// read: the guests, their holds on this host and their marks of migrating here,
    /// and the volumes' holds. The guests are kept ([`EtcdHolds::keep_guests`]).
    pub fn prefetch(&mut self, guests: &[&str], volumes: &[(&str, &[u8])]) -> Result<()> {
        let me = self.me().to_owned();
        let mut ranges: Vec<Vec<u8>> = Vec::new();
        let mut add = |range: Vec<u8>| {
            if !ranges.contains(&range) {
                ranges.push(range);
            }
        };
        for guest in guests {
            add(self.guests.guest_key(guest));
            add(self.guest_prefix(guest, Some(&me)));
            add(self.migrating_key(guest, &me));
        }
        for (pool, volume) in volumes {
            add(self.volume_prefix(pool, volume));
        }
        if ranges.is_empty() {
            return Ok(());
        }
        let (got, revision) = self.kv.read_prefixes(&ranges)?;
        for guest in guests {
            let at = ranges
                .iter()
                .position(|r| *r == self.guests.guest_key(guest));
            if let Some(g) = at
                .map(|i| self.guests.decode_exact(guest, &got[i]))
                .transpose()?
                .flatten()
            {
                self.keep_guests();
                self.keep(&g);
            }
        }
        *self.snapshot.borrow_mut() = Some(Snapshot {
            ranges: ranges.into_iter().zip(got).collect(),
            revision,
        });
        Ok(())
    }

    /// A kept guest (see [`EtcdHolds::keep_guests`]).
    pub fn kept_guest(&self, uuid: &str) -> Option<Guest> {
        self.kept.as_ref()?.borrow().get(uuid).cloned()
    }

    /// The ranges of the snapshot that hold every one of `prefixes`, with its revision;
    /// `take`: those ranges are used up.
    fn read_snapshot(&self, prefixes: &[Vec<u8>], take: bool) -> Option<(Vec<Vec<Entry>>, i64)> {
        let mut snapshot = self.snapshot.borrow_mut();
        let snap = snapshot.as_mut()?;
        let found: Vec<(usize, Vec<Entry>)> = prefixes
            .iter()
            .map(|p| snap.lookup(p))
            .collect::<Option<_>>()?;
        let revision = snap.revision;
        if take {
            let mut used: Vec<usize> = found.iter().map(|(i, _)| *i).collect();
            used.sort_unstable();
            used.dedup();
            for i in used.into_iter().rev() {
                snap.ranges.remove(i);
            }
        }
        Some((found.into_iter().map(|(_, e)| e).collect(), revision))
    }

    /// Opens a batch: until [`EtcdHolds::finish`], changes are checked as they come
    /// (each against what the batch wrote before it) and committed together.
    pub fn begin(&mut self) {
        self.pending = Some(Pending::default());
    }

    /// Commits the batch's changes in one transaction; [`Error::Conflict`] when another
    /// host changed something one of them read (nothing of the batch is written: it
    /// is tried again from the start).
    pub fn finish(&mut self) -> Result<()> {
        self.snapshot.borrow_mut().take();
        let ok = match self.pending.take() {
            Some(p) => self.flush(p)?,
            None => true,
        };
        if ok { Ok(()) } else { Err(conflict()) }
    }

    /// Drops the batch's changes.
    pub fn discard(&mut self) {
        self.pending = None;
        self.snapshot.borrow_mut().take();
    }

    fn flush(&self, p: Pending) -> Result<bool> {
        if p.writes.is_empty() {
            return Ok(true);
        }
        self.kv.txn(p.when, p.writes.ops())
    }

    /// Commits `writes` if `when` holds, or adds both to the open batch (committed
    /// early when it grows too big). Whether they were committed or added.
    fn commit(&mut self, when: Vec<Compare>, writes: Writes) -> Result<bool> {
        let Some(pending) = self.pending.as_mut() else {
            self.snapshot.borrow_mut().take();
            return self.kv.txn(when, writes.ops());
        };
        pending.when.extend(when);
        pending.writes.0.extend(writes.0);
        if pending.writes.0.len() >= PENDING_MAX || pending.when.len() >= PENDING_MAX {
            let full = std::mem::take(pending);
            // What was read no longer shows these writes once they leave the batch.
            self.snapshot.borrow_mut().take();
            if !self.flush(full)? {
                return Err(conflict());
            }
        }
        Ok(true)
    }

    /// Reads for a change that a transaction guards: from the member asked alone, and
    /// within a batch as the batch's own writes left it.
    ///
    /// `fresh`: the latest state (linearizable), for a refusal's second look.
    fn read_view(&self, prefixes: &[Vec<u8>], fresh: bool) -> Result<(Vec<Vec<Entry>>, i64)> {
        let (mut got, revision) = match (fresh, self.read_snapshot(prefixes, false)) {
            (true, _) => self.kv.read_prefixes(prefixes)?,
            (false, Some(read)) => read,
            (false, None) => self.kv.read_guarded(prefixes)?,
        };
        if let Some(pending) = &self.pending {
            for (prefix, entries) in prefixes.iter().zip(got.iter_mut()) {
                pending.writes.overlay(prefix, entries);
            }
        }
        Ok((got, revision))
    }

    /// Reads the latest state (linearizable), within a batch as its writes left it.
    fn read_latest(&self, prefixes: &[Vec<u8>]) -> Result<(Vec<Vec<Entry>>, i64)> {
        if self.pending.is_some() {
            return self.read_view(prefixes, false);
        }
        if let Some(read) = self.read_snapshot(prefixes, true) {
            return Ok(read);
        }
        self.kv.read_prefixes(prefixes)
    }

    /// Keeps the guests this object reads (their pairs) until it is dropped: for a
    /// batch of calls that lasts milliseconds, where a guest's pair changing meanwhile
    /// is the race any label written a moment before a change already runs (the next
    /// change or rescan labels it again).
    pub fn keep_guests(&mut self) {
        self.kept.get_or_insert_with(Default::default);
    }

    fn me(&self) -> &str {
        &self.kv.settings().host
    }

    /// `volumes/POOL/VOLUME/`: every hold of a volume.
    fn volume_prefix(&self, pool: &str, volume: &[u8]) -> Vec<u8> {
        self.kv.key(&["volumes", pool, &hex(volume), ""])
    }

    /// The two keys of an attachment (by volume, by guest) on `host`.
    fn attach_keys(&self, guest: &str, host: &str, pool: &str, volume: &[u8]) -> [Vec<u8>; 2] {
        let v = hex(volume);
        [
            self.kv.key(&["volumes", pool, &v, "a", guest, host]),
            self.kv.key(&["held", guest, host, "a", pool, &v]),
        ]
    }

    /// The two keys of a backing hold of `volume` for `overlay` on `host`.
    fn backing_keys(
        &self,
        guest: &str,
        host: &str,
        pool: &str,
        overlay: &[u8],
        volume: &[u8],
    ) -> [Vec<u8>; 2] {
        let (o, v) = (hex(overlay), hex(volume));
        [
            self.kv.key(&["volumes", pool, &v, "b", guest, host, &o]),
            self.kv.key(&["held", guest, host, "b", pool, &o, &v]),
        ]
    }

    /// Every hold of `guest` on `host` (`None`: on every host).
    fn guest_prefix(&self, guest: &str, host: Option<&str>) -> Vec<u8> {
        match host {
            Some(host) => self.kv.key(&["held", guest, host, ""]),
            None => self.kv.key(&["held", guest, ""]),
        }
    }

    /// The backing holds `guest` has on `host` for `overlay`.
    fn backing_prefix(&self, guest: &str, host: &str, pool: &str, overlay: &[u8]) -> Vec<u8> {
        self.kv
            .key(&["held", guest, host, "b", pool, &hex(overlay), ""])
    }

    fn migrating_key(&self, guest: &str, host: &str) -> Vec<u8> {
        self.kv.key(&["migrating", guest, host])
    }

    /// The holds below a `volumes/` key range.
    fn parse_volume_keys(&self, entries: &[Entry]) -> Result<Vec<Hold>> {
        let base = self.kv.key(&["volumes", ""]);
        entries
            .iter()
            .map(|(key, value)| {
                let parts = split(&key[base.len()..])?;
                match parts.as_slice() {
                    [pool, v, "a", guest, host] => hold(pool, v, guest, host, None, value),
                    [pool, v, "b", guest, host, o] => hold(pool, v, guest, host, Some(o), value),
                    _ => Err(corrupt("a volume key")),
                }
            })
            .collect()
    }

    /// The holds below a `held/` key range.
    fn parse_guest_keys(&self, entries: &[Entry]) -> Result<Vec<Hold>> {
        let base = self.kv.key(&["held", ""]);
        entries
            .iter()
            .map(|(key, value)| {
                let parts = split(&key[base.len()..])?;
                match parts.as_slice() {
                    [guest, host, "a", pool, v] => hold(pool, v, guest, host, None, value),
                    [guest, host, "b", pool, o, v] => hold(pool, v, guest, host, Some(o), value),
                    _ => Err(corrupt("a guest's hold key")),
                }
            })
            .collect()
    }

    /// The guests of `holds`, by UUID (one round trip).
    /// Keeps a guest just read, when guests are kept.
    fn keep(&self, guest: &Guest) {
        if let Some(kept) = &self.kept {
            kept.borrow_mut().insert(guest.uuid.clone(), guest.clone());
        }
    }

    fn guests_of(&self, holds: &[Hold]) -> Result<HashMap<String, Guest>> {
        let uuids: HashSet<&str> = holds.iter().map(|h| h.guest.as_str()).collect();
        let Some(kept) = &self.kept else {
            return self.guests.read_many(uuids.into_iter());
        };
        let missing: Vec<&str> = uuids
            .iter()
            .copied()
            .filter(|u| !kept.borrow().contains_key(*u))
            .collect();
        if !missing.is_empty() {
            let read = self.guests.read_many(missing.into_iter())?;
            kept.borrow_mut().extend(read);
        }
        let kept = kept.borrow();
        Ok(uuids
            .into_iter()
            .filter_map(|u| kept.get(u).map(|g| (u.to_owned(), g.clone())))
            .collect())
    }

    fn holders_of(&self, holds: &[Hold]) -> Result<Vec<Holder>> {
        let guests = self.guests_of(holds)?;
        let me = self.me();
        // A hold whose guest is gone (forgotten on another host meanwhile) holds nothing.
        let mut holders: Vec<Holder> = holds
            .iter()
            .filter_map(|h| guests.get(&h.guest).map(|g| h.holder(g, me)))
            .collect();
        registry::dedup_holders(&mut holders);
        Ok(holders)
    }

    /// Every hold of every host.
    pub(super) fn all(&self) -> Result<Vec<Hold>> {
        let (got, _) = self.kv.read_prefixes(&[self.kv.key(&["volumes", ""])])?;
        self.parse_volume_keys(&got[0])
    }

    /// Deletes every key of `hold`.
    fn delete(&self, writes: &mut Writes, hold: &Hold) {
        for key in self.keys_of(hold) {
            writes.delete(key);
        }
    }

    /// The two keys of `hold` (by volume, by guest).
    pub(super) fn keys_of(&self, hold: &Hold) -> [Vec<u8>; 2] {
        match &hold.via {
            None => self.attach_keys(&hold.guest, &hold.host, &hold.pool, &hold.volume),
            Some(overlay) => {
                self.backing_keys(&hold.guest, &hold.host, &hold.pool, overlay, &hold.volume)
            }
        }
    }

    /// Puts both keys of `att` (a backing hold for `overlay`, when given) on this host.
    fn put(&self, writes: &mut Writes, att: &Attachment, overlay: Option<&[u8]>) -> Result<()> {
        let me = self.me();
        let (keys, record) = match overlay {
            None => (
                self.attach_keys(&att.guest, me, &att.pool, &att.volume),
                Record {
                    mode: Some(att.mode),
                    file: att.file.map(|f| (f.ino, f.btime_ns)),
                    label: att.label.as_ref().map(|l| l.as_str().to_owned()),
                },
            ),
            Some(overlay) => (
                self.backing_keys(&att.guest, me, &att.pool, overlay, &att.volume),
                Record {
                    mode: None,
                    file: att.file.map(|f| (f.ino, f.btime_ns)),
                    label: None,
                },
            ),
        };
        let value = serde_json::to_vec(&record)
            .map_err(|e| Error::failed(format!("etcd: a hold's record: {e}")))?;
        for key in keys {
            writes.put(key, value.clone());
        }
        Ok(())
    }

    /// What attaching `att` (not an overlay's backing file) needs, from the holds of its
    /// volume read at one revision: the refusal, or the holds to drop first (of files
    /// gone from under the name) and the guest's previous mode.
    fn check_attach(
        &self,
        att: &Attachment,
        holds: Vec<Hold>,
        migrating: bool,
    ) -> Result<(Vec<Hold>, Option<Mode>)> {
        let (stale, live): (Vec<Hold>, Vec<Hold>) = holds
            .into_iter()
            .partition(|h| att.file.is_some() && h.file.is_some() && h.file != att.file);
        let me = self.me();
        if att.mode == Mode::Rw
            && let Some(b) = live.iter().find(|h| h.via.is_some())
        {
            return Err(Refusal::BackingOfOverlay {
                volume: att.volume.escape_ascii().to_string(),
                overlay: b
                    .via
                    .as_deref()
                    .unwrap_or_default()
                    .escape_ascii()
                    .to_string(),
                guest: b.guest.clone(),
            }
            .into());
        }
        // The guest itself on another host: a migration, or refused when either side
        // writes (two QEMUs writing one disk).
        if !migrating
            && let Some(there) = live.iter().find(|h| {
                h.guest == att.guest
                    && h.host != me
                    && h.via.is_none()
                    && (h.mode == Mode::Rw || att.mode == Mode::Rw)
            })
        {
            return Err(Refusal::OnOtherHost {
                volume: att.volume.escape_ascii().to_string(),
                guest: att.guest.clone(),
                host: there.host.clone(),
            }
            .into());
        }
        let holders = self.holders_of(&live)?;
        registry::check_held(&holders, att)?;
        let previous = live
            .iter()
            .find(|h| h.guest == att.guest && h.host == me)
            .map(|h| h.mode);
        Ok((stale, previous))
    }

    /// Refuses a backing hold of `att.volume` for `overlay` while anyone writes it.
    fn check_backing(&self, att: &Attachment, overlay: &[u8], holds: &[Hold]) -> Result<()> {
        let writer = holds.iter().find(|h| {
            h.mode == Mode::Rw
                && h.via.is_none()
                && (h.file.is_none() || att.file.is_none() || h.file == att.file)
        });
        match writer {
            Some(w) => Err(Refusal::BackingWritten {
                volume: att.volume.escape_ascii().to_string(),
                overlay: overlay.escape_ascii().to_string(),
                guest: w.guest.clone(),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// The comparisons that a guest's key is the one read, and no key below each of
    /// `prefixes` changed after `revision`.
    fn unchanged(&self, guest: &Guest, prefixes: &[Vec<u8>], revision: i64) -> Vec<Compare> {
        let mut when = vec![Compare::version(
            self.guests.guest_key(&guest.uuid),
            CompareOp::Greater,
            0,
        )];
        when.extend(prefixes.iter().map(|p| {
            Compare::mod_revision(p.clone(), CompareOp::Less, revision + 1).with_prefix()
        }));
        when
    }

    /// Attaches `att` and, when `chain` is given, holds its backing files for it, in
    /// one transaction.
    fn attach_with(
        &mut self,
        att: &Attachment,
        chain: Option<&[(Vec<u8>, Option<FileId>)]>,
    ) -> Result<Option<Mode>> {
        let mut fresh = false;
        for _ in 0..TRIES {
            match self.try_attach(att, chain, fresh) {
                Ok(Some(previous)) => return Ok(previous),
                Ok(None) => {}
                Err(e) if !fresh && second_look(&e) => fresh = true,
                Err(e) => return Err(e),
            }
        }
        Err(contended("attach", &att.guest))
    }

    /// One try of [`EtcdHolds::attach_with`]: `None` when another change came first.
    fn try_attach(
        &mut self,
        att: &Attachment,
        chain: Option<&[(Vec<u8>, Option<FileId>)]>,
        fresh: bool,
    ) -> Result<Option<Option<Mode>>> {
        let me = self.me().to_owned();
        {
            let mut prefixes = vec![
                self.volume_prefix(&att.pool, &att.volume),
                self.backing_prefix(&att.guest, &me, &att.pool, &att.volume),
            ];
            for (volume, _) in chain.unwrap_or_default() {
                prefixes.push(self.volume_prefix(&att.pool, volume));
            }
            let mut reads = prefixes.clone();
            reads.push(self.guests.guest_key(&att.guest));
            reads.push(self.migrating_key(&att.guest, &me));
            let (mut got, revision) = self.read_view(&reads, fresh)?;
            let migrating_key = self.migrating_key(&att.guest, &me);
            let migrating = got
                .pop()
                .unwrap_or_default()
                .iter()
                .any(|(k, _)| *k == migrating_key);
            let guest = self
                .guests
                .decode_exact(&att.guest, &got.pop().unwrap_or_default())?
                .ok_or_else(|| Error::NoSuchGuest(att.guest.clone()))?;
            self.keep(&guest);
            let holds = self.parse_volume_keys(&got[0])?;
            let (stale, previous) = self.check_attach(att, holds, migrating)?;
            let mut writes = Writes::default();
            for h in &stale {
                tracing::info!(guest = %h.guest, host = %h.host, pool = %att.pool,
                    volume = %att.volume.escape_ascii(), "dropped the hold of a file that is gone");
                self.delete(&mut writes, h);
            }
            if let Some(chain) = chain {
                // The backing holds of the overlay's previous chain go; the new ones come.
                for old in self.parse_guest_keys(&got[1])? {
                    self.delete(&mut writes, &old);
                }
                for ((volume, file), entries) in chain.iter().zip(&got[2..]) {
                    let held = Attachment {
                        volume: volume.clone(),
                        mode: labels::BACKING_MODE,
                        file: *file,
                        via: Some(att.volume.clone()),
                        ..att.clone()
                    };
                    self.check_backing(&held, &att.volume, &self.parse_volume_keys(entries)?)?;
                    self.put(&mut writes, &held, Some(&att.volume))?;
                }
            }
            self.put(&mut writes, att, None)?;
            let mut when = self.unchanged(&guest, &prefixes, revision);
            if migrating {
                // The mark read (perhaps from a stale member) is still there.
                when.push(Compare::version(
                    migrating_key.clone(),
                    CompareOp::Greater,
                    0,
                ));
            }
            Ok(self.commit(when, writes)?.then_some(previous))
        }
    }

    /// A backing hold alone (an attachment `via` an overlay).
    fn hold_backing(&mut self, att: &Attachment, overlay: &[u8]) -> Result<()> {
        let mut fresh = false;
        for _ in 0..TRIES {
            match self.try_hold_backing(att, overlay, fresh) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) if !fresh && second_look(&e) => fresh = true,
                Err(e) => return Err(e),
            }
        }
        Err(contended("hold a backing file for", &att.guest))
    }

    /// One try of [`EtcdHolds::hold_backing`]: whether it was committed.
    fn try_hold_backing(&mut self, att: &Attachment, overlay: &[u8], fresh: bool) -> Result<bool> {
        {
            let prefix = self.volume_prefix(&att.pool, &att.volume);
            let (got, revision) =
                self.read_view(&[prefix.clone(), self.guests.guest_key(&att.guest)], fresh)?;
            let guest = self
                .guests
                .decode_exact(&att.guest, &got[1])?
                .ok_or_else(|| Error::NoSuchGuest(att.guest.clone()))?;
            self.check_backing(att, overlay, &self.parse_volume_keys(&got[0])?)?;
            let mut writes = Writes::default();
            self.put(&mut writes, att, Some(overlay))?;
            self.commit(self.unchanged(&guest, &[prefix], revision), writes)
        }
    }

    /// Removes the holds of `guest` on `host` that `select` picks among all it has
    /// there, in one transaction; returns them.
    fn remove(
        &mut self,
        guest: &str,
        host: &str,
        select: &dyn Fn(&Hold) -> bool,
    ) -> Result<Vec<Hold>> {
        let mut fresh = false;
        for _ in 0..TRIES {
            let prefix = self.guest_prefix(guest, Some(host));
            let (got, revision) = self.read_view(std::slice::from_ref(&prefix), fresh)?;
            let held: Vec<Hold> = self
                .parse_guest_keys(&got[0])?
                .into_iter()
                .filter(|h| select(h))
                .collect();
            let mut writes = Writes::default();
            for h in &held {
                self.delete(&mut writes, h);
            }
            if writes.is_empty() {
                // Nothing, as one member alone saw it: asked again of the latest state
                // (a hold made a moment ago elsewhere may not have reached that member).
                if !fresh {
                    fresh = true;
                    continue;
                }
                return Ok(held);
            }
            let when =
                vec![Compare::mod_revision(prefix, CompareOp::Less, revision + 1).with_prefix()];
            if self.commit(when, writes)? {
                return Ok(held);
            }
        }
        Err(contended("release holds of", guest))
    }

    /// Detaches `volume` from `guest` on `host`, with the backing holds it brings.
    fn detach_on(
        &mut self,
        guest: &str,
        host: &str,
        pool: &str,
        volume: &[u8],
    ) -> Result<(Option<Mode>, Vec<Attachment>)> {
        let removed = self.remove(guest, host, &|h| {
            h.pool == pool
                && match &h.via {
                    None => h.volume == volume,
                    Some(overlay) => overlay == volume,
                }
        })?;
        let me = self.me().to_owned();
        let mode = removed.iter().find(|h| h.via.is_none()).map(|h| h.mode);
        let backing = removed
            .iter()
            .filter(|h| h.via.is_some())
            .map(|h| h.attachment(&me))
            .collect();
        Ok((mode, backing))
    }

    /// Marks `guest` as migrating to this host: its holds here may then join the ones it
    /// has on the source host until the migration ends.
    ///
    /// The mark is leased ([`MIGRATION_MARK`]): it is needed from libvirt's `migrate
    /// begin` to `start begin` on the destination, and a destination that dies
    /// meanwhile must not leave it for good.
    pub fn begin_migration(&mut self, guest: &str) -> Result<()> {
        let key = self.migrating_key(guest, self.me());
        self.kv.put_leased(&key, b"1", MIGRATION_MARK).map(drop)
    }

    /// Ends what [`EtcdHolds::begin_migration`] began (the guest runs here now, or the
    /// migration failed).
    pub fn end_migration(&mut self, guest: &str) -> Result<()> {
        let key = self.migrating_key(guest, self.me());
        self.kv.txn(vec![], vec![TxnOp::delete(key, None)])?;
        Ok(())
    }
}

impl Holds for EtcdHolds {
    fn holders(&self, pool: &str, volume: &[u8]) -> Result<Vec<Holder>> {
        let (got, _) = self.read_latest(&[self.volume_prefix(pool, volume)])?;
        self.holders_of(&self.parse_volume_keys(&got[0])?)
    }

    fn holder_index(&self) -> Result<HolderIndex> {
        let (got, _) = self
            .kv
            .read_prefixes(&[self.kv.key(&["volumes", ""]), self.kv.key(&["guests", ""])])?;
        let guests = self.guests.decode_all(&got[1])?;
        let me = self.me();
        let mut index = HolderIndex::new();
        for h in self.parse_volume_keys(&got[0])? {
            if let Some(g) = guests.get(&h.guest) {
                index
                    .entry(h.pool.clone())
                    .or_default()
                    .entry(h.volume.clone())
                    .or_default()
                    .push(h.holder(g, me));
            }
        }
        for holders in index.values_mut().flat_map(|v| v.values_mut()) {
            registry::dedup_holders(holders);
        }
        Ok(index)
    }

    fn attachments(&self, guest: Option<&str>) -> Result<Vec<Attachment>> {
        let me = self.me();
        let holds = match guest {
            Some(uuid) => {
                let (got, _) = self.read_latest(&[self.guest_prefix(uuid, None)])?;
                self.parse_guest_keys(&got[0])?
            }
            None => {
                let (got, _) = self.read_latest(&[self.kv.key(&["volumes", ""])])?;
                self.parse_volume_keys(&got[0])?
            }
        };
        let mut atts: Vec<Attachment> = holds
            .iter()
            .filter(|h| h.via.is_none())
            .map(|h| h.attachment(me))
            .collect();
        atts.sort_by(|a, b| (&a.pool, &a.volume, &a.guest).cmp(&(&b.pool, &b.volume, &b.guest)));
        Ok(atts)
    }

    fn attach(&mut self, att: &Attachment) -> Result<Option<Mode>> {
        match &att.via {
            Some(overlay) => self.hold_backing(att, overlay).map(|()| None),
            None => self.attach_with(att, None),
        }
    }

    fn attach_overlay(
        &mut self,
        att: &Attachment,
        chain: &[(Vec<u8>, Option<FileId>)],
    ) -> Result<Option<Mode>> {
        self.attach_with(att, Some(chain))
    }

    fn detach(
        &mut self,
        guest: &str,
        pool: &str,
        volume: &[u8],
    ) -> Result<(Option<Mode>, Vec<Attachment>)> {
        let me = self.me().to_owned();
        self.detach_on(guest, &me, pool, volume)
    }

    fn release_pins(&mut self, pool: &str, volume: &[u8], owner: u32) -> Result<Vec<Attachment>> {
        let (got, _) = self.read_latest(&[self.volume_prefix(pool, volume)])?;
        let holds = self.parse_volume_keys(&got[0])?;
        let guests = self.guests_of(&holds)?;
        // (guest, host, the volume of its own that holds this one: itself or an overlay)
        let mut pins: Vec<(String, String, Vec<u8>)> = holds
            .iter()
            .filter(|h| h.via.is_some() || h.mode == Mode::Ro)
            .filter(|h| {
                guests
                    .get(&h.guest)
                    .is_some_and(|g| g.owner != 0 && g.owner != owner)
            })
            .map(|h| {
                let held = h.via.clone().unwrap_or_else(|| h.volume.clone());
                (h.guest.clone(), h.host.clone(), held)
            })
            .collect();
        pins.sort();
        pins.dedup();
        let me = self.me().to_owned();
        let mut released = Vec::new();
        for (guest, host, held) in pins {
            let detached = self.detach_on(&guest, &host, pool, &held)?;
            let elsewhere = (host != me).then_some(host);
            registry::add_released_pin(&mut released, (guest, pool, held, elsewhere), detached);
        }
        Ok(released)
    }

    fn release(&mut self, guest: &str) -> Result<Vec<Attachment>> {
        if self.guests.read_many(std::iter::once(guest))?.is_empty() {
            return Err(Error::NoSuchGuest(guest.to_owned()));
        }
        let me = self.me().to_owned();
        let mut removed = self.remove(guest, &me, &|_| true)?;
        // Attachments first, backing holds last (as the trait says).
        removed.sort_by_key(|h| h.via.is_some());
        Ok(removed.iter().map(|h| h.attachment(&me)).collect())
    }
}

/// A key's parts after a base, split at `/`.
fn split(rest: &[u8]) -> Result<Vec<&str>> {
    std::str::from_utf8(rest)
        .map(|s| s.split('/').collect())
        .map_err(|_| corrupt("a hold key"))
}

fn hold(
    pool: &str,
    volume: &str,
    guest: &str,
    host: &str,
    overlay: Option<&str>,
    value: &[u8],
) -> Result<Hold> {
    let record: Record = serde_json::from_slice(value)
        .map_err(|e| corrupt(&format!("the hold of {guest} on {host} ({e})")))?;
    Ok(Hold {
        guest: guest.to_owned(),
        host: host.to_owned(),
        pool: pool.to_owned(),
        volume: unhex(volume)?,
        via: overlay.map(unhex).transpose()?,
        mode: record.mode.unwrap_or(labels::BACKING_MODE),
        file: record.file.map(|(ino, btime_ns)| FileId { ino, btime_ns }),
        label: record
            .label
            .map(|l| l.parse::<Context>())
            .transpose()
            .map_err(|e| corrupt(&format!("the hold of {guest} on {host} ({e})")))?,
    })
}

/// The writes of one transaction, each key once (etcd refuses a transaction that names
/// a key twice): a later put or delete of a key replaces an earlier one.
#[derive(Default)]
struct Writes(std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>);

impl Writes {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.0.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.0.insert(key, None);
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `entries` (every key below `prefix`, in key order) as these writes leave them.
    fn overlay(&self, prefix: &[u8], entries: &mut Vec<Entry>) {
        let mine = self
            .0
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix));
        let mut changed = false;
        for (key, value) in mine {
            entries.retain(|(k, _)| k != key);
            if let Some(v) = value {
                entries.push((key.clone(), v.clone()));
            }
            changed = true;
        }
        if changed {
            entries.sort();
        }
    }

    fn ops(self) -> Vec<TxnOp> {
        self.0
            .into_iter()
            .map(|(key, value)| match value {
                Some(v) => TxnOp::put(key, v, None),
                None => TxnOp::delete(key, None),
            })
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Result<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return Err(corrupt("a volume name in a key"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| corrupt("a volume name")))
        .collect()
}

fn corrupt(what: &str) -> Error {
    guests::corrupt(what)
}

/// Whether an answer read from one member alone deserves a second look at the latest
/// state before it is given: a refusal (that member may not have seen a detach, or a
/// migration's mark, made a moment ago elsewhere).
fn second_look(e: &Error) -> bool {
    matches!(e, Error::Refused(_) | Error::NoSuchGuest(_))
}

fn conflict() -> Error {
    Error::Conflict("etcd: another host changed the volumes this batch read".into())
}

fn contended(what: &str, uuid: &str) -> Error {
    guests::contended(what, uuid)
}
