//! `svirt-pool scan` (reconcile once) and `svirt-pool status` (inspect, write nothing).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::shown;
use crate::backend;
use crate::config::{LvmPool, PoolKind, Settings};
use crate::decide::plan::SkipReason;
use crate::error::Result;
use crate::fsys::NodeKind;
use crate::lock;
use crate::model::Holder;
use crate::observe::devices;
use crate::observe::lvm;
use crate::reconcile::{Apply, Examined, Outcome, Reconciler, Summary};
use crate::registry::HolderIndex;

/// What one reconcile of every pool did.
#[derive(Serialize, Debug)]
pub struct ScanReport {
    /// Per pool.
    pub pools: BTreeMap<String, Summary>,
    /// All pools together.
    pub total: Summary,
    /// Each entry or pool that failed, with why.
    pub errors: Vec<String>,
}

/// Reconciles every pool once, under the lock.
pub fn scan(settings: &Settings) -> Result<ScanReport> {
    scan_with(settings, &|_, _| {})
}

/// [`scan`], telling `progress` (pool, entries examined so far) every few thousand
/// entries and once at the end of each pool.
pub fn scan_with(settings: &Settings, progress: &(dyn Fn(&str, u64) + Sync)) -> Result<ScanReport> {
    let _lock = lock::acquire(&settings.state_dir)?;
    let store = backend::open(settings)?;
    let index = store.holder_index()?;
    let mut rec = Reconciler::new(settings, Apply::Write);
    let mut report = ScanReport {
        pools: BTreeMap::new(),
        total: Summary::default(),
        errors: Vec::new(),
    };
    for (idx, pool) in settings.pools.iter().enumerate() {
        let summary = Mutex::new(Summary::default());
        let errors = Mutex::new(&mut report.errors);
        let seen = std::sync::atomic::AtomicU64::new(0);
        let result = rec.scan(idx, Path::new(""), &index, &|_, _| {}, &|path, ex| {
            let n = seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_multiple_of(4096) {
                progress(&pool.name, n);
            }
            summary.lock().expect("summary").add(ex);
            if let Outcome::Failed(e) = &ex.outcome {
                let e = format!("{}: {e}", shown(&pool.entry_path(path)));
                errors.lock().expect("errors").push(e);
            }
        });
        progress(&pool.name, seen.into_inner());
        let mut summary = summary.into_inner().expect("summary");
        if let Err(e) = result {
            report
                .errors
                .push(format!("pool {} ({}): {e}", pool.name, pool.location()));
            summary.failed += 1;
        }
        report.total.merge(&summary);
        report.pools.insert(pool.name.clone(), summary);
    }
    Ok(report)
}

/// One volume in `status`, `ListVolumes` and the picker.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct VolumeStatus {
    /// The path inside a dir pool, or `VG/LV`.
    pub volume: String,
    /// The file, or the LV's node (empty while it has none).
    pub path: String,
    /// What to pass as `volume` to address it: its path, `base64:BYTES` when the path
    /// is not UTF-8 (`path` and `volume` show such names lossily), or `VG/LV`.
    pub address: String,
    /// Whether the file or LV exists.
    pub exists: bool,
    /// For an LV: whether it has a node (is active).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub active: Option<bool>,
    /// Who holds it.
    pub attachments: Vec<Holder>,
    /// `free`, `rw by G`, `shared by A, B`, `ro by A, B`.
    pub state: String,
    /// Its label now.
    pub current: Option<String>,
    /// The label it must carry.
    pub desired: Option<String>,
    /// Whether the two differ.
    pub drift: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Why it is skipped, failed or missing.
    pub note: Option<String>,
    /// How a guest would open it (not shown: for `verify`).
    #[serde(skip)]
    pub opened: Opened,
}

/// How a guest's QEMU would open a volume, and whether libvirt holds its label.
#[derive(Debug, Clone, Default)]
pub struct Opened {
    /// The SELinux class it is opened as: `file`, `blk_file`; `None` for what a guest
    /// does not open as a disk (symlinks, sockets, FIFOs, missing LV nodes).
    pub class: Option<&'static str>,
    /// libvirt labeled it for a running domain (its remember xattrs are set).
    pub by_libvirt: bool,
}

impl Opened {
    fn of(ex: &Examined) -> Opened {
        Opened {
            class: match ex.kind {
                NodeKind::Regular { .. } => Some("file"),
                NodeKind::BlockDevice => Some("blk_file"),
                _ => None,
            },
            by_libvirt: ex.outcome == Outcome::Skipped(SkipReason::HeldByLibvirt),
        }
    }
}

/// How a volume is shown: its name, its path, and its address.
type Shown = (String, String, String);

/// One pool in `status`.
#[derive(Serialize, Debug)]
pub struct PoolStatus {
    /// The pool's name.
    pub name: String,
    #[serde(rename = "type")]
    /// `dir` or `lvm`.
    pub kind: String,
    /// Its directory, or `VG name`.
    pub location: String,
    /// Whether it could be read.
    pub available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Why not.
    pub error: Option<String>,
    /// Its volumes.
    pub volumes: Vec<VolumeStatus>,
    /// Counts of what was found.
    pub summary: Summary,
}

/// "free", "rw by G", "shared by [..]", "ro by [..]".
pub(super) fn state_of(holders: &[Holder]) -> String {
    if holders.is_empty() {
        return "free".into();
    }
    let names = |mode: &str| -> Vec<String> {
        holders
            .iter()
            .filter(|h| h.mode == mode)
            .map(Holder::shown)
            .collect()
    };
    ["rw", "shared", "ro"]
        .iter()
        .filter_map(|mode| {
            let n = names(mode);
            (!n.is_empty()).then(|| format!("{mode} by {}", n.join(", ")))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What `status` needs to know about every pool's holders.
struct Holders<'a> {
    index: &'a HolderIndex,
    names: &'a HashMap<String, String>,
}

/// Holders as users see them: with their guests' names.
pub(super) fn shown_holders(
    holders: &[crate::decide::labels::Holder],
    names: &HashMap<String, String>,
) -> Vec<Holder> {
    holders
        .iter()
        .map(|h| Holder {
            name: names.get(&h.guest).cloned().unwrap_or_default(),
            guest: h.guest.clone(),
            mode: h.mode.as_str().to_owned(),
            host: h.host.clone(),
        })
        .collect()
}

impl Holders<'_> {
    fn of(&self, pool: &str, key: &[u8]) -> Vec<Holder> {
        self.index
            .get(pool)
            .and_then(|m| m.get(key))
            .map(|hs| shown_holders(hs, self.names))
            .unwrap_or_default()
    }

    /// Volumes with attachments that were not seen, so nobody loses track of them.
    /// `volume_name` shows a state key as (volume, path, address).
    fn unseen(
        &self,
        pool: &str,
        seen: &HashSet<Vec<u8>>,
        volume_name: &dyn Fn(&[u8]) -> Shown,
    ) -> Vec<VolumeStatus> {
        let Some(held) = self.index.get(pool) else {
            return Vec::new();
        };
        held.keys()
            .filter(|k| !seen.contains(*k))
            .map(|key| {
                let (volume, path, address) = volume_name(key);
                let attachments = self.of(pool, key);
                VolumeStatus {
                    volume,
                    path,
                    address,
                    exists: false,
                    active: None,
                    state: state_of(&attachments),
                    attachments,
                    current: None,
                    desired: None,
                    drift: false,
                    note: Some("missing: the volume does not exist".into()),
                    opened: Opened::default(),
                }
            })
            .collect()
    }
}

/// What the picker shows beside a skipped or failed volume.
pub(super) fn note_of(ex: &Examined) -> Option<String> {
    match &ex.outcome {
        Outcome::Skipped(r) => Some(format!("skipped: {}", r.as_str())),
        Outcome::Failed(e) => Some(format!("failed: {e}")),
        _ => None,
    }
}

/// The status of a dir pool: every entry found by a walk that writes nothing.
fn dir_status(rec: &mut Reconciler<'_>, idx: usize, holders: &Holders<'_>) -> PoolStatus {
    let pool = &rec.settings().pools[idx];
    let found = Mutex::new((Vec::new(), HashSet::new(), Summary::default()));
    let result = rec.scan(idx, Path::new(""), holders.index, &|_, _| {}, &|rel, ex| {
        let mut found = found.lock().expect("status");
        let (volumes, seen, summary) = &mut *found;
        summary.add(ex);
        if ex.kind == NodeKind::Directory {
            return;
        }
        let key = rel.as_os_str().as_bytes();
        seen.insert(key.to_vec());
        let attachments = holders.of(&pool.name, key);
        volumes.push(VolumeStatus {
            volume: shown(rel),
            path: shown(&pool.entry_path(rel)),
            address: super::locate::volume_address(&pool.entry_path(rel)),
            exists: true,
            active: None,
            state: state_of(&attachments),
            attachments,
            current: ex.current.clone(),
            desired: ex.desired.as_ref().map(|c| c.to_string()),
            drift: ex.outcome == Outcome::Relabeled,
            note: note_of(ex),
            opened: Opened::of(ex),
        });
    });
    let (mut volumes, seen, summary) = found.into_inner().expect("status");
    volumes.extend(holders.unseen(&pool.name, &seen, &|key| {
        let rel = Path::new(std::ffi::OsStr::from_bytes(key));
        let path = pool.entry_path(rel);
        (
            shown(rel),
            shown(&path),
            super::locate::volume_address(&path),
        )
    }));
    PoolStatus {
        name: pool.name.clone(),
        kind: pool.type_name().to_owned(),
        location: pool.location(),
        available: result.is_ok(),
        error: result.err().map(|e| e.to_string()),
        volumes,
        summary,
    }
}

/// The status of an lvm pool: every LV `lvs` lists, with its node when it has one.
fn lvm_status(
    rec: &mut Reconciler<'_>,
    idx: usize,
    lvm: &LvmPool,
    holders: &Holders<'_>,
) -> PoolStatus {
    let pool = &rec.settings().pools[idx];
    let mut status = PoolStatus {
        name: pool.name.clone(),
        kind: pool.type_name().to_owned(),
        location: pool.location(),
        available: true,
        error: None,
        volumes: Vec::new(),
        summary: Summary::default(),
    };
    let lvs = match lvm::invoke_lvs(&lvm.vg, &lvm.lvm_args) {
        Ok(lvs) => lvs,
        Err(e) => {
            status.available = false;
            status.error = Some(e.to_string());
            Vec::new()
        }
    };
    let nodes = devices::enumerate(&|vg| vg == lvm.vg).unwrap_or_else(|e| {
        status.error = Some(format!("udev enumeration: {e}"));
        Vec::new()
    });
    let mut seen = HashSet::new();
    for lv in &lvs {
        let key = lv.uuid.as_bytes();
        seen.insert(key.to_vec());
        let attachments = holders.of(&pool.name, key);
        let node = nodes.iter().find(|n| n.lv_uuid == lv.uuid);
        let ex =
            node.map(|n| rec.reconcile_lv_node(idx, n, &holders.index_holders(&pool.name, key)));
        if let Some(ex) = &ex {
            status.summary.add(ex);
        }
        status.volumes.push(VolumeStatus {
            volume: format!("{}/{}", lv.vg, lv.name),
            address: format!("{}/{}", lv.vg, lv.name),
            path: node.map(|n| shown(&n.devnode)).unwrap_or_default(),
            exists: true,
            active: Some(node.is_some()),
            state: state_of(&attachments),
            attachments,
            current: ex.as_ref().and_then(|e| e.current.clone()),
            desired: ex
                .as_ref()
                .and_then(|e| e.desired.as_ref().map(|c| c.to_string())),
            drift: ex.as_ref().is_some_and(|e| e.outcome == Outcome::Relabeled),
            note: ex.as_ref().and_then(note_of),
            opened: ex.as_ref().map(Opened::of).unwrap_or_default(),
        });
    }
    if status.available {
        status
            .volumes
            .extend(holders.unseen(&pool.name, &seen, &|key| {
                let lv = format!("LV uuid {}", String::from_utf8_lossy(key));
                (lv.clone(), String::new(), lv)
            }));
    }
    status
}

impl Holders<'_> {
    fn index_holders(&self, pool: &str, key: &[u8]) -> Vec<crate::decide::labels::Holder> {
        self.index
            .get(pool)
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default()
    }
}

/// Each pool's volumes with their holders and labels; writes nothing.
pub fn status(settings: &Settings) -> Result<Vec<PoolStatus>> {
    status_of(settings, None)
}

/// [`status`] of one pool (`only`), or of all; an unknown pool is a usage error.
pub fn status_of(settings: &Settings, only: Option<&str>) -> Result<Vec<PoolStatus>> {
    if let Some(name) = only
        && !settings.pools.iter().any(|p| p.name == name)
    {
        return Err(crate::error::Error::Usage(format!(
            "--pool: no pool named {name:?}"
        )));
    }
    lock::ensure_state_dir(&settings.state_dir)?;
    let store = backend::open(settings)?;
    let index = store.holder_index()?;
    let names: HashMap<String, String> = store
        .guests()?
        .into_iter()
        .map(|g| (g.uuid, g.name))
        .collect();
    let holders = Holders {
        index: &index,
        names: &names,
    };
    let mut rec = Reconciler::new(settings, Apply::Inspect);
    let mut report = Vec::new();
    for (idx, pool) in settings.pools.iter().enumerate() {
        if only.is_some_and(|name| name != pool.name) {
            continue;
        }
        let mut status = match pool.kind {
            PoolKind::Dir(_) => dir_status(&mut rec, idx, &holders),
            PoolKind::Lvm(ref lvm) => lvm_status(&mut rec, idx, lvm, &holders),
        };
        status.volumes.sort_by(|a, b| a.volume.cmp(&b.volume));
        report.push(status);
    }
    Ok(report)
}
