//! Serving the API: the socket (bound, or passed by systemd), one zlink server per
//! connection on its own task, and the limits that keep one client from stalling the
//! others (connection cap, request size, idle and write timeouts).
//!
//! zlink's stock `Server` serves every connection from one task and has no limits of its
//! own, so each accepted socket is wrapped in [`Guarded`] and served by a `Server` over a
//! `ReadyListener` holding just that socket.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::Permissions;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::broadcast;
use zlink::ReadyListener;
use zlink::connection::PassedCredentials;
use zlink::connection::socket::ReadResult;
use zlink::connection::socket::{self, ReadHalf, Socket, WriteHalf};

use super::auth::Peer;
use super::service::Api;
use super::types::Event;
use crate::config::{ApiSettings, Settings};
use crate::ops::volumes::Batcher;

type Inner = zlink::tokio::unix::Stream;

/// Limits applied to one connection.
#[derive(Debug)]
struct Limits {
    max_request: usize,
    idle: Duration,
    write: Duration,
}

/// A Unix stream with the API's limits.
#[derive(Debug)]
pub struct Guarded {
    inner: Inner,
    limits: Arc<Limits>,
    streaming: Arc<AtomicBool>,
}

/// The read half of [`Guarded`]: idle timeout, request size cap, close-on-exec fds.
#[derive(Debug)]
pub struct GuardedRead {
    inner: <Inner as Socket>::ReadHalf,
    limits: Arc<Limits>,
    streaming: Arc<AtomicBool>,
    /// Bytes of the request being received (since the last NUL terminator).
    pending: usize,
}

/// The write half of [`Guarded`]: every write bounded in time.
#[derive(Debug)]
pub struct GuardedWrite {
    inner: <Inner as Socket>::WriteHalf,
    limits: Arc<Limits>,
}

impl Socket for Guarded {
    type ReadHalf = GuardedRead;
    type WriteHalf = GuardedWrite;
    const CAN_TRANSFER_FDS: bool = true;

    fn split(self) -> (GuardedRead, GuardedWrite) {
        let (r, w) = self.inner.split();
        (
            GuardedRead {
                inner: r,
                limits: self.limits.clone(),
                streaming: self.streaming,
                pending: 0,
            },
            GuardedWrite {
                inner: w,
                limits: self.limits,
            },
        )
    }
}

fn closed(kind: io::ErrorKind, why: &str) -> zlink::Error {
    zlink::Error::Io(io::Error::new(kind, why.to_owned()))
}

impl ReadHalf for GuardedRead {
    async fn read(&mut self, buf: &mut [u8]) -> zlink::Result<ReadResult> {
        let mut result = loop {
            match tokio::time::timeout(self.limits.idle, self.inner.read(buf)).await {
                Ok(r) => break r?,
                // A Monitor client only listens: it is not idle.
                Err(_) if self.streaming.load(Ordering::Relaxed) => continue,
                Err(_) => return Err(closed(io::ErrorKind::TimedOut, "idle connection closed")),
            }
        };
        for &b in &buf[..result.bytes_read()] {
            if b == 0 {
                self.pending = 0;
            } else {
                self.pending += 1;
                if self.pending > self.limits.max_request {
                    tracing::warn!(
                        limit = self.limits.max_request,
                        "request too large: connection closed"
                    );
                    return Err(closed(io::ErrorKind::InvalidData, "request too large"));
                }
            }
        }
        // zlink hands received fds over without close-on-exec: set it before anyone forks.
        for fd in result.fds() {
            let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
        }
        let _ = result.take_credentials();
        Ok(result)
    }
}

impl AsFd for GuardedRead {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl socket::UnixSocket for GuardedRead {}

impl WriteHalf for GuardedWrite {
    async fn write(
        &mut self,
        buf: &[u8],
        fds: &[impl AsFd],
        credentials: Option<&PassedCredentials>,
    ) -> zlink::Result<()> {
        match tokio::time::timeout(self.limits.write, self.inner.write(buf, fds, credentials)).await
        {
            Ok(r) => r,
            Err(_) => Err(closed(
                io::ErrorKind::TimedOut,
                "client does not read: connection closed",
            )),
        }
    }
}

/// The listening socket: passed by systemd (`LISTEN_FDS`), or bound by us (and then
/// removed when dropped).
pub struct Socket_ {
    listener: UnixListener,
    bound: Option<PathBuf>,
}

impl Drop for Socket_ {
    fn drop(&mut self) {
        if let Some(path) = &self.bound {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Takes the socket systemd passed, else binds `api.socket` with the mode and group
/// that `api` asks for (the umask must not decide who may connect).
pub fn listen(api: &ApiSettings) -> io::Result<Socket_> {
    if let Ok(mut fds) = sd_notify::listen_fds()
        && let Some(fd) = fds.next()
    {
        // SAFETY: systemd passed this descriptor to us (LISTEN_PID checked by listen_fds).
        let std_listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
        std_listener.set_nonblocking(true)?;
        rustix::io::fcntl_setfd(&std_listener, rustix::io::FdFlags::CLOEXEC)?;
        tracing::info!("serving the API on the socket systemd passed");
        return Ok(Socket_ {
            listener: UnixListener::from_std(std_listener)?,
            bound: None,
        });
    }
    let path = &api.socket;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    remove_stale(path)?;
    let listener = UnixListener::bind(path)?;
    let (mode, gid) = match (&api.group, api.read_only_for_all) {
        (_, true) => (0o666, api.group.as_ref().map(|g| g.1)),
        (Some((_, gid)), false) => (0o660, Some(*gid)),
        (None, false) => (0o600, None),
    };
    std::fs::set_permissions(path, Permissions::from_mode(mode))?;
    if let Some(gid) = gid {
        rustix::fs::chown(path, None, Some(rustix::fs::Gid::from_raw(gid)))?;
    }
    tracing::info!(socket = %path.display(), mode = format!("{mode:o}"), "serving the API");
    Ok(Socket_ {
        listener,
        bound: Some(path.clone()),
    })
}

/// Removes a socket left by a previous run; refuses to replace anything else, or a
/// socket someone still listens on.
fn remove_stale(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if !m.file_type().is_socket() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Ok(_) if std::os::unix::net::UnixStream::connect(path).is_ok() => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another agent serves {}", path.display()),
        )),
        Ok(_) => std::fs::remove_file(path),
    }
}

/// Accepts connections until the future is dropped; each is served on its own local
/// task (zlink's server future is not `Send`). Must run inside a `LocalSet`.
pub async fn serve(
    socket: Socket_,
    settings: Arc<Settings>,
    batcher: Arc<Batcher>,
    events: broadcast::Sender<Event>,
) {
    let limits = Arc::new(Limits {
        max_request: settings.api.max_request_bytes,
        idle: settings.api.idle_timeout,
        write: settings.api.write_timeout,
    });
    let slots = Rc::new(RefCell::new(Slots::default()));
    loop {
        let stream = match socket.listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = match stream.peer_cred() {
            Ok(c) => Peer {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid().unwrap_or(0),
            },
            Err(e) => {
                tracing::warn!(error = %e, "SO_PEERCRED failed: closing the connection");
                continue;
            }
        };
        let Some(slot) = Slot::take(&slots, peer.uid, &settings.api) else {
            drop(stream);
            continue;
        };
        // A second descriptor of the socket, to notice at once when a Monitor client
        // hangs up (zlink reads nothing while a stream runs).
        let hangup = match rustix::io::dup(&stream).map(|fd| {
            // SAFETY: the AsyncFd owns this OwnedFd, which stays open (and the same
            // descriptor) until the AsyncFd drops it.
            unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
            }
        }) {
            Ok(Ok(fd)) => Arc::new(fd),
            _ => {
                tracing::warn!("cannot watch a connection for hang-ups: closing it");
                continue;
            }
        };
        let inner = match Inner::try_from(stream) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot serve connection");
                continue;
            }
        };
        let streaming = Arc::new(AtomicBool::new(false));
        let socket = Guarded {
            inner,
            limits: limits.clone(),
            streaming: streaming.clone(),
        };
        let api = Api::new(
            settings.clone(),
            batcher.clone(),
            peer,
            events.clone(),
            streaming,
            hangup,
        );
        tokio::task::spawn_local(async move {
            let _slot = slot;
            let server = zlink::Server::new(ReadyListener::new(socket), api);
            if let Err(e) = server.run().await {
                tracing::debug!(uid = peer.uid, pid = peer.pid, error = %e, "connection ended");
            }
        });
    }
}

/// Connections being served, in all and per user.
#[derive(Default)]
struct Slots {
    total: usize,
    per_uid: HashMap<u32, usize>,
}

/// One connection's place in [`Slots`], given back when dropped.
struct Slot {
    slots: Rc<RefCell<Slots>>,
    uid: u32,
}

impl Slot {
    /// A place for a connection of `uid`, unless it would pass `api`'s limits. Root is
    /// always served: no other user can lock it (or the CLI run as root) out.
    fn take(slots: &Rc<RefCell<Slots>>, uid: u32, api: &ApiSettings) -> Option<Slot> {
        let mut s = slots.borrow_mut();
        let mine = s.per_uid.get(&uid).copied().unwrap_or(0);
        if uid != 0 {
            if s.total >= api.max_connections {
                tracing::warn!(
                    uid,
                    max = api.max_connections,
                    "too many connections: closing a new one"
                );
                return None;
            }
            if mine >= api.max_connections_per_user {
                tracing::warn!(
                    uid,
                    max = api.max_connections_per_user,
                    "too many connections of this user: closing a new one"
                );
                return None;
            }
        }
        s.total += 1;
        s.per_uid.insert(uid, mine + 1);
        Some(Slot {
            slots: slots.clone(),
            uid,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.slots.borrow_mut();
        s.total -= 1;
        if let Some(n) = s.per_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                s.per_uid.remove(&self.uid);
            }
        }
    }
}
