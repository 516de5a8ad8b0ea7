//! The backing chain of an overlay being attached: found (refused when it leads
//! astray), checked against the caller's own rights, and labeled with the overlay.

use std::path::PathBuf;

use rustix::fs::OFlags;

use super::locate::Volume;
use super::{Caller, access, file_of};
use crate::config::{DirPoolId, Settings};
use crate::error::{Error, Result};
use crate::observe::chain::{self, Link};
use crate::reconcile::{NotLabeled, Reconciler};
use crate::registry::Registry;

/// The backing chain of a dir-pool volume the caller opened (`node`), resolved beneath
/// its pool; a chain that leaves the pool, loops or is too deep is refused, naming the
/// link.
pub(super) fn chain_of(
    rec: &mut Reconciler<'_>,
    vol: &Volume,
    (pool, rel): (DirPoolId, &std::path::Path),
    node: &crate::fsys::Node,
) -> Result<Vec<Link>> {
    let dir = rec.settings().dir_pool(pool);
    let root = rec.root(pool.index()).map_err(Error::failed)?;
    chain::opened_chain(root, &dir.path, rel, node, dir.cross_filesystems)
        .map_err(|e| Error::refused(format!("cannot attach {}: {e}", vol.shown)))
}

/// Refuses an overlay whose backing files `caller` may not read itself: attaching it
/// gives the guest read access to all of them.
pub(super) fn check_chain_readable(
    settings: &Settings,
    caller: Caller,
    (pool, vol): (DirPoolId, &Volume),
    chain: &[Link],
) -> Result<()> {
    let dir = settings.dir_pool(pool);
    for link in chain {
        let fd = access::open_as(
            caller,
            &dir.path,
            &link.rel,
            dir.cross_filesystems,
            OFlags::RDONLY | OFlags::NONBLOCK,
        )?;
        if file_of(&fd)? != link.file {
            return Err(Error::refused(format!(
                "backing file {} of {} was replaced while it was being attached",
                link.rel.display(),
                vol.shown
            )));
        }
    }
    Ok(())
}

/// A backing file that did not get the label its holds ask for.
#[derive(Debug, thiserror::Error)]
#[error("backing file {}: {why}", .rel.display())]
pub(super) struct ChainUnlabeled {
    /// Its path below the pool root.
    rel: PathBuf,
    /// Why.
    why: NotLabeled,
}

/// Labels the backing files of an overlay after its holds changed; the first that does
/// not get its label, and why.
pub(super) fn label_chain(
    rec: &mut Reconciler<'_>,
    store: &dyn Registry,
    pool: usize,
    chain: &[Link],
) -> Result<std::result::Result<(), ChainUnlabeled>> {
    let name = &rec.settings().pools[pool].name.clone();
    for link in chain {
        let key = link.rel.as_os_str().as_encoded_bytes();
        let ex = rec.reconcile_path(pool, &link.rel, &store.holders(name, key)?);
        if let Err(why) = ex.labeled() {
            return Ok(Err(ChainUnlabeled {
                rel: link.rel.clone(),
                why,
            }));
        }
    }
    Ok(Ok(()))
}
