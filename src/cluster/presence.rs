//! A host's liveness in the cluster, for `svirt-pool cluster status` only: the agent
//! keeps `hosts/HOST` alive under a lease it renews. Holds never depend on it (a lease
//! on holds would let two QEMUs write one disk after a network partition:
//! docs/cluster.md, "Fencing").

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::kv::Kv;
use crate::config::ClusterSettings;
use crate::error::Result;

/// How long a host's key outlives its agent's last renewal.
pub const TTL: Duration = Duration::from_secs(15);

/// What a host's key says about its agent.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Alive {
    /// The agent's process id.
    pub pid: u32,
    /// When it started (seconds since the epoch).
    pub since: u64,
    /// Its version.
    pub version: String,
}

/// This host's key, kept alive by the agent.
pub struct Presence {
    kv: Kv,
    key: Vec<u8>,
    alive: Alive,
    lease: Option<i64>,
}

impl Presence {
    /// The presence of this host (nothing is written until [`Presence::renew`]).
    pub fn new(settings: &ClusterSettings) -> Result<Presence> {
        let kv = Kv::connect(settings)?;
        let key = kv.key(&["hosts", &settings.host]);
        let since = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Presence {
            kv,
            key,
            alive: Alive {
                pid: std::process::id(),
                since,
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            lease: None,
        })
    }

    /// Renews this host's key, or puts it again under a new lease when the old one ran
    /// out (etcd was unreachable longer than [`TTL`]). Whether it was put anew.
    pub fn renew(&mut self) -> Result<bool> {
        if let Some(lease) = self.lease
            && self.kv.keep_alive(lease)?
        {
            return Ok(false);
        }
        let value = serde_json::to_vec(&self.alive).expect("plain fields");
        self.lease = Some(self.kv.put_leased(&self.key, &value, TTL)?);
        Ok(true)
    }
}
