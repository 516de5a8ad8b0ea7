//! The picker's view of a pool: one page of volumes in name order with what a storage
//! dialog shows (size, format, capacity, allocation, backing chain, who uses it), and
//! the pool's own space.
//!
//! A page costs the same wherever it starts: the walk goes down the directories on
//! the way to the cursor and on from there, each read and sorted on its own, and stops
//! when the page is full; it never reads the whole pool. A directory's sorted listing
//! is kept for the next page while the directory is unchanged (`recent`).

mod dir;
mod recent;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, OFlags};

use super::locate::{volume_address, volume_from_address};
use super::report::{note_of, shown_holders, state_of};
use super::{Caller, access, shown};
use crate::backend;
use crate::config::{PoolKind, Settings};
use crate::error::{Error, Result};
use crate::fsys::{self, NodeKind, OpenError};
use crate::lock;
use crate::model::Volume;
use crate::observe::image::Format;
use crate::observe::{devices, lvm};
use crate::reconcile::{self, Apply, Examined, Found, Outcome, Reconciler};
use dir::{file_facts, sorted_walk};

/// Which volumes a page lists.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Names (paths below the pool root, or `VG/LV`) starting with this.
    pub prefix: Option<String>,
    /// Of this format (`qcow2`, `raw`, `iso`, …).
    pub format: Option<String>,
    /// In this state: `free`, `attached` (by anyone), `rw`, `ro`, `shared`, `drift`.
    pub state: Option<String>,
}

/// The states a filter may ask for.
pub const STATES: [&str; 6] = ["free", "attached", "rw", "ro", "shared", "drift"];

/// A filter refused before anything is listed: the parameter and why.
#[derive(Debug, thiserror::Error)]
#[error("{parameter}: {reason}")]
pub struct BadFilter {
    /// `prefix`, `format` or `state`.
    pub parameter: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Longest name prefix accepted (PATH_MAX).
const MAX_PREFIX_BYTES: usize = 4096;

impl Filter {
    /// A filter from a request's values, each checked (the API and the CLI both build
    /// it here).
    pub fn new(
        prefix: Option<String>,
        format: Option<String>,
        state: Option<String>,
    ) -> Result<Filter, BadFilter> {
        let bad = |parameter, reason| Err(BadFilter { parameter, reason });
        if let Some(f) = &format
            && Format::from_name(f).is_none()
        {
            return bad(
                "format",
                format!("{f:?} is not one of raw, qcow2, iso, vmdk, vdi, vhdx"),
            );
        }
        if let Some(st) = &state
            && !STATES.contains(&st.as_str())
        {
            return bad(
                "state",
                format!("{st:?} is not one of {}", STATES.join(", ")),
            );
        }
        if prefix.as_ref().is_some_and(|p| p.len() > MAX_PREFIX_BYTES) {
            return bad("prefix", format!("longer than {MAX_PREFIX_BYTES} bytes"));
        }
        Ok(Filter {
            prefix,
            format,
            state,
        })
    }

    fn accepts(&self, v: &Volume) -> bool {
        let prefix = self.prefix.as_deref().is_none_or(|p| v.name.starts_with(p));
        let format = self
            .format
            .as_deref()
            .is_none_or(|f| v.format.as_deref() == Some(f));
        let state = match self.state.as_deref() {
            None => true,
            Some("free") => v.holders.is_empty(),
            Some("attached") => !v.holders.is_empty(),
            Some("drift") => v.drift,
            Some(mode) => v.holders.iter().any(|h| h.mode == mode),
        };
        prefix && format && state
    }
}

/// One page of volumes and the cursor of the next (`None`: this was the last).
#[derive(Clone, Debug)]
pub struct Page {
    /// The volumes, in name order.
    pub volumes: Vec<Volume>,
    /// Pass as `after` for the next page.
    pub next: Option<String>,
}

/// Up to `limit` volumes of pool `pool` after the volume named `after` (a `next` from an
/// earlier page), that `filter` accepts, and that `viewer` could list itself: a
/// directory it may not read and search is left out with everything below it (root
/// sees all). Writes nothing.
pub fn page(
    settings: &Settings,
    viewer: Caller,
    pool: &str,
    after: Option<&str>,
    limit: usize,
    filter: &Filter,
) -> Result<Page> {
    let idx = settings
        .pools
        .iter()
        .position(|p| p.name == pool)
        .ok_or_else(|| Error::NoSuchPool(pool.to_owned()))?;
    lock::ensure_state_dir(&settings.state_dir)?;
    let store = backend::open(settings)?;
    // Every holder of the pool in one query (attachments are few; files are many).
    let index = store.holder_index()?;
    let no_holders = HashMap::new();
    let held = index.get(pool).unwrap_or(&no_holders);
    let holders_of = |key: &[u8]| held.get(key).map_or(&[][..], Vec::as_slice);
    // Guest names for the holders met on this page only (not every guest per page).
    let names = std::cell::RefCell::new(HashMap::<String, String>::new());
    let shown = |holders: &[crate::decide::labels::Holder]| -> Result<Vec<crate::model::Holder>> {
        for h in holders {
            if !names.borrow().contains_key(&h.guest) {
                let name = store.guest(&h.guest)?.map(|g| g.name).unwrap_or_default();
                names.borrow_mut().insert(h.guest.clone(), name);
            }
        }
        Ok(shown_holders(holders, &names.borrow()))
    };
    let mut rec = Reconciler::new(settings, Apply::Inspect);
    let mut volumes = Vec::new();
    let mut take = |v: Volume| {
        if filter.accepts(&v) {
            volumes.push(v);
        }
        // One more than asked tells whether there is a next page.
        if volumes.len() > limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    match &settings.pools[idx].kind {
        PoolKind::Dir(dir) => {
            // The cursor is the last volume's address: its path below the pool root.
            let after = match after {
                None => PathBuf::new(),
                Some(a) => volume_from_address(a)?
                    .strip_prefix(&dir.path)
                    .map(Path::to_path_buf)
                    .map_err(|_| {
                        Error::Usage(format!("after {a:?} is not a volume of pool {pool}"))
                    })?,
            };
            let root = fsys::open_pool_root(&dir.path)
                .map_err(|e| Error::failed(format!("pool {pool}: {}: {e}", dir.path.display())))?;
            let cursor: Vec<&OsStr> = after.iter().collect();
            let (cross_fs, dir_pool) = (dir.cross_filesystems, dir);
            let mut visit = |rel: &Path, dir: BorrowedFd<'_>, name: &OsStr, dtype: FileType| {
                let holders = holders_of(rel.as_os_str().as_bytes());
                // Each volume is opened once: its label and its facts read through it.
                let node = match fsys::open_entry(dir, name, dtype, cross_fs) {
                    Ok(node) => node,
                    // Removed since the directory was read: not a volume any more.
                    Err(OpenError::Missing) => return Ok(ControlFlow::Continue(())),
                    Err(e) => {
                        let ex = reconcile::unreachable_entry(e);
                        return Ok(take(describe(settings, idx, rel, &ex, shown(holders)?)));
                    }
                };
                let found = Found {
                    dir,
                    name,
                    node: &node,
                };
                let ex = rec.reconcile_found(idx, rel, found, holders);
                let mut v = describe(settings, idx, rel, &ex, shown(holders)?);
                file_facts(dir_pool, root.as_fd(), rel, &node, &mut v);
                Ok(take(v))
            };
            // Stopped early (page full) or not: the page says which by its length.
            // Whether the viewer could list a directory itself: open it for reading as the
            // viewer (the kernel checks search on the way and read on it, ACLs too).
            let pool_path = dir.path.clone();
            let mut may_list = |rel: &Path| {
                viewer.is_root() || {
                    let rel = if rel.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        rel
                    };
                    access::open_as(
                        viewer,
                        &pool_path,
                        rel,
                        cross_fs,
                        OFlags::RDONLY | OFlags::DIRECTORY,
                    )
                    .is_ok()
                }
            };
            let _full = sorted_walk(
                root.as_fd(),
                Path::new(""),
                &cursor,
                dir.cross_filesystems,
                &mut may_list,
                &mut visit,
            )?
            .is_break();
        }
        PoolKind::Lvm(l) => {
            let mut lvs = lvm::invoke_lvs(&l.vg, &l.lvm_args).map_err(Error::failed)?;
            lvs.sort_by(|a, b| a.name.cmp(&b.name));
            let nodes = devices::enumerate(&|vg| vg == l.vg)
                .map_err(|e| Error::failed(format!("udev enumeration: {e}")))?;
            let after_lv = after.map(|a| a.rsplit('/').next().unwrap_or(a).to_owned());
            for lv in lvs
                .iter()
                .filter(|lv| after_lv.as_deref().is_none_or(|a| lv.name.as_str() > a))
            {
                let holders = holders_of(lv.uuid.as_bytes());
                let node = nodes.iter().find(|n| n.lv_uuid == lv.uuid);
                let ex = node.map(|n| rec.reconcile_lv_node(idx, n, holders));
                let name = format!("{}/{}", lv.vg, lv.name);
                let holders_shown = shown(holders)?;
                let mut v = match &ex {
                    Some(ex) => describe_lv(&name, ex, holders_shown),
                    None => inactive(&name, holders_shown),
                };
                v.path = node.map(|n| super::shown(&n.devnode)).unwrap_or_default();
                v.format = Some(Format::Raw.as_str().into());
                (v.size, v.capacity, v.allocation) = (Some(lv.size), Some(lv.size), Some(lv.size));
                if take(v).is_break() {
                    break;
                }
            }
        }
    }
    let more = volumes.len() > limit;
    volumes.truncate(limit);
    let next = more
        .then(|| volumes.last().map(|v| v.address.clone()))
        .flatten();
    Ok(Page { volumes, next })
}

/// A dir-pool volume as the reconciler found it (inspecting), with its holders.
fn describe(
    settings: &Settings,
    idx: usize,
    rel: &Path,
    ex: &Examined,
    holders: Vec<crate::model::Holder>,
) -> Volume {
    let path = settings.pools[idx].entry_path(rel);
    let mut v = describe_lv(&shown(rel), ex, holders);
    v.path = shown(&path);
    v.address = volume_address(&path);
    v
}

/// An LV without a node: nothing to read but its name and holders.
fn inactive(name: &str, holders: Vec<crate::model::Holder>) -> Volume {
    let ex = Examined {
        kind: NodeKind::BlockDevice,
        current: None,
        desired: None,
        outcome: Outcome::Missing,
        file: None,
    };
    let mut v = describe_lv(name, &ex, holders);
    v.note = Some("inactive".into());
    v
}

/// A volume named `name` (also its address: `VG/LV`) as the reconciler found it.
fn describe_lv(name: &str, ex: &Examined, holders: Vec<crate::model::Holder>) -> Volume {
    let mut used_by: Vec<String> = holders.iter().map(crate::model::Holder::shown).collect();
    used_by.dedup();
    Volume {
        name: name.to_owned(),
        path: String::new(),
        address: name.to_owned(),
        size: None,
        format: None,
        capacity: None,
        allocation: None,
        backing: Vec::new(),
        used_by,
        current_label: ex.current.clone(),
        desired_label: ex.desired.as_ref().map(ToString::to_string),
        state: state_of(&holders),
        holders,
        drift: ex.outcome == Outcome::Relabeled,
        note: note_of(ex),
    }
}

/// A pool's space: capacity, allocation and free bytes (statvfs of a dir pool, `vgs`
/// for a volume group), as libvirt's `pool-info` reports them.
pub fn space(settings: &Settings, idx: usize) -> Option<(u64, u64, u64)> {
    match &settings.pools[idx].kind {
        PoolKind::Dir(dir) => {
            let root = fsys::open_pool_root(&dir.path).ok()?;
            let st = rustix::fs::fstatvfs(&root).ok()?;
            let capacity = st.f_blocks.saturating_mul(st.f_frsize);
            let allocation = st
                .f_blocks
                .saturating_sub(st.f_bfree)
                .saturating_mul(st.f_frsize);
            Some((
                capacity,
                allocation,
                st.f_bavail.saturating_mul(st.f_frsize),
            ))
        }
        PoolKind::Lvm(l) => {
            let (size, free) = lvm::invoke_vg_space(&l.vg, &l.lvm_args).ok()?;
            Some((size, size.saturating_sub(free), free))
        }
    }
}
