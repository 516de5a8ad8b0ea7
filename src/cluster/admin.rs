//! What an admin does to the cluster as a whole: see it (`cluster status`), take a
//! fenced host's holds away (`cluster evict`), and bring a host's guests in
//! (`cluster import`).

use std::collections::BTreeMap;
use std::sync::Arc;

use etcd_client::{Compare, CompareOp, TxnOp};
use serde::Serialize;

use super::guests::EtcdGuests;
use super::holds::EtcdHolds;
use super::kv::Kv;
use super::presence::Alive;
use crate::error::{Error, Result};
use crate::registry::{Attachment, Guest, Holds};

/// etcd refuses a transaction of more operations than this (its default
/// `--max-txn-ops`).
const MAX_TXN_OPS: usize = 128;

/// One host as the cluster knows it.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct HostStatus {
    /// Its name.
    pub host: String,
    /// Whether its agent renewed its key within the last lease (15 s).
    pub alive: bool,
    /// What its agent said of itself, while alive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<Alive>,
    /// The attachments of shared volumes it holds.
    pub attachments: usize,
    /// The backing files it holds for them.
    pub backing: usize,
}

/// The cluster at one revision.
#[derive(Serialize, Debug, Clone)]
pub struct ClusterStatus {
    /// The etcd endpoints asked.
    pub endpoints: Vec<String>,
    /// This host's name.
    pub this_host: String,
    /// Every host alive or holding something, by name.
    pub hosts: Vec<HostStatus>,
    /// Guests defined.
    pub guests: usize,
    /// Pairs in use (guests' own, and pairs their domains run with).
    pub pairs_in_use: usize,
    /// The store's revision it was read at.
    pub revision: i64,
}

/// The cluster as it is now.
pub fn status(kv: &Arc<Kv>) -> Result<ClusterStatus> {
    let holds = EtcdHolds::new(kv.clone());
    let (got, revision) = kv.read_prefixes(&[
        kv.key(&["hosts", ""]),
        kv.key(&["guests", ""]),
        kv.key(&["pairs", ""]),
    ])?;
    let mut hosts: BTreeMap<String, HostStatus> = BTreeMap::new();
    let host_prefix = kv.key(&["hosts", ""]).len();
    for (key, value) in &got[0] {
        let name = String::from_utf8_lossy(&key[host_prefix..]).into_owned();
        hosts.insert(
            name.clone(),
            HostStatus {
                host: name,
                alive: true,
                agent: serde_json::from_slice(value).ok(),
                attachments: 0,
                backing: 0,
            },
        );
    }
    for hold in holds.all()? {
        let entry = hosts
            .entry(hold.host.clone())
            .or_insert_with(|| HostStatus {
                host: hold.host.clone(),
                alive: false,
                agent: None,
                attachments: 0,
                backing: 0,
            });
        match hold.via {
            None => entry.attachments += 1,
            Some(_) => entry.backing += 1,
        }
    }
    Ok(ClusterStatus {
        endpoints: kv.settings().endpoints.clone(),
        this_host: kv.settings().host.clone(),
        hosts: hosts.into_values().collect(),
        guests: got[1].len(),
        pairs_in_use: got[2].len(),
        revision,
    })
}

/// Removes every hold of `host` (attachments, backing holds, migration marks), once
/// its agent is not alive: an admin who fenced it (powered it off, cut it from the
/// storage) lets other hosts use what it held. Returns the holds removed.
pub fn evict(kv: &Arc<Kv>, host: &str) -> Result<Vec<Attachment>> {
    if let Some(alive) = kv.get(&kv.key(&["hosts", host]))? {
        let agent: Option<Alive> = serde_json::from_slice(&alive.value).ok();
        return Err(Error::refused(format!(
            "host {host} is alive (its agent{} renewed its key within {} s): fence it \
             first (stop its agent, power it off or cut it from the storage), then evict it",
            agent
                .map(|a| format!(", pid {}", a.pid))
                .unwrap_or_default(),
            super::presence::TTL.as_secs()
        )));
    }
    let holds = EtcdHolds::new(kv.clone());
    let theirs: Vec<_> = holds
        .all()?
        .into_iter()
        .filter(|h| h.host == host)
        .collect();
    let mut writes = Vec::new();
    for hold in &theirs {
        writes.extend(
            holds
                .keys_of(hold)
                .into_iter()
                .map(|k| TxnOp::delete(k, None)),
        );
    }
    // The marks of guests migrating to it.
    let (marks, _) = kv.read_prefixes(&[kv.key(&["migrating", ""])])?;
    let suffix = format!("/{host}");
    for (key, _) in &marks[0] {
        if key.ends_with(suffix.as_bytes()) {
            writes.push(TxnOp::delete(key.clone(), None));
        }
    }
    // Only while it stays dead: a host that comes back meanwhile keeps its holds.
    let dead = || Compare::version(kv.key(&["hosts", host]), CompareOp::Equal, 0);
    for chunk in writes.chunks(MAX_TXN_OPS) {
        if !kv.txn(vec![dead()], chunk.to_vec())? {
            return Err(Error::refused(format!(
                "host {host} came back while it was evicted: some of its holds stay"
            )));
        }
    }
    let me = kv.settings().host.clone();
    Ok(theirs.iter().map(|h| h.attachment(&me)).collect())
}

/// Brings a host's guests into the cluster with the pairs they have: refused, naming
/// every collision, when another guest of the cluster has one of their pairs or the
/// cluster has one of their UUIDs with another pair; a guest the cluster has already
/// with the same pair is left as it is. Returns how many were added.
pub fn import_guests(kv: &Arc<Kv>, local: &[Guest]) -> Result<usize> {
    let cluster = EtcdGuests::new(kv.clone());
    let mut collisions = Vec::new();
    let mut new = Vec::new();
    for g in local {
        if let Some(there) = crate::registry::Guests::guest(&cluster, &g.uuid)? {
            if there.pair != g.pair {
                collisions.push(format!(
                    "guest {} ({}) has pair {} here and {} in the cluster",
                    g.uuid, g.name, g.pair, there.pair
                ));
            }
            continue;
        }
        for pair in [Some(g.pair), g.run_pair].into_iter().flatten() {
            if let Some(holder) = cluster.pair_holder(pair)?
                && holder != g.uuid
            {
                collisions.push(format!(
                    "pair {pair} of guest {} ({}) is guest {holder}'s in the cluster",
                    g.uuid, g.name
                ));
            }
        }
        new.push(g);
    }
    if !collisions.is_empty() {
        return Err(Error::refused(format!(
            "nothing imported: {}",
            collisions.join("; ")
        )));
    }
    for g in &new {
        if !cluster.create(g)? {
            return Err(Error::refused(format!(
                "guest {} or one of its pairs appeared in the cluster during the import: \
                 run it again to see the collision",
                g.uuid
            )));
        }
    }
    Ok(new.len())
}

/// Records `held` (this host's attachments of pools that are now shared, backing holds
/// after their overlays) in the cluster, each under the cluster's rules.
pub fn import_holds(kv: &Arc<Kv>, held: &[Attachment]) -> Result<()> {
    let mut holds = EtcdHolds::new(kv.clone());
    for att in held {
        holds.attach(att)?;
    }
    Ok(())
}
