//! Guests and their pairs in etcd: every host's agent defines, finds and forgets them
//! here, so a pair is never handed out twice in the cluster.
//!
//! A change is one transaction whose comparisons say what it read: the guest's key
//! unchanged (or absent, for a new guest), each pair key it takes absent, and for a
//! member's guest the keys it counted (its guests, the pairs in use) unchanged. A
//! transaction that finds the store changed reads again and retries.

use etcd_client::{Compare, CompareOp, TxnOp};
use serde::{Deserialize, Serialize};

use std::collections::HashMap;
use std::sync::Arc;

use super::kv::{Entry, Kv, Versioned};
use crate::decide::context::{CategorySet, Pair};
use crate::decide::mcs;
use crate::error::{Error, Refusal, Result};
use crate::registry::{self, Guest, Guests};

/// How many times a change is tried against a store that others change meanwhile.
const TRIES: usize = 32;

/// A guest as its key's value keeps it (the UUID is the key).
#[derive(Serialize, Deserialize)]
struct Record {
    name: String,
    pair: (u16, u16),
    owner: u32,
    run_pair: Option<(u16, u16)>,
    via_libvirt: bool,
}

/// The guests of a cluster.
pub struct EtcdGuests {
    kv: Arc<Kv>,
}

impl EtcdGuests {
    /// The guests kept by the cluster `kv` is connected to.
    pub fn new(kv: Arc<Kv>) -> EtcdGuests {
        EtcdGuests { kv }
    }

    /// The guest whose key is among `entries` (read with its key as a prefix, which
    /// also finds the keys of longer UUIDs).
    pub(super) fn decode_exact(&self, uuid: &str, entries: &[Entry]) -> Result<Option<Guest>> {
        let key = self.guest_key(uuid);
        entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, value)| decode(uuid, value))
            .transpose()
    }

    /// The guests of every key of `entries` (read below `guests/`), by UUID.
    pub(super) fn decode_all(&self, entries: &[Entry]) -> Result<HashMap<String, Guest>> {
        let prefix = self.kv.key(&["guests", ""]);
        entries
            .iter()
            .map(|(key, value)| {
                let uuid = std::str::from_utf8(&key[prefix.len()..])
                    .map_err(|_| corrupt("a guest key"))?;
                Ok((uuid.to_owned(), decode(uuid, value)?))
            })
            .collect()
    }

    /// The guests of these UUIDs that exist, in one round trip.
    pub(super) fn read_many<'a>(
        &self,
        uuids: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<String, Guest>> {
        let uuids: Vec<&str> = uuids.collect();
        if uuids.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<Vec<u8>> = uuids.iter().map(|u| self.guest_key(u)).collect();
        let (got, _) = self.kv.read_prefixes(&keys)?;
        let mut guests = HashMap::new();
        for (uuid, entries) in uuids.iter().zip(&got) {
            if let Some(g) = self.decode_exact(uuid, entries)? {
                guests.insert((*uuid).to_owned(), g);
            }
        }
        Ok(guests)
    }

    pub(super) fn guest_key(&self, uuid: &str) -> Vec<u8> {
        self.kv.key(&["guests", uuid])
    }

    fn pair_key(&self, pair: Pair) -> Vec<u8> {
        self.kv
            .key(&["pairs", &format!("{:04}.{:04}", pair.low(), pair.high())])
    }

    fn owner_key(&self, owner: u32, uuid: &str) -> Vec<u8> {
        self.kv.key(&["owners", &format!("{owner:010}"), uuid])
    }

    /// The guest with this UUID, and the revision of its key.
    fn read(&self, uuid: &str) -> Result<Option<(Guest, i64)>> {
        self.kv
            .get(&self.guest_key(uuid))?
            .map(|Versioned { value, revision }| Ok((decode(uuid, &value)?, revision)))
            .transpose()
    }

    /// The guest holding `pair`, as its own or as the one it runs with.
    pub(super) fn pair_holder(&self, pair: Pair) -> Result<Option<String>> {
        self.kv
            .get(&self.pair_key(pair))?
            .map(|v| String::from_utf8(v.value).map_err(|_| corrupt("a pair key's UUID")))
            .transpose()
    }

    /// A random pair of `categories` no guest holds (only a commit that takes it
    /// proves it still free).
    fn free_pair(&self, categories: &CategorySet) -> Result<Pair> {
        // Guarded: the define's transaction compares the pair key as absent.
        mcs::pick_pair(categories, &mut rand::rng(), |p| {
            let (got, _) = self.kv.read_guarded(&[self.pair_key(p)])?;
            Ok::<_, Error>(!got[0].is_empty())
        })?
        .ok_or_else(|| {
            Refusal::PairsExhausted {
                total: mcs::pair_count(categories),
                categories: categories.clone(),
            }
            .into()
        })
    }

    /// The comparisons a member's define rests on, after checking its quota and the
    /// pairs kept for root: no guest of `owner`, and no pair, added since they were
    /// counted.
    fn member_room(
        &self,
        owner: u32,
        quota: u32,
        categories: &CategorySet,
    ) -> Result<Vec<Compare>> {
        let mine = self.kv.key(&["owners", &format!("{owner:010}"), ""]);
        let pairs = self.kv.key(&["pairs", ""]);
        let (held, at) = self.kv.count(&mine)?;
        let (used, _) = self.kv.count(&pairs)?;
        registry::member_may_define(
            owner,
            u32::try_from(held).unwrap_or(u32::MAX),
            quota,
            usize::try_from(used).unwrap_or(usize::MAX),
            categories,
        )?;
        // Nothing below either prefix changed after the first count (a new key has a
        // later revision; the second count saw at least `at`).
        Ok(vec![
            Compare::mod_revision(mine, CompareOp::Less, at + 1).with_prefix(),
            Compare::mod_revision(pairs, CompareOp::Less, at + 1).with_prefix(),
        ])
    }

    /// Creates `guest` as it is (pair, run pair, owner) if neither its UUID nor any of
    /// its pairs is in the cluster; whether it was.
    pub(super) fn create(&self, guest: &Guest) -> Result<bool> {
        let mut when = vec![Compare::version(
            self.guest_key(&guest.uuid),
            CompareOp::Equal,
            0,
        )];
        let mut then = vec![TxnOp::put(
            self.guest_key(&guest.uuid),
            encode(guest)?,
            None,
        )];
        for pair in [Some(guest.pair), guest.run_pair].into_iter().flatten() {
            when.push(Compare::version(self.pair_key(pair), CompareOp::Equal, 0));
            then.push(TxnOp::put(self.pair_key(pair), guest.uuid.clone(), None));
        }
        if guest.owner != 0 {
            then.push(TxnOp::put(
                self.owner_key(guest.owner, &guest.uuid),
                "",
                None,
            ));
        }
        self.kv.txn(when, then)
    }

    /// Writes `guest` over the version read at `revision`: the pair keys it gives up
    /// go, the ones it takes must be absent. Whether nobody changed it meanwhile.
    fn replace(&self, old: &Guest, revision: i64, new: &Guest) -> Result<bool> {
        let held = |g: &Guest| {
            [Some(g.pair), g.run_pair]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
        };
        let (before, after) = (held(old), held(new));
        let mut when = vec![Compare::mod_revision(
            self.guest_key(&old.uuid),
            CompareOp::Equal,
            revision,
        )];
        let mut then = vec![TxnOp::put(self.guest_key(&new.uuid), encode(new)?, None)];
        for pair in before.iter().filter(|p| !after.contains(p)) {
            then.push(TxnOp::delete(self.pair_key(*pair), None));
        }
        for pair in after.iter().filter(|p| !before.contains(p)) {
            when.push(Compare::version(self.pair_key(*pair), CompareOp::Equal, 0));
            then.push(TxnOp::put(self.pair_key(*pair), new.uuid.clone(), None));
        }
        if old.owner != new.owner {
            then.push(TxnOp::delete(self.owner_key(old.owner, &old.uuid), None));
            if new.owner != 0 {
                then.push(TxnOp::put(self.owner_key(new.owner, &new.uuid), "", None));
            }
        }
        self.kv.txn(when, then)
    }

    /// Every guest, in UUID order, from after `after` on, at most `limit` (0: all).
    fn list(&self, after: Option<&str>, limit: u32) -> Result<Vec<Guest>> {
        let prefix = self.kv.key(&["guests", ""]);
        let start = after.map(|a| {
            let mut key = self.guest_key(a);
            key.push(0);
            key
        });
        let (kvs, _) = self.kv.range(&prefix, start.as_deref(), i64::from(limit))?;
        kvs.iter()
            .map(|(key, value)| {
                let uuid = std::str::from_utf8(&key[prefix.len()..])
                    .map_err(|_| corrupt("a guest key"))?;
                decode(uuid, value)
            })
            .collect()
    }
}

impl Guests for EtcdGuests {
    fn define_guest(
        &mut self,
        uuid: &str,
        name: Option<&str>,
        categories: &CategorySet,
        owner: u32,
        quota: u32,
    ) -> Result<(Guest, bool)> {
        for _ in 0..TRIES {
            if let Some((guest, revision)) = self.read(uuid)? {
                registry::may_redefine(&guest, owner)?;
                let Some(name) = name.filter(|n| *n != guest.name) else {
                    return Ok((guest, false));
                };
                let renamed = Guest {
                    name: name.to_owned(),
                    ..guest.clone()
                };
                if self.replace(&guest, revision, &renamed)? {
                    return Ok((renamed, false));
                }
                continue;
            }
            let mut when = vec![Compare::version(self.guest_key(uuid), CompareOp::Equal, 0)];
            if owner != 0 {
                when.extend(self.member_room(owner, quota, categories)?);
            }
            let pair = self.free_pair(categories)?;
            let guest = Guest {
                uuid: uuid.to_owned(),
                name: name.unwrap_or(uuid).to_owned(),
                pair,
                owner,
                run_pair: None,
                via_libvirt: false,
            };
            when.push(Compare::version(self.pair_key(pair), CompareOp::Equal, 0));
            let mut then = vec![
                TxnOp::put(self.guest_key(uuid), encode(&guest)?, None),
                TxnOp::put(self.pair_key(pair), uuid, None),
            ];
            if owner != 0 {
                then.push(TxnOp::put(self.owner_key(owner, uuid), "", None));
            }
            if self.kv.txn(when, then)? {
                return Ok((guest, true));
            }
        }
        Err(contended("define guest", uuid))
    }

    fn take_over_guest(&mut self, uuid: &str, categories: &CategorySet) -> Result<Option<u32>> {
        for _ in 0..TRIES {
            let Some((guest, revision)) = self.read(uuid)?.filter(|(g, _)| g.owner != 0) else {
                return Ok(None);
            };
            let taken = Guest {
                owner: 0,
                pair: self.free_pair(categories)?,
                run_pair: None,
                ..guest.clone()
            };
            if self.replace(&guest, revision, &taken)? {
                return Ok(Some(guest.owner));
            }
        }
        Err(contended("take over guest", uuid))
    }

    fn guest(&self, uuid: &str) -> Result<Option<Guest>> {
        Ok(self.read(uuid)?.map(|(guest, _)| guest))
    }

    fn guests_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<Guest>> {
        // etcd reads a limit of 0 as "no limit".
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.list(after, limit)
    }

    fn guests(&self) -> Result<Vec<Guest>> {
        let mut all = self.list(None, 0)?;
        all.sort_by(|a, b| (&a.name, &a.uuid).cmp(&(&b.name, &b.uuid)));
        Ok(all)
    }

    fn set_run_pair(&mut self, uuid: &str, pair: Option<Pair>) -> Result<()> {
        for _ in 0..TRIES {
            let (guest, revision) = self
                .read(uuid)?
                .ok_or_else(|| Error::NoSuchGuest(uuid.to_owned()))?;
            let pair = pair.filter(|p| *p != guest.pair);
            if let Some(p) = pair
                && guest.run_pair != Some(p)
                && let Some(other) = self.pair_holder(p)?
                && other != uuid
            {
                let name = self
                    .guest(&other)?
                    .map_or_else(|| other.clone(), |g| g.name);
                return Err(Refusal::PairTaken {
                    pair: p,
                    name,
                    uuid: other,
                }
                .into());
            }
            let changed = Guest {
                run_pair: pair,
                ..guest.clone()
            };
            if self.replace(&guest, revision, &changed)? {
                return Ok(());
            }
        }
        Err(contended("set the run pair of guest", uuid))
    }

    fn mark_via_libvirt(&mut self, uuid: &str) -> Result<()> {
        for _ in 0..TRIES {
            let Some((guest, revision)) = self.read(uuid)? else {
                return Ok(());
            };
            let marked = Guest {
                via_libvirt: true,
                ..guest.clone()
            };
            if guest.via_libvirt || self.replace(&guest, revision, &marked)? {
                return Ok(());
            }
        }
        Err(contended("mark guest", uuid))
    }

    fn libvirt_guests(&self) -> Result<Vec<Guest>> {
        let mut all = self.list(None, 0)?;
        all.retain(|g| g.via_libvirt);
        Ok(all)
    }

    fn forget_guest(&mut self, uuid: &str) -> Result<()> {
        // Its holds of shared volumes, on any host (`held/UUID/…`, see `holds`); the
        // caller checks its holds of this host's own pools.
        let held = self.kv.key(&["held", uuid, ""]);
        for _ in 0..TRIES {
            let (guest, revision) = self
                .read(uuid)?
                .ok_or_else(|| Error::NoSuchGuest(uuid.to_owned()))?;
            let (count, _) = self.kv.count(&held)?;
            if count > 0 {
                return Err(Refusal::GuestHolds {
                    uuid: uuid.to_owned(),
                    count: usize::try_from(count).unwrap_or(usize::MAX),
                }
                .into());
            }
            let when = vec![
                Compare::mod_revision(self.guest_key(uuid), CompareOp::Equal, revision),
                // Still nothing held (a key there has a version above 0).
                Compare::version(held.clone(), CompareOp::Equal, 0).with_prefix(),
            ];
            let mut then = vec![TxnOp::delete(self.guest_key(uuid), None)];
            for pair in [Some(guest.pair), guest.run_pair].into_iter().flatten() {
                then.push(TxnOp::delete(self.pair_key(pair), None));
            }
            if guest.owner != 0 {
                then.push(TxnOp::delete(self.owner_key(guest.owner, uuid), None));
            }
            if self.kv.txn(when, then)? {
                return Ok(());
            }
        }
        Err(contended("forget guest", uuid))
    }
}

fn encode(guest: &Guest) -> Result<Vec<u8>> {
    let record = Record {
        name: guest.name.clone(),
        pair: (guest.pair.low(), guest.pair.high()),
        owner: guest.owner,
        run_pair: guest.run_pair.map(|p| (p.low(), p.high())),
        via_libvirt: guest.via_libvirt,
    };
    serde_json::to_vec(&record).map_err(|e| Error::failed(format!("etcd: a guest's record: {e}")))
}

fn decode(uuid: &str, value: &[u8]) -> Result<Guest> {
    let record: Record = serde_json::from_slice(value)
        .map_err(|e| corrupt(&format!("guest {uuid}'s record ({e})")))?;
    let pair_of = |(low, high): (u16, u16)| {
        Pair::new(low, high).ok_or_else(|| corrupt(&format!("guest {uuid}'s pair c{low},c{high}")))
    };
    Ok(Guest {
        uuid: uuid.to_owned(),
        name: record.name,
        pair: pair_of(record.pair)?,
        owner: record.owner,
        run_pair: record.run_pair.map(pair_of).transpose()?,
        via_libvirt: record.via_libvirt,
    })
}

pub(super) fn corrupt(what: &str) -> Error {
    Error::failed(format!("etcd: {what} is not svirt-pool's"))
}

pub(super) fn contended(what: &str, uuid: &str) -> Error {
    Error::failed(format!(
        "etcd: {what} {uuid}: the store kept changing under {TRIES} tries; try again"
    ))
}
