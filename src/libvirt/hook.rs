//! libvirt's qemu hook (`/etc/libvirt/hooks/qemu.d/svirt-pool`): attach a domain's pool
//! disks when it starts, under the pair libvirt runs it with; release them when it is
//! gone. A non-zero exit at `prepare`/`start` makes libvirt refuse the start.

use std::time::Duration;

use super::domain::{self, Domain};
use super::pools;
use crate::backend;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::lock;
use crate::ops::volumes::Batcher;
use crate::ops::{Caller, guests, locate, volumes};
use crate::registry::Registry;

/// How long one hook call may take before it refuses (libvirt waits for it).
pub const DEADLINE: Duration = Duration::from_secs(10);

/// What a hook call asks of the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `prepare begin`, `start begin` (attach, with the pair in the XML once libvirt
    /// chose it) and `reconnect begin` (libvirtd restarted: assert them again).
    Attach,
    /// `release end`: the domain is gone from this host; its disks here go back to
    /// rest (those it holds on another host of a cluster stay as they are).
    Release,
    /// `migrate begin` in a cluster, on the destination: the guest comes from another
    /// host, and may hold here what it holds there until it runs here.
    Incoming,
    /// `started begin` in a cluster: the guest runs here; a migration here is over.
    Started,
    /// Anything else: nothing to do.
    Nothing,
}

/// The pure decision: what `OP SUBOP` asks for, on a host alone or in a cluster.
///
/// libvirt's live migration calls, in order: on the destination `migrate begin`,
/// `prepare begin`, `start begin`, `started begin`; then on the source `stopped end`,
/// `release end`. A failed one ends with `stopped end`, `release end` on the
/// destination instead (docs/cluster.md, "Migration").
pub fn action(op: &str, subop: &str, clustered: bool) -> Action {
    match (op, subop) {
        ("prepare" | "start" | "reconnect", "begin") => Action::Attach,
        ("release", "end") => Action::Release,
        ("migrate", "begin") if clustered => Action::Incoming,
        ("started", "begin") if clustered => Action::Started,
        _ => Action::Nothing,
    }
}

/// Runs one hook call on the domain XML `xml`; returns a one-line summary. A domain's
/// disks are attached in one batch of `batcher` (the agent's, or the caller's own).
pub fn run(
    batcher: &Batcher,
    settings: &Settings,
    op: &str,
    subop: &str,
    xml: &str,
) -> Result<String> {
    let act = action(op, subop, settings.cluster.is_some());
    if act == Action::Nothing {
        return Ok(format!("{op} {subop}: nothing to do"));
    }
    let domain = domain::parse(xml).map_err(|e| Error::Usage(e.to_string()))?;
    if op == "reconnect" {
        // libvirtd restarted: domains that died meanwhile never got their release.
        release_dead(settings)?;
    }
    match act {
        Action::Attach => attach(batcher, settings, &domain),
        Action::Release => release(settings, &domain),
        Action::Incoming => {
            backend::open(settings)?.begin_migration(&domain.uuid)?;
            Ok(format!("domain {}: migrating here", domain.name))
        }
        Action::Started => {
            backend::open(settings)?.end_migration(&domain.uuid)?;
            Ok(format!("domain {}: runs here", domain.name))
        }
        Action::Nothing => unreachable!("returned above"),
    }
}

/// Whether `uuid` holds something on another host of the cluster (it runs there, or
/// is migrating to or from there).
fn held_elsewhere(store: &dyn Registry, uuid: &str) -> Result<bool> {
    Ok(store
        .attachments(Some(uuid))?
        .iter()
        .any(|a| a.host.is_some()))
}

/// After its holds here were released: the guest runs with its own pair again, unless
/// it still holds volumes on another host (the source or destination of a migration),
/// which carry the pair it runs with there.
fn end_run_here(store: &mut dyn Registry, uuid: &str) -> Result<()> {
    store.end_migration(uuid)?;
    if !held_elsewhere(store, uuid)? {
        store.set_run_pair(uuid, None)?;
    }
    Ok(())
}

/// Defines the domain's guest, adopts the pair libvirt runs it with (refused when
/// another guest holds it), and attaches every disk that is in a managed pool. On any
/// refusal nothing this call attached stays attached, and the error names the disk.
fn attach(batcher: &Batcher, settings: &Settings, d: &Domain) -> Result<String> {
    // Its volumes named by libvirt pool are found before anything changes.
    let disks = resolved(d)?;
    // A member may have defined this UUID first: the domain never runs under its guest.
    guests::take_over_for_domain(settings, &d.uuid)?;
    guests::define(settings, Caller::ROOT, &d.uuid, Some(&d.name))?;
    let (held_before, run_before) = {
        let _lock = lock::acquire(&settings.state_dir)?;
        let mut store = backend::open(settings)?;
        store.mark_via_libvirt(&d.uuid)?;
        let guest = store
            .guest(&d.uuid)?
            .ok_or_else(|| Error::NoSuchGuest(d.uuid.clone()))?;
        // What it held here before (not on another host: a migration's source), so a
        // refused start takes back only what this call attached here.
        let held: Vec<(String, Vec<u8>)> = store
            .attachments(Some(&d.uuid))?
            .into_iter()
            .filter(|a| a.host.is_none())
            .map(|a| (a.pool, a.volume))
            .collect();
        // The pair libvirt runs it with (a static label, or a dynamic one once chosen).
        if let Some(pair) = d.seclabel.as_ref().and_then(|s| s.pair()) {
            store
                .set_run_pair(&d.uuid, Some(pair))
                .map_err(|e| Error::refused(format!("domain {} cannot start: {e}", d.name)))?;
        }
        (held, guest.run_pair)
    };
    // Disks outside the pools are left to libvirt; the others in one batch (one commit).
    let managed: Vec<&domain::Disk> = disks
        .iter()
        .filter(|disk| locate::is_managed(settings, &disk.source))
        .collect();
    let asked: Vec<_> = managed
        .iter()
        .map(|disk| (disk.source.as_path(), disk.mode, disk.label.clone()))
        .collect();
    let answers = volumes::attach_all(batcher, settings, Caller::ROOT, &d.uuid, &asked);
    let mut attached = Vec::new();
    let mut refused = None;
    for (disk, answer) in managed.into_iter().zip(answers) {
        match answer {
            Ok(_) => attached.push(disk),
            Err(e) if refused.is_none() => refused = Some((disk, e)),
            Err(_) => {}
        }
    }
    if let Some((disk, e)) = refused {
        let rollback = undo(settings, d, &attached, &held_before, run_before);
        return Err(Error::refused(format!(
            "{} ({}): {e}{rollback}",
            disk.target,
            disk.source.display()
        )));
    }
    Ok(format!(
        "domain {} ({}): {} pool disk(s) attached",
        d.name,
        d.uuid,
        attached.len()
    ))
}

/// The domain's disks with the path of each `<disk type='volume'>` found in libvirt's
/// pool files; a volume of a pool that is not local files (or unknown) is left out, as
/// a disk outside the pools is (libvirt's).
fn resolved(d: &Domain) -> Result<Vec<domain::Disk>> {
    let dirs: Vec<&std::path::Path> = pools::POOL_DIRS.iter().map(std::path::Path::new).collect();
    let mut disks = Vec::with_capacity(d.disks.len());
    for disk in &d.disks {
        let Some((pool, volume)) = &disk.volume else {
            disks.push(disk.clone());
            continue;
        };
        match pools::volume_path(&dirs, pool, volume) {
            Ok(Some(path)) => disks.push(domain::Disk {
                source: path,
                ..disk.clone()
            }),
            Ok(None) => {}
            Err(e) => {
                return Err(Error::refused(format!(
                    "{} (volume {volume} of pool {pool}): {e}",
                    disk.target
                )));
            }
        }
    }
    Ok(disks)
}

/// Takes back what a refused attach did; says what could not be taken back.
fn undo(
    settings: &Settings,
    d: &Domain,
    attached: &[&domain::Disk],
    held_before: &[(String, Vec<u8>)],
    run_before: Option<crate::decide::context::Pair>,
) -> String {
    let mut failures = Vec::new();
    for disk in attached {
        let was_held =
            locate::state_key(settings, &disk.source).is_ok_and(|key| held_before.contains(&key));
        if !was_held && let Err(e) = volumes::detach(settings, Caller::ROOT, &d.uuid, &disk.source)
        {
            failures.push(format!("{}: {e}", disk.target));
        }
    }
    let restored = lock::acquire(&settings.state_dir)
        .and_then(|_lock| backend::open(settings)?.set_run_pair(&d.uuid, run_before));
    if let Err(e) = restored {
        failures.push(format!("its pair: {e}"));
    }
    if failures.is_empty() {
        "; nothing was attached".into()
    } else {
        format!("; undoing failed too: {}", failures.join("; "))
    }
}

/// The domain is gone: its disks go back to rest, and it runs with its own pair again.
fn release(settings: &Settings, d: &Domain) -> Result<String> {
    let known = {
        lock::ensure_state_dir(&settings.state_dir)?;
        backend::open(settings)?.guest(&d.uuid)?.is_some()
    };
    if !known {
        return Ok(format!("domain {}: not a guest of the agent", d.name));
    }
    // Its run ends even when a label could not be restored (libvirt holds it): the
    // domain is gone, and the pair libvirt chose for it explains nothing any more.
    let released = volumes::release(settings, Caller::ROOT, &d.uuid);
    {
        let _lock = lock::acquire(&settings.state_dir)?;
        end_run_here(&mut *backend::open(settings)?, &d.uuid)?;
    }
    Ok(format!(
        "domain {}: {} volume(s) released",
        d.name, released?
    ))
}

/// The UUIDs of the domains libvirt runs: one status XML per running domain in its
/// status directory (none at all when the directory is missing: libvirtd never ran
/// since boot).
pub fn running_domains(status_dir: &std::path::Path) -> Vec<String> {
    running(status_dir).into_iter().map(|d| d.uuid).collect()
}

/// The domains libvirt runs, as their status XML describes them (with the label each
/// runs with, once libvirt chose it).
pub fn running(status_dir: &std::path::Path) -> Vec<Domain> {
    let Ok(entries) = std::fs::read_dir(status_dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "xml"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|xml| domain::parse(&xml).ok())
        .collect()
}

/// Releases the hook-managed guests whose domain does not run (libvirtd killed, host
/// rebooted: no `release` hook came). Returns what it released, and logs it.
pub fn release_dead(settings: &Settings) -> Result<Vec<String>> {
    lock::ensure_state_dir(&settings.state_dir)?;
    let store = backend::open(settings)?;
    // Only guests that still hold something (volumes, or libvirt's pair) need a look.
    let mut holding = Vec::new();
    // In a cluster: only what they hold on this host (guests run on other hosts too).
    for g in store.libvirt_guests()? {
        let here = store.attachments(Some(&g.uuid))?;
        let holds_here = here.iter().any(|a| a.host.is_none());
        let runs_elsewhere = here.iter().any(|a| a.host.is_some());
        if holds_here || (g.run_pair.is_some() && !runs_elsewhere) {
            holding.push(g);
        }
    }
    drop(store);
    if holding.is_empty() {
        return Ok(Vec::new());
    }
    let running = running_domains(&settings.libvirt_status_dir);
    let mut released = Vec::new();
    for g in holding.iter().filter(|g| !running.contains(&g.uuid)) {
        let n = volumes::release(settings, Caller::ROOT, &g.uuid)?;
        let _lock = lock::acquire(&settings.state_dir)?;
        end_run_here(&mut *backend::open(settings)?, &g.uuid)?;
        tracing::warn!(guest = %g.uuid, name = %g.name.escape_debug(), released = n,
            "libvirt domain is not running (no release hook came): released its volumes");
        released.push(g.uuid.clone());
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_calls_do_what() {
        for clustered in [false, true] {
            assert_eq!(action("prepare", "begin", clustered), Action::Attach);
            assert_eq!(action("start", "begin", clustered), Action::Attach);
            assert_eq!(action("reconnect", "begin", clustered), Action::Attach);
            assert_eq!(action("release", "end", clustered), Action::Release);
            for (op, sub) in [("stopped", "end"), ("start", "end"), ("migrate", "end")] {
                assert_eq!(action(op, sub, clustered), Action::Nothing, "{op} {sub}");
            }
        }
        // A host alone has no migration to mark (its disks are its own).
        assert_eq!(action("migrate", "begin", false), Action::Nothing);
        assert_eq!(action("started", "begin", false), Action::Nothing);
        assert_eq!(action("migrate", "begin", true), Action::Incoming);
        assert_eq!(action("started", "begin", true), Action::Started);
    }
}
