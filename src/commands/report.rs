//! `svirt-pool scan` (reconcile once) and `svirt-pool status` (inspect, write nothing).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::Serialize;

use super::{print_json, shown};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::fsys::NodeKind;
use crate::lock;
use crate::reconcile::{Apply, Outcome, Reconciler, Summary};
use crate::state::{HolderIndex, Store};

/// Reconciles every pool once and prints per-pool counts; exit 1 if any entry failed.
pub fn scan(settings: &Settings, json: bool) -> Result<()> {
    let _lock = lock::acquire(&settings.state_dir)?;
    let store = Store::open(&settings.state_dir)?;
    let index = store.holder_index()?;
    let mut rec = Reconciler::new(settings, Apply::Write).map_err(Error::failed)?;
    let mut pools = BTreeMap::new();
    let mut total = Summary::default();
    let mut errors = Vec::new();
    for (idx, pool) in settings.pools.iter().enumerate() {
        let mut summary = Summary::default();
        let result = rec.scan(
            idx,
            Path::new(""),
            &index,
            &mut |_, _| {},
            &mut |path, ex| {
                summary.add(ex);
                if let Outcome::Failed(e) = &ex.outcome {
                    errors.push(format!("{}: {e}", shown(&pool.path.join(path))));
                }
            },
        );
        if let Err(e) = result {
            errors.push(format!("pool {} ({}): {e}", pool.name, pool.path.display()));
            summary.failed += 1;
        }
        total.merge(&summary);
        pools.insert(pool.name.clone(), summary);
    }
    if json {
        print_json(&serde_json::json!({ "pools": pools, "total": total }))?;
    } else {
        for (name, summary) in &pools {
            println!("pool {name}: {summary}");
        }
        println!("total: {total}");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::failed(errors.join("\n")))
    }
}

/// One volume in `status`.
#[derive(Serialize)]
struct VolumeStatus {
    volume: String,
    path: String,
    exists: bool,
    attachments: Vec<HolderStatus>,
    state: String,
    current: Option<String>,
    desired: Option<String>,
    drift: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[derive(Serialize)]
struct HolderStatus {
    guest: String,
    name: String,
    mode: &'static str,
}

#[derive(Serialize)]
struct PoolStatus {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    path: String,
    available: bool,
    volumes: Vec<VolumeStatus>,
    summary: Summary,
}

/// "free", "rw by G", "shared by [..]", "ro by [..]".
fn state_of(holders: &[HolderStatus]) -> String {
    if holders.is_empty() {
        return "free".into();
    }
    let names = |mode: &str| -> Vec<&str> {
        holders
            .iter()
            .filter(|h| h.mode == mode)
            .map(|h| h.name.as_str())
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

/// Prints each pool's volumes with their holders and labels; writes nothing.
pub fn status(settings: &Settings, json: bool, all: bool) -> Result<()> {
    lock::ensure_state_dir(&settings.state_dir)?;
    let store = Store::open(&settings.state_dir)?;
    let index = store.holder_index()?;
    let names: HashMap<String, String> = store
        .guests()?
        .into_iter()
        .map(|g| (g.uuid, g.name))
        .collect();
    let mut rec = Reconciler::new(settings, Apply::Inspect).map_err(Error::failed)?;
    let mut report = Vec::new();
    for (idx, pool) in settings.pools.iter().enumerate() {
        let holders_of = |index: &HolderIndex, key: &[u8]| -> Vec<HolderStatus> {
            index
                .get(&pool.name)
                .and_then(|m| m.get(key))
                .map(|hs| {
                    hs.iter()
                        .map(|h| HolderStatus {
                            name: names.get(&h.guest).cloned().unwrap_or_default(),
                            guest: h.guest.clone(),
                            mode: h.mode.as_str(),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut volumes = Vec::new();
        let mut seen = HashSet::new();
        let mut summary = Summary::default();
        let available = rec
            .scan(
                idx,
                Path::new(""),
                &index,
                &mut |_, _| {},
                &mut |rel, ex| {
                    summary.add(ex);
                    if ex.kind == NodeKind::Directory {
                        return;
                    }
                    let key = rel.as_os_str().as_bytes();
                    seen.insert(key.to_vec());
                    let attachments = holders_of(&index, key);
                    let note = match &ex.outcome {
                        Outcome::Skipped(r) => Some(format!("skipped: {}", r.as_str())),
                        Outcome::Failed(e) => Some(format!("failed: {e}")),
                        _ => None,
                    };
                    volumes.push(VolumeStatus {
                        volume: shown(rel),
                        path: shown(&pool.path.join(rel)),
                        exists: true,
                        state: state_of(&attachments),
                        attachments,
                        current: ex.current.clone(),
                        desired: ex.desired.as_ref().map(|c| c.to_string()),
                        drift: ex.outcome == Outcome::Relabeled,
                        note,
                    });
                },
            )
            .is_ok();
        // Attachments whose volume is gone still show, so nobody loses track of them.
        if let Some(held) = index.get(&pool.name) {
            for key in held.keys().filter(|k| !seen.contains(*k)) {
                let rel = Path::new(std::ffi::OsStr::from_bytes(key));
                let attachments = holders_of(&index, key);
                volumes.push(VolumeStatus {
                    volume: shown(rel),
                    path: shown(&pool.path.join(rel)),
                    exists: false,
                    state: state_of(&attachments),
                    attachments,
                    current: None,
                    desired: None,
                    drift: false,
                    note: Some("missing: the volume does not exist".into()),
                });
            }
        }
        volumes.sort_by(|a, b| a.volume.cmp(&b.volume));
        report.push(PoolStatus {
            name: pool.name.clone(),
            kind: "dir",
            path: shown(&pool.path),
            available,
            volumes,
            summary,
        });
    }
    if json {
        return print_json(&serde_json::json!({ "pools": report }));
    }
    for pool in &report {
        print_pool(pool, all);
    }
    Ok(())
}

fn print_pool(pool: &PoolStatus, all: bool) {
    let attached = pool
        .volumes
        .iter()
        .filter(|v| !v.attachments.is_empty())
        .count();
    let drifting = pool.volumes.iter().filter(|v| v.drift).count();
    let availability = if pool.available { "" } else { " [unavailable]" };
    println!(
        "pool {} ({}){availability}: {} volumes, {attached} attached, {drifting} drifting",
        pool.name,
        pool.path,
        pool.volumes.len()
    );
    for v in &pool.volumes {
        if !(all || v.drift || !v.attachments.is_empty() || v.note.is_some()) {
            continue;
        }
        let current = v.current.as_deref().unwrap_or("-");
        let desired = v.desired.as_deref().unwrap_or("-");
        let flag = if v.drift { "  DRIFT" } else { "" };
        let note = v
            .note
            .as_deref()
            .map(|n| format!("  ({n})"))
            .unwrap_or_default();
        println!(
            "  {}  [{}]  current={current}  desired={desired}{flag}{note}",
            v.volume, v.state
        );
    }
}
