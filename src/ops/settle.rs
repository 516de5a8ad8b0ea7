//! Labeling a volume of a shared dir pool while other hosts may label it too.
//!
//! A shared dir pool's label is on the shared filesystem: every host writes the one
//! label, each from the holders it read. Host a may read the holders, host b commit a
//! new hold and write its label, and a's write, from the older read, land last. So a
//! host reads the holders again after its write and writes again while they changed:
//! whichever host writes last has read after its write, and the label it leaves is
//! the one the holders give. A host's own pools (and each host's node of a shared
//! LV) have one writer: one read, one write.

use crate::config::Settings;
use crate::decide::labels::Holder;
use crate::error::Result;
use crate::reconcile::Examined;
use crate::registry::Registry;

/// How many times a label is written while the holders keep changing under it; the
/// agents' rescans (and the next change) converge what is left.
const ROUNDS: usize = 8;

/// Labels volume `key` of pool `idx` with `label`, given its holders, until the
/// holders read after a write are the ones it was written for.
pub(crate) fn label_settled(
    settings: &Settings,
    store: &dyn Registry,
    idx: usize,
    key: &[u8],
    label: &mut dyn FnMut(&[Holder]) -> Examined,
) -> Result<Examined> {
    let pool = &settings.pools[idx];
    let mut holders = store.holders(&pool.name, key)?;
    let mut ex = label(&holders);
    if !(pool.shared && pool.dir().is_some()) {
        return Ok(ex);
    }
    for _ in 1..ROUNDS {
        let now = store.holders(&pool.name, key)?;
        if now == holders {
            break;
        }
        tracing::debug!(pool = %pool.name, volume = %key.escape_ascii(),
            "holders changed while labeling: labeling again");
        holders = now;
        ex = label(&holders);
    }
    Ok(ex)
}
