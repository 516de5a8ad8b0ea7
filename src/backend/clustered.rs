//! The registry of a host in a cluster: guests and the holds of shared pools in etcd,
//! the holds of this host's own pools in its SQLite state, as before.
//!
//! The state keeps a copy of every guest it has used (`Store::mirror_guest`): its own
//! pools' attachments are recorded against it, and still work while etcd cannot be
//! reached. Every change to a guest goes to etcd first and is copied after; a guest
//! read falls back to the copy only when etcd does not answer.

use std::collections::HashSet;

use crate::cluster::{EtcdGuests, EtcdHolds, Kv};
use crate::config::{ClusterSettings, Settings};
use crate::decide::context::{CategorySet, Pair};
use crate::decide::labels::{FileId, Holder, Mode};
use crate::error::{Error, Result};
use crate::registry::{Attachment, Batches, Guest, Guests, HolderIndex, Holds};
use crate::state::Store;

/// The etcd side: connected, or why not.
struct Etcd {
    guests: EtcdGuests,
    holds: EtcdHolds,
}

/// A host's registry in cluster mode.
pub struct Clustered {
    local: Store,
    etcd: std::result::Result<Etcd, String>,
    /// The names of the shared pools (their holds are in etcd).
    shared: HashSet<String>,
}

impl Clustered {
    /// The registry over `local` and the cluster `cluster` names. A cluster that cannot
    /// be reached is not an error here: each cluster operation then fails naming etcd,
    /// and this host's own pools keep working.
    pub fn open(local: Store, cluster: &ClusterSettings, settings: &Settings) -> Clustered {
        let shared = settings
            .pools
            .iter()
            .filter(|p| p.shared)
            .map(|p| p.name.clone())
            .collect();
        Clustered::with_shared(local, cluster, shared)
    }

    /// The same with the names of the shared pools given.
    pub fn with_shared(
        local: Store,
        cluster: &ClusterSettings,
        shared: HashSet<String>,
    ) -> Clustered {
        let etcd = Kv::shared(cluster)
            .map(|kv| Etcd {
                guests: EtcdGuests::new(kv.clone()),
                holds: EtcdHolds::new(kv),
            })
            .map_err(|e| e.to_string());
        Clustered {
            local,
            etcd,
            shared,
        }
    }

    fn etcd(&self) -> Result<&Etcd> {
        self.etcd.as_ref().map_err(|e| Error::failed(e.clone()))
    }

    fn etcd_mut(&mut self) -> Result<&mut Etcd> {
        self.etcd.as_mut().map_err(|e| Error::failed(e.clone()))
    }

    fn is_shared(&self, pool: &str) -> bool {
        self.shared.contains(pool)
    }

    /// Copies the cluster's record of `uuid` into the state (or drops the copy when
    /// the cluster has none).
    fn mirror(&mut self, uuid: &str) -> Result<()> {
        match self.etcd()?.guests.guest(uuid)? {
            Some(guest) => self.local.mirror_guest(&guest),
            None => self.local.unmirror_guest(uuid),
        }
    }

    /// Before this host's own pool records an attachment of `uuid`: the copy made
    /// current, or left as it is while etcd does not answer.
    fn mirror_for_local(&mut self, uuid: &str) -> Result<()> {
        match self.mirror(uuid) {
            Err(Error::Failed(why)) => {
                tracing::warn!(guest = uuid, %why, "etcd: using this host's copy of the guest");
                Ok(())
            }
            other => other,
        }
    }
}

/// A read from etcd, or this host's copy while etcd does not answer.
fn or_local<T>(what: &str, cluster: Result<T>, local: impl FnOnce() -> Result<T>) -> Result<T> {
    match cluster {
        Err(Error::Failed(why)) => {
            tracing::warn!(%why, "etcd: {what} from this host's copy");
            local()
        }
        other => other,
    }
}

impl Guests for Clustered {
    fn define_guest(
        &mut self,
        uuid: &str,
        name: Option<&str>,
        categories: &CategorySet,
        owner: u32,
        quota: u32,
    ) -> Result<(Guest, bool)> {
        let defined = self
            .etcd_mut()?
            .guests
            .define_guest(uuid, name, categories, owner, quota)?;
        self.local.mirror_guest(&defined.0)?;
        Ok(defined)
    }

    fn take_over_guest(&mut self, uuid: &str, categories: &CategorySet) -> Result<Option<u32>> {
        let taken = self.etcd_mut()?.guests.take_over_guest(uuid, categories)?;
        self.mirror(uuid)?;
        Ok(taken)
    }

    fn guest(&self, uuid: &str) -> Result<Option<Guest>> {
        // A batch's guests were read with it (`prefetch`).
        if let Some(g) = self
            .etcd
            .as_ref()
            .ok()
            .and_then(|e| e.holds.kept_guest(uuid))
        {
            return Ok(Some(g));
        }
        let cluster = self.etcd().and_then(|e| e.guests.guest(uuid));
        or_local("a guest", cluster, || self.local.guest(uuid))
    }

    fn guests_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<Guest>> {
        let cluster = self.etcd().and_then(|e| e.guests.guests_page(after, limit));
        or_local("guests", cluster, || self.local.guests_page(after, limit))
    }

    fn guests(&self) -> Result<Vec<Guest>> {
        let cluster = self.etcd().and_then(|e| e.guests.guests());
        or_local("guests", cluster, || self.local.guests())
    }

    fn set_run_pair(&mut self, uuid: &str, pair: Option<Pair>) -> Result<()> {
        self.etcd_mut()?.guests.set_run_pair(uuid, pair)?;
        self.mirror(uuid)
    }

    fn mark_via_libvirt(&mut self, uuid: &str) -> Result<()> {
        self.etcd_mut()?.guests.mark_via_libvirt(uuid)?;
        self.mirror(uuid)
    }

    fn libvirt_guests(&self) -> Result<Vec<Guest>> {
        let cluster = self.etcd().and_then(|e| e.guests.libvirt_guests());
        or_local("libvirt's guests", cluster, || self.local.libvirt_guests())
    }

    fn forget_guest(&mut self, uuid: &str) -> Result<()> {
        // This host's holds first (the copy refuses while it holds something here),
        // then the cluster's record (refused while it holds a shared volume anywhere).
        let here = self.local.attachments(Some(uuid))?;
        if !here.is_empty() {
            return Err(crate::error::Refusal::GuestHolds {
                uuid: uuid.to_owned(),
                count: here.len(),
            }
            .into());
        }
        self.etcd_mut()?.guests.forget_guest(uuid)?;
        self.local.unmirror_guest(uuid)
    }
}

impl Holds for Clustered {
    fn holders(&self, pool: &str, volume: &[u8]) -> Result<Vec<Holder>> {
        if self.is_shared(pool) {
            self.etcd()?.holds.holders(pool, volume)
        } else {
            self.local.holders(pool, volume)
        }
    }

    fn holder_index(&self) -> Result<HolderIndex> {
        let mut index = self.local.holder_index()?;
        index.retain(|pool, _| !self.is_shared(pool));
        if !self.shared.is_empty() {
            index.extend(self.etcd()?.holds.holder_index()?);
        }
        Ok(index)
    }

    fn holder_index_available(&self) -> Result<(HolderIndex, Vec<String>)> {
        let mut index = self.local.holder_index()?;
        index.retain(|pool, _| !self.is_shared(pool));
        if self.shared.is_empty() {
            return Ok((index, Vec::new()));
        }
        match self.etcd().and_then(|e| e.holds.holder_index()) {
            Ok(shared) => {
                index.extend(shared);
                Ok((index, Vec::new()))
            }
            Err(Error::Failed(why)) => {
                tracing::warn!(%why, "etcd: the shared pools' holders cannot be read: their labels are left as they are");
                let mut unknown: Vec<String> = self.shared.iter().cloned().collect();
                unknown.sort();
                Ok((index, unknown))
            }
            Err(e) => Err(e),
        }
    }

    fn attachments(&self, guest: Option<&str>) -> Result<Vec<Attachment>> {
        let mut all = self.local.attachments(guest)?;
        if !self.shared.is_empty() {
            all.extend(self.etcd()?.holds.attachments(guest)?);
        }
        Ok(all)
    }

    fn attach(&mut self, att: &Attachment) -> Result<Option<Mode>> {
        if self.is_shared(&att.pool) {
            return self.etcd_mut()?.holds.attach(att);
        }
        self.mirror_for_local(&att.guest)?;
        self.local.attach(att)
    }

    fn attach_overlay(
        &mut self,
        att: &Attachment,
        chain: &[(Vec<u8>, Option<FileId>)],
    ) -> Result<Option<Mode>> {
        if self.is_shared(&att.pool) {
            return self.etcd_mut()?.holds.attach_overlay(att, chain);
        }
        self.mirror_for_local(&att.guest)?;
        self.local.attach_overlay(att, chain)
    }

    fn detach(
        &mut self,
        guest: &str,
        pool: &str,
        volume: &[u8],
    ) -> Result<(Option<Mode>, Vec<Attachment>)> {
        if self.is_shared(pool) {
            self.etcd_mut()?.holds.detach(guest, pool, volume)
        } else {
            self.local.detach(guest, pool, volume)
        }
    }

    fn release_pins(&mut self, pool: &str, volume: &[u8], owner: u32) -> Result<Vec<Attachment>> {
        if self.is_shared(pool) {
            self.etcd_mut()?.holds.release_pins(pool, volume, owner)
        } else {
            self.local.release_pins(pool, volume, owner)
        }
    }

    fn release(&mut self, guest: &str) -> Result<Vec<Attachment>> {
        // This host's holds: of its own pools (if it ever held any), and of shared ones.
        let mut released = match self.local.release(guest) {
            Ok(held) => held,
            Err(Error::NoSuchGuest(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        if !self.shared.is_empty() {
            released.extend(self.etcd_mut()?.holds.release(guest)?);
        }
        released.sort_by_key(|a| a.via.is_some());
        Ok(released)
    }

    fn prefetch(&mut self, guests: &[&str], volumes: &[(&str, &[u8])]) -> Result<()> {
        let shared: Vec<(&str, &[u8])> = volumes
            .iter()
            .filter(|(pool, _)| self.is_shared(pool))
            .copied()
            .collect();
        if shared.is_empty() {
            return Ok(());
        }
        self.etcd_mut()?.holds.prefetch(guests, &shared)
    }

    fn begin_migration(&mut self, guest: &str) -> Result<()> {
        self.etcd_mut()?.holds.begin_migration(guest)
    }

    fn end_migration(&mut self, guest: &str) -> Result<()> {
        self.etcd_mut()?.holds.end_migration(guest)
    }
}

/// A batch is one transaction of this host's state and one of etcd: the holds of
/// shared pools are checked call by call, each against what the batch wrote before it,
/// and committed together, every comparison the calls made in one transaction.
impl Batches for Clustered {
    fn begin_batch(&mut self) -> Result<()> {
        if let Ok(etcd) = self.etcd.as_mut() {
            etcd.holds.keep_guests();
            etcd.holds.begin();
        }
        self.local.begin_batch()
    }

    fn commit_batch(&mut self) -> Result<()> {
        // The cluster's part first: when another host changed what the batch read,
        // neither part is kept and the batch is tried again ([`Error::Conflict`]).
        if let Ok(etcd) = self.etcd.as_mut()
            && let Err(e) = etcd.holds.finish()
        {
            self.local.rollback_batch();
            return Err(e);
        }
        self.local.commit_batch()
    }

    fn in_batch(&self) -> bool {
        self.local.in_batch()
    }

    fn rollback_batch(&mut self) {
        if let Ok(etcd) = self.etcd.as_mut() {
            etcd.holds.discard();
        }
        self.local.rollback_batch()
    }
}
