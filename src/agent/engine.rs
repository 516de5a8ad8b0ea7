//! The engine: one thread that owns the reconciler, the state connection, the inotify
//! instance and the udev monitor; it scans every pool, then turns events into
//! single-volume reconciles until told to stop.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use sd_notify::NotifyState;

use crate::backend;
use crate::config::Settings;
use std::sync::Mutex;

use tokio::sync::broadcast;

use crate::api::types::Event;
use crate::cluster::presence::{self, Presence};
use crate::error::{Error, Result};
use crate::lock;
use crate::model::EventKind;
use crate::observe::devices;
use crate::observe::watch::{Change, Watcher};
use crate::reconcile::{Apply, Examined, Outcome, Reconciler, Summary};
use crate::registry::{HolderIndex, Registry};

/// Up to this many changed entries in one batch are looked up one query each.
const QUERIES_PER_BATCH: usize = 32;
/// How often missing pools are looked for and the watchdog is fed.
const TICK: Duration = Duration::from_secs(1);
/// Changes of an existing entry only (a label or content changed: `appeared` false)
/// are checked at most once per this long. Every label the API writes comes back as
/// such an event; checked one by one, each took the lock the next API call waits for.
/// A lone one is checked at once, a stream in batches (each file once per batch).
/// Anything else (a new file, a new tree, an overflow) is handled at once, with the
/// changes waiting.
const COALESCE: Duration = Duration::from_millis(20);

/// The engine thread's state.
pub(super) struct Engine<'s> {
    settings: &'s Settings,
    /// Changes for the API's `Monitor` clients.
    events: broadcast::Sender<Event>,
    reconciler: Reconciler<'s>,
    store: Box<dyn Registry>,
    watcher: Watcher,
    /// The udev monitor of LV nodes, when an lvm pool is configured.
    monitor: Option<devices::Monitor>,
    /// Pools whose root directory is absent; looked for on every tick.
    missing: Vec<bool>,
    /// Pools not fully watched (watch limit reached): rescanned periodically instead.
    degraded: Vec<bool>,
    last_degraded_rescan: Instant,
    /// Shared pools whose holders cannot be read (etcd does not answer): left as they
    /// are, and scanned again once etcd answers.
    unreachable: Vec<bool>,
    last_etcd_try: Instant,
    /// This host's liveness key in the cluster (`cluster status`), when in one.
    presence: Option<Presence>,
    last_presence: Option<Instant>,
    /// Whether the last renewal failed (said once, and once when it works again).
    presence_failing: bool,
}

/// How often the holders of shared pools are asked for again while etcd does not answer.
const ETCD_RETRY: Duration = Duration::from_secs(5);

impl<'s> Engine<'s> {
    pub(super) fn new(settings: &'s Settings, events: broadcast::Sender<Event>) -> Result<Self> {
        lock::ensure_state_dir(&settings.state_dir)?;
        let n = settings.pools.len();
        let monitor = if settings.pools.iter().any(|p| p.lvm().is_some()) {
            let monitor =
                devices::Monitor::new().map_err(|e| Error::failed(format!("udev monitor: {e}")))?;
            Some(monitor)
        } else {
            None
        };
        Ok(Engine {
            events,
            monitor,
            settings,
            reconciler: Reconciler::new(settings, Apply::Write),
            store: backend::open(settings)?,
            watcher: Watcher::new().map_err(|e| Error::failed(format!("inotify_init: {e}")))?,
            missing: vec![false; n],
            degraded: vec![false; n],
            last_degraded_rescan: Instant::now(),
            unreachable: vec![false; n],
            last_etcd_try: Instant::now(),
            presence: settings.cluster.as_ref().map(Presence::new).transpose()?,
            last_presence: None,
            presence_failing: false,
        })
    }

    pub(super) fn run(&mut self, stop: OwnedFd) -> Result<()> {
        let started = Instant::now();
        let total = {
            let _lock = lock::acquire(&self.settings.state_dir)?;
            self.scan_all()?
        };
        tracing::info!(%total, elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX), "initial scan done");
        // Alive in the cluster before it says it is ready.
        self.renew_presence();
        let status = format!(
            "watching {} directories; initial scan: {total}",
            self.watcher.len()
        );
        let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
        let watchdog = sd_notify::watchdog_enabled();

        let mut next_tick = Instant::now() + TICK;
        // Changes of existing entries waiting for their batch, and when it is due.
        let mut waiting: Vec<Change> = Vec::new();
        let mut next_batch = Instant::now();
        loop {
            let now = Instant::now();
            let until = if waiting.is_empty() {
                next_tick
            } else {
                next_tick.min(next_batch)
            };
            let wait = until.saturating_duration_since(now);
            let timeout = Timespec {
                tv_sec: wait.as_secs() as i64,
                tv_nsec: i64::from(wait.subsec_nanos()),
            };
            let (inotify_ready, stop_ready, udev_ready) = {
                let inotify_fd = self.watcher.fd();
                let udev_fd = self.monitor.as_ref().map(devices::Monitor::fd);
                let mut fds = vec![
                    PollFd::new(&inotify_fd, PollFlags::IN),
                    PollFd::new(&stop, PollFlags::IN),
                ];
                if let Some(fd) = &udev_fd {
                    fds.push(PollFd::new(fd, PollFlags::IN));
                }
                match rustix::event::poll(&mut fds, Some(&timeout)) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(Error::failed(format!("poll: {e}"))),
                }
                let ready = |i: usize| fds.get(i).is_some_and(|f| !f.revents().is_empty());
                (ready(0), ready(1), ready(2))
            };
            if stop_ready {
                tracing::info!("engine stopped");
                return Ok(());
            }
            if inotify_ready {
                let changes = self
                    .watcher
                    .read_changes()
                    .map_err(|e| Error::failed(format!("reading inotify events: {e}")))?;
                let (changed, urgent): (Vec<Change>, Vec<Change>) =
                    changes.into_iter().partition(|c| {
                        matches!(
                            c,
                            Change::Entry {
                                appeared: false,
                                ..
                            }
                        )
                    });
                waiting.extend(changed);
                if !urgent.is_empty() {
                    // The waiting changes go along: one lock for all.
                    let mut batch = urgent;
                    batch.append(&mut waiting);
                    self.handle(batch)?;
                }
            }
            if !waiting.is_empty() && Instant::now() >= next_batch {
                self.handle(std::mem::take(&mut waiting))?;
                next_batch = Instant::now() + COALESCE;
            }
            if udev_ready {
                self.handle_udev()?;
            }
            if Instant::now() >= next_tick {
                self.tick()?;
                if watchdog.is_some() {
                    let _ = sd_notify::notify(&[NotifyState::Watchdog]);
                }
                next_tick = Instant::now() + TICK;
            }
        }
    }

    /// Scans every pool (the lock must be held). Returns the totals.
    fn scan_all(&mut self) -> Result<Summary> {
        let index = self.holder_index()?;
        let mut total = Summary::default();
        for idx in 0..self.settings.pools.len() {
            if self.unreachable[idx] {
                continue;
            }
            if let Some(summary) = self.scan_tree(idx, Path::new(""), &index) {
                total.merge(&summary);
            }
        }
        drop(index);
        give_back_memory();
        Ok(total)
    }

    /// Every holder of the pools whose holders can be read; the shared pools whose
    /// cannot are marked unreachable (and said so once).
    fn holder_index(&mut self) -> Result<HolderIndex> {
        let (index, unknown) = self.store.holder_index_available()?;
        for (idx, pool) in self.settings.pools.iter().enumerate() {
            let now = unknown.contains(&pool.name);
            if now && !self.unreachable[idx] {
                tracing::warn!(pool = %pool.name,
                    "etcd does not answer: the shared pool's labels are left as they are until it does");
            }
            self.unreachable[idx] = now;
        }
        Ok(index)
    }

    /// The holders of one volume of pool `idx`; `None` when they cannot be read now (a
    /// shared pool while etcd does not answer: the pool is marked unreachable).
    fn holders_of(
        &mut self,
        idx: usize,
        key: &[u8],
    ) -> Result<Option<Vec<crate::decide::labels::Holder>>> {
        let pool = &self.settings.pools[idx];
        match self.store.holders(&pool.name, key) {
            Ok(holders) => Ok(Some(holders)),
            Err(e) if pool.shared => {
                if !self.unreachable[idx] {
                    tracing::warn!(pool = %pool.name, error = %e,
                        "the shared pool's holders cannot be read: its labels are left as they are until they can");
                }
                self.unreachable[idx] = true;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Watches and reconciles everything below `rel` of pool `idx` (the lock must be held).
    ///
    /// `None` when the pool's root is absent (it is then looked for on every tick).
    fn scan_tree(&mut self, idx: usize, rel: &Path, index: &HolderIndex) -> Option<Summary> {
        let settings = self.settings;
        let pool = &settings.pools[idx];
        // The walk runs on several threads: these are shared between them.
        let summary = Mutex::new(Summary::default());
        let watcher = Mutex::new(&mut self.watcher);
        let degraded = Mutex::new(&mut self.degraded[idx]);
        let result = self.reconciler.scan(
            idx,
            rel,
            index,
            &|dir, fd| {
                let added = watcher.lock().expect("watcher").add(idx, dir, fd);
                let mut degraded = degraded.lock().expect("degraded");
                if let Err(e) = added
                    && !**degraded
                {
                    **degraded = true;
                    tracing::warn!(pool = %pool.name, dir = %crate::logpath(dir), error = %e,
                        "cannot watch directory (fs.inotify.max_user_watches?); rescanning the pool every {}s instead",
                        settings.unwatched_rescan.as_secs());
                }
            },
            &|path, ex| {
                summary.lock().expect("summary").add(ex);
                log_outcome(&pool.name, path, ex, tracing::Level::DEBUG);
            },
        );
        let summary = summary.into_inner().expect("summary");
        match result {
            Ok(()) => {
                self.missing[idx] = false;
                tracing::info!(pool = %pool.name, path = %crate::logpath(rel), %summary, "scanned");
                Some(summary)
            }
            Err(e) if pool.lvm().is_some() => {
                tracing::warn!(pool = %pool.name, error = %e, "cannot scan LV nodes");
                None
            }
            Err(e) => {
                if !self.missing[idx] {
                    tracing::warn!(pool = %pool.name, location = %pool.location(), error = %e,
                        "pool directory unavailable; waiting for it to appear");
                }
                self.missing[idx] = true;
                self.reconciler.forget_root(idx);
                None
            }
        }
    }

    /// Acts on a batch of changes under the lock.
    fn handle(&mut self, changes: Vec<Change>) -> Result<()> {
        let _lock = lock::acquire(&self.settings.state_dir)?;
        if changes.contains(&Change::Overflow) {
            tracing::warn!("inotify queue overflowed: rescanning every pool");
            self.scan_all()?;
            return Ok(());
        }
        let mut entries: BTreeMap<(usize, PathBuf), bool> = BTreeMap::new();
        let mut index: Option<HolderIndex> = None;
        for change in changes {
            match change {
                Change::Entry {
                    pool,
                    rel,
                    appeared,
                } => {
                    *entries.entry((pool, rel)).or_default() |= appeared;
                }
                Change::NewTree { pool, rel } => {
                    if index.is_none() {
                        index = Some(self.holder_index()?);
                    }
                    if self.unreachable[pool] {
                        continue;
                    }
                    let index = index.as_ref().expect("just loaded");
                    self.scan_tree(pool, &rel, index);
                }
                Change::GoneTree { pool, rel } => self.watcher.remove_tree(pool, &rel),
                Change::RootGone { pool } => self.root_gone(pool),
                Change::Overflow => unreachable!("handled above"),
            }
        }
        // A burst of new files is served by one read of every attachment (not one query
        // per file); a few events (the echo of a label the API just wrote) by a
        // query each, which does not grow with the number of attachments.
        let index = match index {
            Some(index) => Some(index),
            None if entries.is_empty() => return Ok(()),
            None if entries.len() > QUERIES_PER_BATCH => Some(self.holder_index()?),
            None => None,
        };
        for ((idx, rel), appeared) in entries {
            if self.missing[idx] || self.unreachable[idx] {
                continue;
            }
            let pool = &self.settings.pools[idx];
            let key = rel.as_os_str().as_bytes();
            let queried;
            let holders = match &index {
                Some(index) => index
                    .get(&pool.name)
                    .and_then(|m| m.get(key))
                    .map_or(&[][..], Vec::as_slice),
                None => match self.holders_of(idx, key)? {
                    Some(holders) => {
                        queried = holders;
                        &queried
                    }
                    None => continue,
                },
            };
            let ex = self.reconciler.reconcile_path(idx, &rel, holders);
            log_outcome(&pool.name, &rel, &ex, tracing::Level::INFO);
            let kind = match (&ex.outcome, appeared) {
                (Outcome::Relabeled, _) => EventKind::Relabeled,
                (Outcome::Unchanged, true) => EventKind::Appeared,
                _ => continue,
            };
            self.publish(kind, idx, &pool.entry_path(&rel).to_string_lossy(), &ex);
        }
        Ok(())
    }

    /// Labels the LV nodes that udev just added or changed (an LV activated, refreshed,
    /// extended: udev may have reset the node's label).
    fn handle_udev(&mut self) -> Result<()> {
        let settings = self.settings;
        let Some(monitor) = self.monitor.as_mut() else {
            return Ok(());
        };
        let events = monitor.read(&|vg| settings.lvm_pool_of(vg).is_some());
        if events.is_empty() {
            return Ok(());
        }
        let _lock = lock::acquire(&settings.state_dir)?;
        for node in events {
            let Some(idx) = settings.lvm_pool_of(&node.vg).map(|p| p.index()) else {
                continue;
            };
            let pool = &settings.pools[idx];
            let Some(holders) = self.holders_of(idx, node.lv_uuid.as_bytes())? else {
                continue;
            };
            let ex = self.reconciler.reconcile_lv_node(idx, &node, &holders);
            let name = format!("{}/{} ({})", node.vg, node.lv, node.devnode.display());
            log_outcome(&pool.name, Path::new(&name), &ex, tracing::Level::INFO);
            if ex.outcome == Outcome::Relabeled {
                self.publish(
                    EventKind::Relabeled,
                    idx,
                    &format!("{}/{}", node.vg, node.lv),
                    &ex,
                );
            }
        }
        Ok(())
    }

    /// Tells `Monitor` clients about a volume (nobody listening is fine).
    fn publish(&self, kind: EventKind, idx: usize, volume: &str, ex: &Examined) {
        let _ = self.events.send(Event::new(
            kind,
            self.settings.pools[idx].name.clone(),
            volume.into(),
            ex.desired.as_ref().map(|c| c.to_string()),
        ));
    }

    /// Pool `idx`'s directory was removed or replaced: stop watching the old tree and
    /// look for the path again on every tick.
    fn root_gone(&mut self, idx: usize) {
        if self.missing[idx] {
            return;
        }
        let p = &self.settings.pools[idx];
        tracing::warn!(pool = %p.name, dir = %p.location(), "pool directory removed or replaced; waiting for it to appear");
        self.watcher.remove_tree(idx, Path::new(""));
        self.reconciler.forget_root(idx);
        self.missing[idx] = true;
    }

    /// Periodic work: pools removed or replaced, pools that came back, and pools that
    /// cannot be watched fully.
    fn tick(&mut self) -> Result<()> {
        self.renew_presence();
        for idx in 0..self.settings.pools.len() {
            let is_dir = self.settings.pools[idx].dir().is_some();
            if is_dir && !self.missing[idx] && !self.reconciler.root_is_current(idx) {
                self.root_gone(idx);
            }
        }
        if self.unreachable.contains(&true) && self.last_etcd_try.elapsed() >= ETCD_RETRY {
            self.last_etcd_try = Instant::now();
            self.rescan_reachable()?;
        }
        let rescan_degraded = self.last_degraded_rescan.elapsed() >= self.settings.unwatched_rescan;
        let due: Vec<usize> = (0..self.settings.pools.len())
            .filter(|i| {
                let back = || {
                    self.settings.pools[*i]
                        .dir()
                        .is_some_and(|d| d.path.is_dir())
                };
                (self.missing[*i] && back()) || (rescan_degraded && self.degraded[*i])
            })
            .collect();
        if rescan_degraded {
            self.last_degraded_rescan = Instant::now();
        }
        if due.is_empty() {
            return Ok(());
        }
        let _lock = lock::acquire(&self.settings.state_dir)?;
        let index = self.holder_index()?;
        for idx in due {
            if self.unreachable[idx] {
                continue;
            }
            if self.missing[idx] {
                tracing::info!(pool = %self.settings.pools[idx].name, "pool directory is back");
            }
            self.scan_tree(idx, Path::new(""), &index);
        }
        Ok(())
    }
}

impl Engine<'_> {
    /// Renews this host's liveness key every third of its lease.
    fn renew_presence(&mut self) {
        let Some(presence) = self.presence.as_mut() else {
            return;
        };
        if self
            .last_presence
            .is_some_and(|t| t.elapsed() < presence::TTL / 3)
        {
            return;
        }
        self.last_presence = Some(Instant::now());
        match presence.renew() {
            Ok(anew) => {
                if anew || self.presence_failing {
                    tracing::info!("this host is alive in the cluster (its key is renewed)");
                }
                self.presence_failing = false;
            }
            Err(e) => {
                if !self.presence_failing {
                    tracing::warn!(error = %e, "cannot renew this host's key in the cluster");
                }
                self.presence_failing = true;
            }
        }
    }

    /// Asks for the holders of the shared pools left alone while etcd did not answer;
    /// scans those it now can (their labels converge to the cluster's holders) and
    /// says what changed.
    fn rescan_reachable(&mut self) -> Result<()> {
        let _lock = lock::acquire(&self.settings.state_dir)?;
        let before = self.unreachable.clone();
        let index = self.holder_index()?;
        let back: Vec<usize> = (0..before.len())
            .filter(|i| before[*i] && !self.unreachable[*i])
            .collect();
        for idx in back {
            if let Some(summary) = self.scan_tree(idx, Path::new(""), &index) {
                tracing::info!(pool = %self.settings.pools[idx].name, %summary,
                    "etcd answers again: the shared pool is reconciled with the cluster's holders");
            }
        }
        Ok(())
    }
}

/// Logs what happened to an entry: failures always, relabels at `relabel_level`
/// (a scan relabeling 100,000 files logs its summary instead).
fn log_outcome(pool: &str, path: &Path, ex: &Examined, relabel_level: tracing::Level) {
    match &ex.outcome {
        Outcome::Failed(e) => {
            tracing::warn!(pool, path = %crate::logpath(path), error = %e, "cannot label");
        }
        Outcome::Skipped(reason) => {
            tracing::debug!(pool, path = %crate::logpath(path), reason = reason.as_str(), "skipped");
        }
        Outcome::Relabeled => {
            let to = ex.desired.as_ref().map_or("", |c| c.as_str());
            if relabel_level == tracing::Level::INFO {
                tracing::info!(pool, path = %crate::logpath(path), from = ?ex.current, to, "relabeled");
            } else {
                tracing::debug!(pool, path = %crate::logpath(path), from = ?ex.current, to, "relabeled");
            }
        }
        Outcome::Unchanged | Outcome::Missing => {}
    }
}

/// Returns to the kernel what a full scan freed: the file_contexts handle the scan
/// shared (about 20 MiB; the next lookup loads it again) and what the walker threads
/// left in their own malloc arenas, which glibc otherwise keeps for ever.
fn give_back_memory() {
    crate::decide::policy::FileContexts::forget_shared();
    // SAFETY: malloc_trim only releases free memory of the allocator's arenas; it is
    // safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
