//! Which registry this host uses: the one place the backend is chosen.

use crate::config::Settings;
use crate::error::Result;
use crate::registry::Registry;

/// Opens the registry this host's configuration names (today: the SQLite state in
/// `state_dir`).
pub fn open(settings: &Settings) -> Result<Box<dyn Registry>> {
    Ok(Box::new(crate::state::Store::open(&settings.state_dir)?))
}
