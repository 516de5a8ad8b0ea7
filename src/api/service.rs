//! The `io.svirtpool` methods. One `Api` value serves one connection: it knows its
//! peer (for authorization) and shares the settings and the event channel.
//!
//! Every method that touches the system runs the shared operation (`ops`) on a
//! blocking thread, so a slow one never stalls the runtime that serves the others.

// The service macro generates public items without docs.
#![allow(missing_docs)]

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use futures_util::Stream;
use zlink::{Reply, service};

use super::args::{
    MAX_GUEST_PAGE, MAX_PAGE, mode_arg, named_volume, one_fd, uuid_arg, volume_arg, volume_filter,
    volume_format,
};
use super::auth::Access;
use super::monitor;
use super::pages;
use super::replies::*;
pub use super::session::Api;
use super::types::*;
use crate::model::EventKind;
use crate::ops::{check_path, files, guests, lifecycle, listing, report, volumes};

/// The last `ListPools` answer, when it was made, and the count of API mutations it saw
/// ([`super::session::MUTATIONS`]): one made before a mutation is not served again.
static POOLS: tokio::sync::Mutex<Option<(std::time::Instant, u64, Vec<Pool>)>> =
    tokio::sync::Mutex::const_new(None);

/// How long a `ListPools` answer is served again: what changed without the API (a file
/// copied in by hand) shows after at most this long.
const POOLS_FRESH: std::time::Duration = std::time::Duration::from_secs(5);

#[service(
    interface = "io.svirtpool",
    types = [Pool, Volume, BackingFile, Holder, Guest, Attachment, Labeled, Event, PathCheck, PathStep],
    vendor = "svirt-pool",
    product = "svirt-pool",
    version = env!("CARGO_PKG_VERSION"),
    url = "https://github.com/svirt-pool/svirt-pool"
)]
impl Api {
    /// Every managed pool.
    async fn list_pools(&self) -> Result<PoolsReply, ApiError> {
        self.allow("ListPools", Access::Read)?;
        // Counting volumes walks every pool: the answer is shared by every caller for
        // POOLS_FRESH, and one walk runs at a time (callers meanwhile wait for it), so
        // no client can make the agent walk its pools over and over.
        let mut cached = POOLS.lock().await;
        let mutations = super::session::MUTATIONS.load(std::sync::atomic::Ordering::Acquire);
        if let Some((at, seen, pools)) = cached.as_ref()
            && at.elapsed() < POOLS_FRESH
            && *seen == mutations
        {
            return Ok(PoolsReply {
                pools: pools.clone(),
            });
        }
        let pools: Vec<Pool> = self
            .blocking(|s| {
                let status = report::status(s)?;
                Ok(status
                    .iter()
                    .enumerate()
                    .map(|(idx, p)| Pool::from_status(p, listing::space(s, idx)))
                    .collect())
            })
            .await?;
        *cached = Some((std::time::Instant::now(), mutations, pools.clone()));
        Ok(PoolsReply { pools })
    }

    /// The volumes of a pool in name order, a page at a time (`limit` at most 500):
    /// pass the reply's `next` as `after` for the next page. Called with `more`, every
    /// page from `after` to the end comes as a reply of its own, in one call. Optional
    /// filters: a name `prefix`, a `format`, a `state` (`free`, `attached`, `rw`, `ro`,
    /// `shared`, `drift`).
    #[zlink(more)]
    #[allow(clippy::too_many_arguments)]
    async fn list_volumes(
        &self,
        more: bool,
        pool: String,
        after: Option<String>,
        limit: Option<u64>,
        prefix: Option<String>,
        format: Option<String>,
        state: Option<String>,
    ) -> impl Stream<Item = Result<Reply<VolumesReply>, ApiError>> + Unpin {
        let request = self.allow("ListVolumes", Access::Read).and_then(|()| {
            let limit = limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
            Ok(pages::Request {
                viewer: self.caller(),
                pool,
                after,
                limit: usize::try_from(limit).unwrap_or(1),
                filter: volume_filter(prefix, format, state)?,
            })
        });
        pages::volume_pages(self.clone(), request, more)
    }

    /// Defines a guest (idempotent for the same UUID) and returns its labels.
    async fn define_guest(
        &self,
        uuid: String,
        name: Option<String>,
    ) -> Result<GuestReply, ApiError> {
        self.allow("DefineGuest", Access::Operate)?;
        let uuid = uuid_arg("uuid", &uuid)?;
        let caller = self.caller();
        let g = self
            .blocking(move |s| guests::define(s, caller, &uuid, name.as_deref()))
            .await?;
        tracing::info!(uid = self.peer.uid, pid = self.peer.pid, guest = %g.uuid, "api DefineGuest");
        Ok(GuestReply { guest: g })
    }

    /// Forgets a guest; `force` releases its volumes first.
    async fn undefine_guest(
        &self,
        uuid: String,
        force: Option<bool>,
    ) -> Result<ReleasedReply, ApiError> {
        self.allow("UndefineGuest", Access::Admin)?;
        let uuid = uuid_arg("uuid", &uuid)?;
        let u = uuid.clone();
        let released = self
            .blocking(move |s| guests::undefine(s, &u, force.unwrap_or(false)))
            .await?;
        self.mutated(
            "UndefineGuest",
            Event::new(EventKind::Undefined, String::new(), uuid, None),
        );
        Ok(ReleasedReply {
            released: released as u64,
        })
    }

    /// One guest and what it holds.
    async fn get_guest(&self, uuid: String) -> Result<GuestDetailReply, ApiError> {
        self.allow("GetGuest", Access::Read)?;
        let uuid = uuid_arg("uuid", &uuid)?;
        let (guest, attachments) = self.blocking(move |s| guests::show(s, &uuid)).await?;
        Ok(GuestDetailReply { guest, attachments })
    }

    /// The guests in UUID order, a page at a time (`limit` at most 100): pass the
    /// reply's `next` as `after` for the next page.
    async fn list_guests(
        &self,
        after: Option<String>,
        limit: Option<u64>,
    ) -> Result<GuestsReply, ApiError> {
        self.allow("ListGuests", Access::Read)?;
        let after = after.map(|a| uuid_arg("after", &a)).transpose()?;
        let limit = limit.unwrap_or(MAX_GUEST_PAGE).clamp(1, MAX_GUEST_PAGE);
        let limit = u32::try_from(limit).unwrap_or(1);
        let (page, next) = self
            .blocking(move |s| guests::page(s, after.as_deref(), limit))
            .await?;
        Ok(GuestsReply { guests: page, next })
    }

    /// Gives a guest a volume (a path in a dir pool, or `VG/LV`) in `mode` (`rw`, `ro`, `shared`).
    async fn attach(
        &self,
        guest: String,
        volume: String,
        mode: String,
    ) -> Result<LabeledReply, ApiError> {
        self.allow("Attach", Access::Operate)?;
        let guest = uuid_arg("guest", &guest)?;
        let mode = mode_arg(&mode)?;
        let v = named_volume(&self.settings, &volume)?;
        let pool = pool_of(&self.settings, &v);
        let caller = self.caller();
        let r = self
            .batched(caller, v, move |s, v| {
                volumes::prepare_attach(s, caller, &guest, v, mode)
            })
            .await?;
        self.mutated("Attach", volume_event(EventKind::Attached, pool, &r));
        Ok(labeled(r))
    }

    /// Takes a volume back from a guest.
    async fn detach(&self, guest: String, volume: String) -> Result<LabeledReply, ApiError> {
        self.allow("Detach", Access::Operate)?;
        let guest = uuid_arg("guest", &guest)?;
        let v = named_volume(&self.settings, &volume)?;
        let pool = pool_of(&self.settings, &v);
        let caller = self.caller();
        let r = self
            .batched(caller, v, move |s, v| {
                volumes::prepare_detach(s, caller, &guest, v)
            })
            .await?;
        self.mutated("Detach", volume_event(EventKind::Detached, pool, &r));
        Ok(labeled(r))
    }

    /// Takes every volume back from a guest.
    async fn release(&self, guest: String) -> Result<ReleasedReply, ApiError> {
        self.allow("Release", Access::Operate)?;
        let guest = uuid_arg("guest", &guest)?;
        let caller = self.caller();
        let g = guest.clone();
        let released = self
            .blocking(move |s| volumes::release(s, caller, &g))
            .await?;
        self.mutated(
            "Release",
            Event::new(EventKind::Released, String::new(), guest, None),
        );
        Ok(ReleasedReply {
            released: released as u64,
        })
    }

    /// libvirt's qemu hook, relayed by `svirt-pool libvirt-hook` (root only): `op` and
    /// `subop` as libvirt passed them, `xml` the domain XML it gave on stdin.
    async fn libvirt_hook(
        &self,
        op: String,
        subop: String,
        xml: String,
    ) -> Result<HookReply, ApiError> {
        self.allow("LibvirtHook", Access::Admin)?;
        let batcher = self.batcher.clone();
        let summary = self
            .blocking(move |s| crate::libvirt::hook::run(&batcher, s, &op, &subop, &xml))
            .await?;
        tracing::info!(uid = self.peer.uid, pid = self.peer.pid, %summary, "api LibvirtHook");
        Ok(HookReply { summary })
    }

    /// Copies the file behind the one passed fd into dir pool `pool` as `name`, with the
    /// pool's resting label. The agent never opens the caller's path itself.
    async fn import(
        &self,
        pool: String,
        name: String,
        #[zlink(fds)] fds: Vec<OwnedFd>,
    ) -> Result<LabeledReply, ApiError> {
        self.allow("Import", Access::Operate)?;
        let fd = one_fd(fds)?;
        let p = pool.clone();
        let caller = self.caller();
        let r = self
            .blocking_long(move |s| files::import(s, caller, &p, &name, fd))
            .await?;
        self.mutated("Import", volume_event(EventKind::Imported, pool, &r));
        Ok(labeled(r))
    }

    /// Whether the emulator can reach `path` (absolute) for `guest` (or any guest):
    /// DAC and SELinux for every component, the first that blocks and its fix.
    /// Changes nothing; the path is looked at with the caller's own rights.
    async fn check_path(
        &self,
        path: String,
        guest: Option<String>,
    ) -> Result<PathCheckReply, ApiError> {
        self.allow("CheckPath", Access::Read)?;
        let v = volume_arg(&self.settings, &path)?;
        let guest = guest.map(|g| uuid_arg("guest", &g)).transpose()?;
        let caller = self.caller();
        let check = self
            .blocking(move |s| check_path::check(s, caller, &v, guest.as_deref()))
            .await?;
        Ok(PathCheckReply { check })
    }

    /// Creates volume `name` at the root of dir pool `pool`: `raw` (sparse) or `qcow2`,
    /// `capacity` bytes (a qcow2 overlay on `backing`, a volume of the same pool, gets the
    /// backing file's size when none is given). The caller owns it; it rests.
    async fn create_volume(
        &self,
        pool: String,
        name: String,
        format: String,
        capacity: Option<u64>,
        backing: Option<String>,
    ) -> Result<LabeledReply, ApiError> {
        self.allow("CreateVolume", Access::Operate)?;
        let format = volume_format(&format)?;
        let p = pool.clone();
        let caller = self.caller();
        let r = self
            .blocking(move |s| {
                let new = lifecycle::NewVolume {
                    name: &name,
                    format,
                    capacity,
                    backing: backing.as_deref(),
                };
                lifecycle::create(s, caller, &p, &new)
            })
            .await?;
        self.mutated("CreateVolume", volume_event(EventKind::Created, pool, &r));
        Ok(labeled(r))
    }

    /// Deletes volume `name` (its path below the root) of dir pool `pool`, as the
    /// caller could itself; refused while it, or an overlay on it, is held.
    async fn delete_volume(&self, pool: String, name: String) -> Result<(), ApiError> {
        self.allow("DeleteVolume", Access::Operate)?;
        let caller = self.caller();
        let (p, n) = (pool.clone(), name.clone());
        self.blocking(move |s| lifecycle::delete(s, caller, &p, &n))
            .await?;
        self.mutated(
            "DeleteVolume",
            Event::new(EventKind::Deleted, pool, name, None),
        );
        Ok(())
    }

    /// Creates save image `name` in dir pool `pool` with `guest`'s image label and
    /// returns it open read-write as the one passed fd.
    #[zlink(return_fds)]
    async fn create_save_image(
        &self,
        guest: String,
        pool: String,
        name: String,
    ) -> (Result<LabeledReply, ApiError>, Vec<OwnedFd>) {
        let guest = match self
            .allow("CreateSaveImage", Access::Operate)
            .and_then(|()| uuid_arg("guest", &guest))
        {
            Ok(g) => g,
            Err(e) => return (Err(e), vec![]),
        };
        let p = pool.clone();
        let caller = self.caller();
        match self
            .blocking(move |s| files::create_save_image(s, caller, &guest, &p, &name))
            .await
        {
            Ok((r, fd)) => {
                self.mutated(
                    "CreateSaveImage",
                    volume_event(EventKind::Created, pool, &r),
                );
                (Ok(labeled(r)), vec![fd])
            }
            Err(e) => (Err(e), vec![]),
        }
    }

    /// Attaches a volume to a guest in `mode`, then returns it open (read-only for `ro`)
    /// as the one passed fd, for hot-plug without giving QEMU the right to open paths.
    #[zlink(return_fds)]
    async fn open(
        &self,
        guest: String,
        volume: String,
        mode: String,
    ) -> (Result<LabeledReply, ApiError>, Vec<OwnedFd>) {
        let guest = match self
            .allow("Open", Access::Operate)
            .and_then(|()| uuid_arg("guest", &guest))
        {
            Ok(g) => g,
            Err(e) => return (Err(e), vec![]),
        };
        let mode = match mode_arg(&mode) {
            Ok(m) => m,
            Err(e) => return (Err(e), vec![]),
        };
        let v = match named_volume(&self.settings, &volume) {
            Ok(v) => v,
            Err(e) => return (Err(e), vec![]),
        };
        let pool = pool_of(&self.settings, &v);
        let caller = self.caller();
        let batcher = self.batcher.clone();
        match self
            .blocking(move |s| files::open(&batcher, s, caller, &guest, v, mode))
            .await
        {
            Ok((r, fd)) => {
                self.mutated("Open", volume_event(EventKind::Attached, pool, &r));
                (Ok(labeled(r)), vec![fd])
            }
            Err(e) => (Err(e), vec![]),
        }
    }

    /// Streams volume and label changes (call with `more`).
    #[zlink(more)]
    async fn monitor(
        &self,
        more: bool,
    ) -> impl Stream<Item = Result<Reply<EventReply>, ApiError>> + Unpin {
        let allowed = self.allow("Monitor", Access::Read);
        let receiver = self.events.subscribe();
        if allowed.is_ok() {
            self.streaming.store(true, Ordering::Relaxed);
        }
        monitor::events(
            receiver,
            allowed,
            self.streaming.clone(),
            self.hangup.clone(),
            more,
        )
    }
}
