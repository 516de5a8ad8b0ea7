//! Labeling a volume of a shared dir pool while other hosts may label it too.
//!
//! A shared dir pool's label is on the shared filesystem: every host writes the one
//! label, each from the holders it read. Host a may read the holders, host b commit a
//! new hold and write its label, and a's write, from the older read, land last. So a
//! host reads the holders again after its write and writes again while they changed:
//! whichever host writes last has read after its write, and the label it leaves is
//! the one the holders give. A host's own pools (and each host's node of a shared
//! LV) have one writer: one read, one write.
//!
//! A batch of calls checks all its volumes in one read once every label is written
//! ([`Settler`]); a call alone checks its own ([`label_settled`]).

use crate::config::Settings;
use crate::decide::labels::Holder;
use crate::error::Result;
use crate::reconcile::{Examined, Reconciler};
use crate::registry::Registry;

/// How many times a label is written while the holders keep changing under it; the
/// agents' rescans (and the next change) converge what is left.
const ROUNDS: usize = 8;

/// Labels written for the holders read, to be checked again together.
#[derive(Default)]
pub(crate) struct Settler {
    /// Pool index, volume key, the holders its label was written for.
    written: Vec<(usize, Vec<u8>, Vec<Holder>)>,
}

impl Settler {
    /// Labels volume `key` of pool `idx` with `label`, given its holders, and keeps
    /// what it was written for when another host may write it too.
    pub(crate) fn label(
        &mut self,
        settings: &Settings,
        store: &dyn Registry,
        idx: usize,
        key: &[u8],
        label: &mut dyn FnMut(&[Holder]) -> Examined,
    ) -> Result<Examined> {
        let pool = &settings.pools[idx];
        let holders = store.holders(&pool.name, key)?;
        let ex = label(&holders);
        if pool.shared && pool.dir().is_some() {
            self.written.push((idx, key.to_vec(), holders));
        }
        Ok(ex)
    }

    /// Reads the holders of every volume labeled (at once) and labels again, by name,
    /// those whose holders changed, until none did.
    pub(crate) fn settle(
        mut self,
        settings: &Settings,
        store: &mut dyn Registry,
        rec: &mut Reconciler<'_>,
    ) -> Result<()> {
        for _ in 0..ROUNDS {
            if self.written.is_empty() {
                break;
            }
            let volumes: Vec<(&str, &[u8])> = self
                .written
                .iter()
                .map(|(idx, key, _)| (settings.pools[*idx].name.as_str(), key.as_slice()))
                .collect();
            store.prefetch(&[], &volumes)?;
            let mut again = Vec::new();
            for (idx, key, used) in std::mem::take(&mut self.written) {
                let now = store.holders(&settings.pools[idx].name, &key)?;
                if now != used {
                    tracing::debug!(pool = %settings.pools[idx].name, volume = %key.escape_ascii(),
                        "holders changed while labeling: labeling again");
                    rec.reconcile_volume(idx, &key, &now);
                    again.push((idx, key, now));
                }
            }
            self.written = again;
        }
        Ok(())
    }
}

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
    let mut first = Settler::default();
    let mut ex = first.label(settings, store, idx, key, label)?;
    // Nothing kept: no other host writes this label.
    let Some((_, _, mut holders)) = first.written.pop() else {
        return Ok(ex);
    };
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
