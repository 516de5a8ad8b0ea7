//! Which registry this host uses: the one place the backend is chosen.

mod clustered;
#[cfg(test)]
mod tests;

pub use clustered::Clustered;

use crate::config::Settings;
use crate::error::Result;
use crate::registry::Registry;

/// Opens the registry this host's configuration names: its SQLite state in
/// `state_dir`, and with `[cluster]` the cluster's guests and shared holds in etcd
/// beside it ([`Clustered`]).
pub fn open(settings: &Settings) -> Result<Box<dyn Registry>> {
    let local = crate::state::Store::open(&settings.state_dir)?;
    Ok(match &settings.cluster {
        None => Box::new(local),
        Some(cluster) => Box::new(Clustered::open(local, cluster, settings)),
    })
}
