//! Creating and deleting volumes of dir pools for the picker's "New volume" and
//! "Delete".
//!
//! A new volume is made as an unnamed file (`O_TMPFILE`) at the pool root, by the agent
//! (raw: sparse, `ftruncate`) or by `qemu-img create` writing through `/proc/self/fd/N`
//! (qcow2), owned by the caller, then linked under its name (never over an existing
//! one) and given its resting label. Nothing is visible before it is complete.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::files::{check_new_name, dir_pool, give_to, link_into_place, unnamed_file};
use super::{Caller, access, shown};
use crate::backend;
use crate::config::{DirPoolId, Settings};
use crate::error::{Error, Refusal, Result};
use crate::fsys::{self, NodeKind};
use crate::lock;
use crate::model::Labeled;
use crate::observe::chain;
use crate::observe::image::{self, Format};
use crate::reconcile::{Apply, Reconciler};
use crate::run::Program;

/// How long `qemu-img create` may take (it writes a few clusters).
const QEMU_IMG_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest capacity accepted (qcow2's own limit is 2^61 bytes; nobody needs more).
pub const MAX_CAPACITY: u64 = 1 << 60;

/// Why another format is refused.
pub const ONLY_CREATABLE: &str = "only raw and qcow2 volumes are created";

/// The format named `name`, if volumes of it are created (`raw`, `qcow2`).
pub fn creatable_format(name: &str) -> Option<Format> {
    Format::from_name(name).filter(|f| matches!(f, Format::Raw | Format::Qcow2))
}

/// What to create.
#[derive(Clone, Debug)]
pub struct NewVolume<'a> {
    /// Its file name at the pool root.
    pub name: &'a str,
    /// `raw` or `qcow2`.
    pub format: Format,
    /// Its virtual size in bytes; with a backing file, the backing file's when `None`.
    pub capacity: Option<u64>,
    /// A qcow2 overlay's backing file: a volume of the same pool (its path below the
    /// pool root, or its absolute path).
    pub backing: Option<&'a str>,
}

/// Creates a volume in dir pool `pool`, owned by `caller`, with its resting label.
pub fn create(
    settings: &Settings,
    caller: Caller,
    pool: &str,
    new: &NewVolume<'_>,
) -> Result<Labeled> {
    check_new_name(new.name)?;
    let id = dir_pool(settings, pool)?;
    let (idx, dir) = (id.index(), settings.dir_pool(id));
    let shown_path = shown(&dir.path.join(new.name));
    if creatable_format(new.format.as_str()).is_none() {
        return Err(Error::Usage(format!(
            "format {:?}: {ONLY_CREATABLE}",
            new.format.as_str()
        )));
    }
    let root = fsys::open_pool_root(&dir.path).map_err(Error::failed)?;
    if fsys::exists_beneath(root.as_fd(), Path::new(new.name)) {
        return Err(Error::Exists(shown_path));
    }
    let backing = match new.backing {
        None => None,
        Some(_) if new.format != Format::Qcow2 => {
            return Err(Error::Usage(
                "only a qcow2 volume has a backing file".into(),
            ));
        }
        Some(b) => Some(backing_file(settings, caller, id, new.name, b)?),
    };
    let capacity = new
        .capacity
        .or(backing.as_ref().map(|b| b.capacity))
        .ok_or_else(|| Error::Usage("capacity is required without a backing file".into()))?;
    if capacity == 0 || capacity > MAX_CAPACITY {
        return Err(Error::Usage(format!(
            "capacity {capacity} must be 1 to {MAX_CAPACITY} bytes"
        )));
    }
    super::quota::check_room(settings, caller, root.as_fd(), capacity)?;
    let file = unnamed_file(&root, 0o600)?;
    // The caller's from the start: what it allocates is charged to it.
    give_to(&file, caller, &shown_path)?;
    match new.format {
        Format::Qcow2 => qemu_img_create(&file, capacity, backing.as_ref())?,
        _ => rustix::fs::ftruncate(&file, capacity)
            .map_err(|e| Error::failed(format!("sizing {shown_path}: {e}")))?,
    }
    rustix::fs::fsync(&file).map_err(|e| Error::failed(format!("fsync of {shown_path}: {e}")))?;
    let _lock = lock::acquire(&settings.state_dir)?;
    link_into_place(&file, &root, new.name, &shown_path)?;
    let ex = Reconciler::new(settings, Apply::Write).reconcile_path(idx, Path::new(new.name), &[]);
    tracing::info!(
        pool,
        name = new.name,
        format = new.format.as_str(),
        capacity,
        uid = caller.uid,
        "volume created"
    );
    let label = ex
        .labeled()
        .map_err(|e| Error::failed(format!("created {shown_path}, but labeling it: {e}")))?;
    Ok(Labeled {
        volume: shown_path,
        label: Some(label),
        note: None,
    })
}

/// A backing file as the new overlay will name it.
struct Backing {
    /// Its path below the pool root (written into the overlay: the new file sits at the
    /// root, so the name resolves there).
    rel: PathBuf,
    format: Format,
    capacity: u64,
}

/// Resolves and checks the backing file `name` for a new overlay `new_name`: in the
/// pool, a regular file with one link, readable by the caller (an overlay gives its
/// guests read access to it), with a header that can be trusted.
fn backing_file(
    settings: &Settings,
    caller: Caller,
    pool: DirPoolId,
    new_name: &str,
    name: &str,
) -> Result<Backing> {
    let dir = settings.dir_pool(pool);
    let rel = chain::resolve(&dir.path, Path::new(new_name), name.as_bytes())
        .map_err(|e| Error::refused(e.to_string()))?;
    let fd = access::open_as(
        caller,
        &dir.path,
        &rel,
        dir.cross_filesystems,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK,
    )?;
    let node = fsys::Node::from_fd(fd).map_err(Error::failed)?;
    if node.kind != (NodeKind::Regular { links: 1 }) {
        return Err(Error::refused(format!(
            "backing file {name}: not a regular file with one link"
        )));
    }
    let header = image::read(node.fd.as_fd())
        .map_err(Error::failed)?
        .map_err(|e| Error::refused(format!("backing file {name}: {e}")))?;
    let len = rustix::fs::fstat(&node.fd).map_err(Error::failed)?.st_size;
    Ok(Backing {
        rel,
        format: header.format,
        capacity: header
            .capacity
            .unwrap_or_else(|| u64::try_from(len).unwrap_or(0)),
    })
}

/// Runs `qemu-img create -f qcow2` on the unnamed file: the child gets the descriptor
/// ([`Program::pass_fd`]) and writes through
/// `/proc/self/fd/N`. `-u`: the backing file is not opened by qemu-img (it was checked).
fn qemu_img_create(file: &OwnedFd, capacity: u64, backing: Option<&Backing>) -> Result<()> {
    let fd = file.as_raw_fd();
    let mut args = vec![
        "create".to_owned(),
        "-q".into(),
        "-f".into(),
        "qcow2".into(),
    ];
    if let Some(b) = backing {
        args.extend([
            "-u".into(),
            "-b".into(),
            b.rel.to_string_lossy().into_owned(),
            "-F".into(),
            b.format.as_str().into(),
        ]);
    }
    args.extend([format!("/proc/self/fd/{fd}"), capacity.to_string()]);
    Program::new("qemu-img", &args, QEMU_IMG_TIMEOUT)
        .pass_fd(fd)
        .stdout()
        .map_err(Error::failed)?;
    Ok(())
}

/// Deletes volume `name` (its path below the pool root) of dir pool `pool`, as
/// `caller` would (the kernel checks its right to remove the name). Refused while
/// the volume, or an overlay on it, is held by a guest.
pub fn delete(settings: &Settings, caller: Caller, pool: &str, name: &str) -> Result<()> {
    let id = dir_pool(settings, pool)?;
    let (idx, dir) = (id.index(), settings.dir_pool(id));
    let rel = super::locate::normalize_user_path(Path::new(name), Path::new("/"))
        .map_err(|e| Error::Usage(e.to_string()))?;
    let rel = rel.strip_prefix("/").expect("absolute").to_path_buf();
    let shown_path = shown(&dir.path.join(&rel));
    let root = fsys::open_pool_root(&dir.path).map_err(Error::failed)?;
    let node = fsys::open_beneath(root.as_fd(), &rel, dir.cross_filesystems)
        .map_err(|e| Error::refused(format!("cannot delete {shown_path}: {e}")))?
        .node;
    if !matches!(node.kind, NodeKind::Regular { .. }) {
        return Err(Error::refused(format!(
            "cannot delete {shown_path}: not a regular file"
        )));
    }
    let owner = rustix::fs::fstat(&node.fd)
        .map_err(|e| Error::failed(format!("cannot delete {shown_path}: {e}")))?
        .st_uid;
    let _lock = lock::acquire(&settings.state_dir)?;
    let mut store = backend::open(settings)?;
    let key = rel.as_os_str().as_encoded_bytes();
    // Read access never pins a file: root and its owner delete it over members'
    // read-only holds (docs/api.md). Checked first, then the file goes, then those
    // holds: nothing is released for a delete that is refused, and no transaction spans
    // the unlink (a shared pool's holds are in etcd, committed call by call).
    let may_unpin = caller.is_root() || caller.uid == owner;
    for h in store.holders(pool, key)? {
        if !h.holds(Some(node.file)) {
            continue;
        }
        let pin = may_unpin
            && h.mode == crate::decide::labels::Mode::Ro
            && store
                .guest(&h.guest)?
                .is_some_and(|g| g.owner != 0 && g.owner != owner);
        if !pin {
            return Err(Refusal::InUse {
                path: shown_path,
                guest: h.guest,
                mode: h.mode,
            }
            .into());
        }
    }
    access::unlink_as(caller, &dir.path, &rel, node.file)?;
    let released = if may_unpin {
        store.release_pins(pool, key, owner)?
    } else {
        Vec::new()
    };
    tracing::info!(pool, name = %shown_path.escape_debug(), uid = caller.uid, "volume deleted");
    // The overlays released with it go back to rest.
    let mut rec = Reconciler::new(settings, Apply::Write);
    super::restore::relabel_released(&*store, &mut rec, idx, key, &released);
    Ok(())
}
