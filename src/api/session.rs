//! One connection's service: its peer, the shared settings and event channel, and what
//! every method does first (authorize, run the operation on the blocking pool, log and
//! announce a mutation). The methods themselves are in `service`.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::io::unix::AsyncFd;
use tokio::sync::broadcast;

use super::auth::{self, Access, Peer};
use super::types::{ApiError, Event};
use crate::config::Settings;
use crate::error::Error;
use crate::model::Labeled;
use crate::ops::locate::Named;
use crate::ops::volumes::Batcher;
use crate::ops::{Caller, volumes};

/// How many mutations the API has made: a cached `ListPools` answer older than the last
/// is not served again.
pub(super) static MUTATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many blocking calls of each user other than root are running, those that were
/// answered `Failed` after `api.call_timeout` included: a thread stuck in a filesystem
/// that never answers is the user's until it returns, so one user can hold at most
/// `api.max_connections_per_user` of the blocking pool's threads. Root is not counted.
static RUNNING: std::sync::Mutex<std::collections::BTreeMap<u32, usize>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// One running blocking call of a user, given back when dropped (when its thread
/// returns, however long after its answer).
pub(super) struct Running(Option<u32>);

impl Running {
    fn take(uid: u32, limit: usize) -> Result<Running, ApiError> {
        if uid == 0 {
            return Ok(Running(None));
        }
        let mut running = RUNNING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = running.entry(uid).or_insert(0);
        if *n >= limit {
            return Err(ApiError::Refused {
                reason: format!(
                    "{n} calls of uid {uid} are still running (api.max_connections_per_user): \
                     wait for them"
                ),
            });
        }
        *n += 1;
        Ok(Running(Some(uid)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(uid) = self.0 else { return };
        let mut running = RUNNING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = running.get_mut(&uid) {
            *n -= 1;
            if *n == 0 {
                running.remove(&uid);
            }
        }
    }
}

/// The service for one connection.
#[derive(Debug, Clone)]
pub struct Api {
    pub(super) settings: Arc<Settings>,
    /// The agent's queue of attach and detach calls (one batch, one commit).
    pub(super) batcher: Arc<Batcher>,
    pub(super) peer: Peer,
    pub(super) events: broadcast::Sender<Event>,
    /// Set while a `Monitor` stream runs, so the idle timeout spares the connection.
    pub(super) streaming: Arc<AtomicBool>,
    /// Another descriptor of the connection's socket: readable-closed when the peer
    /// hangs up, which ends a `Monitor` stream at once.
    pub(super) hangup: Arc<AsyncFd<OwnedFd>>,
}

impl Api {
    /// A service for a connection from `peer`.
    pub fn new(
        settings: Arc<Settings>,
        batcher: Arc<Batcher>,
        peer: Peer,
        events: broadcast::Sender<Event>,
        streaming: Arc<AtomicBool>,
        hangup: Arc<AsyncFd<OwnedFd>>,
    ) -> Self {
        Api {
            settings,
            batcher,
            peer,
            events,
            streaming,
            hangup,
        }
    }

    /// Refuses (and logs) a method the peer may not call.
    pub(super) fn allow(&self, method: &str, need: Access) -> Result<(), ApiError> {
        auth::check(&self.peer, need, &self.settings.api).map_err(|reason| {
            tracing::warn!(
                method,
                uid = self.peer.uid,
                pid = self.peer.pid,
                %reason,
                "refused"
            );
            ApiError::PermissionDenied {
                method: method.to_owned(),
                reason: reason.to_string(),
            }
        })
    }

    /// Who this connection's peer is, for the operations.
    pub(super) fn caller(&self) -> Caller {
        Caller {
            uid: self.peer.uid,
            gid: self.peer.gid,
        }
    }

    /// Runs a blocking operation on the blocking pool, answering `Failed` when it has
    /// not finished within `api.call_timeout` (a path into a filesystem that never
    /// answers). Its thread cannot be taken back: it counts against the user's running
    /// calls ([`Running`]) until it returns.
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Settings) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.run_blocking(op, Some(self.settings.api.call_timeout))
            .await
    }

    /// [`Api::blocking`] without the deadline, for `Import`, whose copy is bounded by
    /// its own progress (a large ISO takes minutes).
    pub(super) async fn blocking_long<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Settings) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.run_blocking(op, None).await
    }

    async fn run_blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Settings) -> Result<T, Error> + Send + 'static,
        deadline: Option<std::time::Duration>,
    ) -> Result<T, ApiError> {
        let slot = Running::take(self.peer.uid, self.settings.api.max_connections_per_user)?;
        let settings = self.settings.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            op(&settings)
        });
        let joined = match deadline {
            None => task.await,
            Some(d) => tokio::time::timeout(d, task)
                .await
                .map_err(|_| ApiError::Failed {
                    reason: format!(
                        "the call did not finish within {} s (api.call_timeout_secs): a \
                         filesystem on its path does not answer?",
                        d.as_secs()
                    ),
                })?,
        };
        joined
            .map_err(|e| ApiError::Failed {
                reason: format!("internal error: {e}"),
            })?
            .map_err(ApiError::from)
    }

    /// Runs an attach or a detach in the next batch. Its preparation runs here when it
    /// is computation only, else on the blocking pool; the batch itself runs on the
    /// batch thread, so no thread waits for it (`ops::volumes::batch`).
    pub(super) async fn batched(
        &self,
        caller: Caller,
        volume: Named,
        prepare: impl FnOnce(&Settings, Named) -> Result<volumes::Call, Error> + Send + 'static,
    ) -> Result<Labeled, ApiError> {
        let call = if volumes::prepares_at_once(caller, &volume) {
            prepare(&self.settings, volume)?
        } else {
            self.blocking(move |s| prepare(s, volume)).await?
        };
        Ok(call.run(&self.batcher, &self.settings).await?)
    }

    /// Logs a mutation with its peer and tells `Monitor` clients.
    pub(super) fn mutated(&self, method: &str, event: Event) {
        tracing::info!(method, uid = self.peer.uid, pid = self.peer.pid,
            pool = %event.pool, volume = %event.volume, "api mutation");
        MUTATIONS.fetch_add(1, std::sync::atomic::Ordering::Release);
        let _ = self.events.send(event);
    }
}
