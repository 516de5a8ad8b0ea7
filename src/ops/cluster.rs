//! `svirt-pool cluster …`: the cluster as a whole, for an admin (docs/cluster.md).

use std::sync::Arc;

use crate::backend;
use crate::cluster::Kv;
use crate::cluster::admin::{self, ClusterStatus};
use crate::config::{ClusterSettings, Settings};
use crate::error::{Error, Result};
use crate::lock;
use crate::reconcile::{Apply, Reconciler};
use crate::registry::{Attachment, Guests};
use crate::state::Store;

use super::settle::label_settled;

fn cluster(settings: &Settings) -> Result<&ClusterSettings> {
    settings.cluster.as_ref().ok_or_else(|| {
        Error::Usage(format!(
            "{} has no [cluster] section: this host is not in a cluster",
            settings.source.display()
        ))
    })
}

fn connect(settings: &Settings) -> Result<Arc<Kv>> {
    Kv::shared(cluster(settings)?)
}

/// Hosts, their liveness and holds, guests and pairs in use.
pub fn status(settings: &Settings) -> Result<ClusterStatus> {
    admin::status(&connect(settings)?)
}

/// What `cluster evict` did.
#[derive(Debug, serde::Serialize)]
pub struct Evicted {
    /// The host evicted.
    pub host: String,
    /// The holds removed.
    pub holds: usize,
    /// The shared dir pools' volumes relabeled for the holders left (a shared LV's
    /// nodes are each host's own: the dead host's are not relabeled from here).
    pub relabeled: Vec<String>,
}

/// Removes a fenced host's holds and labels the shared files it held for the holders
/// left (refused while the host is alive).
pub fn evict(settings: &Settings, host: &str) -> Result<Evicted> {
    let kv = connect(settings)?;
    if host == kv.settings().host {
        return Err(Error::Usage(format!(
            "{host} is this host: evict another host, from a host that runs"
        )));
    }
    let removed = admin::evict(&kv, host)?;
    tracing::warn!(
        host,
        holds = removed.len(),
        "evicted a host's holds from the cluster"
    );
    let _lock = lock::acquire(&settings.state_dir)?;
    let store = backend::open(settings)?;
    let mut rec = Reconciler::new(settings, Apply::Write);
    let mut relabeled = Vec::new();
    let mut volumes: Vec<(&str, &[u8])> = removed
        .iter()
        .map(|a| (a.pool.as_str(), a.volume.as_slice()))
        .collect();
    volumes.sort();
    volumes.dedup();
    for (pool, volume) in volumes {
        let Some(idx) = settings.pools.iter().position(|p| p.name == pool) else {
            continue;
        };
        if settings.pools[idx].dir().is_none() {
            continue;
        }
        let ex = label_settled(settings, &*store, idx, volume, &mut |holders| {
            rec.reconcile_volume(idx, volume, holders)
        })?;
        if let Err(why) = ex.labeled() {
            tracing::warn!(pool, volume = %volume.escape_ascii(), %why, "cannot relabel after the eviction");
        }
        relabeled.push(format!("{pool}:{}", volume.escape_ascii()));
    }
    Ok(Evicted {
        host: host.to_owned(),
        holds: removed.len(),
        relabeled,
    })
}

/// What `cluster import` did.
#[derive(Debug, serde::Serialize)]
pub struct Imported {
    /// Guests added to the cluster (those it had already, with the same pair, are not).
    pub guests: usize,
    /// Holds of pools now shared moved from this host's state into the cluster.
    pub holds: usize,
}

/// Brings this host's guests (with their pairs) and its holds of pools now marked
/// `shared` into the cluster; refused, naming every collision, before anything changes.
pub fn import(settings: &Settings) -> Result<Imported> {
    let kv = connect(settings)?;
    let _lock = lock::acquire(&settings.state_dir)?;
    let mut local = Store::open(&settings.state_dir)?;
    let guests = local.guests()?;
    let added = admin::import_guests(&kv, &guests)?;
    let mut moved = 0;
    for pool in settings.pools.iter().filter(|p| p.shared) {
        let held: Vec<Attachment> = local.holds_of_pool(&pool.name)?;
        admin::import_holds(&kv, &held)?;
        local.forget_pool_holds(&pool.name)?;
        moved += held.len();
    }
    tracing::info!(
        guests = added,
        holds = moved,
        "imported this host's state into the cluster"
    );
    Ok(Imported {
        guests: added,
        holds: moved,
    })
}
