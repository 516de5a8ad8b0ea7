//! Putting labels back after holds are removed: released volumes and backing files go
//! to the label their remaining holders (or none) give them; every failure is reported.

use super::settle::label_settled;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::reconcile::{Apply, NotLabeled, Outcome, Reconciler};
use crate::registry::{Attachment, Registry};

/// A released volume whose label could not be restored, and why.
#[derive(Debug, thiserror::Error)]
#[error("{location} {}: {why}", .attachment.volume.escape_ascii())]
pub struct Unrestored<'a> {
    /// The attachment that was removed.
    pub attachment: &'a Attachment,
    /// Where its pool is (a directory, or `VG name`).
    pub location: String,
    /// Why its label is not the resting one.
    pub why: NotLabeled,
}

/// Relabels volumes whose attachments were just removed (the lock must be held); tries
/// every one and returns those whose label could not be restored.
pub fn restore_each<'a>(
    settings: &Settings,
    store: &dyn Registry,
    released: &'a [Attachment],
) -> Result<Vec<Unrestored<'a>>> {
    let mut rec = Reconciler::new(settings, Apply::Write);
    let mut failures = Vec::new();
    for att in released {
        let Some(idx) = settings.pools.iter().position(|p| p.name == att.pool) else {
            tracing::warn!(pool = %att.pool, "released a volume of a pool that is no longer configured");
            continue;
        };
        let ex = label_settled(settings, store, idx, &att.volume, &mut |holders| {
            rec.reconcile_volume(idx, &att.volume, holders)
        })?;
        if let (false, Err(why)) = (ex.outcome == Outcome::Missing, ex.labeled()) {
            failures.push(Unrestored {
                attachment: att,
                location: settings.pools[idx].location(),
                why,
            });
        }
    }
    Ok(failures)
}

/// Relabels volumes whose attachments were just removed (the lock must be held).
///
/// Tries every volume and reports every failure, not only the first.
pub fn restore_released(
    settings: &Settings,
    store: &dyn Registry,
    released: &[Attachment],
) -> Result<()> {
    let failures = restore_each(settings, store, released)?;
    if failures.is_empty() {
        return Ok(());
    }
    Err(Error::failed(format!(
        "released, but some labels could not be restored: {}",
        list(&failures)
    )))
}

/// Every failure on one line (an error message is one line in logs and replies).
pub fn list(failures: &[Unrestored<'_>]) -> String {
    let shown: Vec<String> = failures.iter().map(ToString::to_string).collect();
    shown.join("; ")
}

/// Labels what [`crate::registry::Holds::release_pins`] took from members, after its commit, and says
/// so: a member's guest lost a file it held by read access alone (an overlay on the
/// file with it). `skip` is the volume the caller labels itself (or deleted). A failure
/// is logged, not returned: the owner's change is done by then.
pub(crate) fn relabel_released(
    store: &dyn Registry,
    rec: &mut crate::reconcile::Reconciler<'_>,
    pool: usize,
    skip: &[u8],
    released: &[crate::registry::Attachment],
) {
    for a in released {
        tracing::warn!(guest = %a.guest, pool = %a.pool,
            volume = %crate::logname(std::os::unix::ffi::OsStrExt::from_bytes(&a.volume)),
            mode = %a.mode, "released a member's read-only hold: the file's owner or root took it");
        if a.volume == skip {
            continue;
        }
        match store.holders(&a.pool, &a.volume) {
            Ok(holders) => {
                rec.reconcile_volume(pool, &a.volume, &holders);
            }
            Err(e) => {
                tracing::error!(pool = %a.pool, error = %e, "cannot relabel a released volume")
            }
        }
    }
}
