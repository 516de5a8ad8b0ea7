//! The agent: scan every pool, then keep them labeled from inotify events until told to stop.
//!
//! One engine thread owns everything that must not be shared (the libselinux handle, the
//! SQLite connection, the inotify instance). The main thread only waits for SIGTERM or
//! SIGINT and wakes the engine through a pipe. The engine is in `engine`.

mod engine;

use sd_notify::NotifyState;

use crate::config::Settings;
use std::sync::Arc;

use crate::api::server;
use crate::error::{Error, Result};
use crate::ops::volumes::Batcher;
use engine::Engine;

/// How many events a slow `Monitor` client may fall behind before it is told it lagged.
const EVENT_BACKLOG: usize = 4096;

/// Runs the agent until SIGTERM or SIGINT: the engine on its own thread, the API and
/// the signal handlers on this one.
pub fn run(settings: Settings) -> Result<()> {
    let settings = Arc::new(settings);
    // Guests libvirt's hook attached whose domain died without a release hook (libvirtd
    // killed, host rebooted) give their volumes back before the first scan.
    if let Err(e) = crate::libvirt::hook::release_dead(&settings) {
        tracing::warn!(error = %e, "cannot check libvirt's running domains");
    }
    let (stop_read, stop_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::failed(format!("pipe: {e}")))?;
    let (events, _) = tokio::sync::broadcast::channel(EVENT_BACKLOG);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failed(format!("tokio runtime: {e}")))?;
    // Bind before starting: a second agent, or a file in the socket's place, fails here.
    let socket = {
        let _guard = runtime.enter();
        server::listen(&settings.api).map_err(|e| {
            Error::failed(format!("API socket {}: {e}", settings.api.socket.display()))
        })?
    };
    // The attach and detach calls of every API connection, batched together.
    let batcher = Batcher::new();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let engine = {
        let settings = settings.clone();
        let events = events.clone();
        std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || {
                let result = Engine::new(&settings, events).and_then(|mut e| e.run(stop_read));
                let _ = done_tx.send(());
                result
            })
            .map_err(|e| Error::failed(format!("cannot start the engine thread: {e}")))?
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
            _ = done_rx => {}
            _ = server::serve(socket, settings.clone(), batcher.clone(), events) => {}
        }
    });
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
    // Calls the API handed to the batch thread are finished, not cut between their
    // commit and their labels.
    batcher.settle();
    // Wake the engine; if it already ended, the write fails harmlessly.
    let _ = rustix::io::write(&stop_write, b"x");
    let result = engine
        .join()
        .map_err(|_| Error::failed("the engine thread panicked"))?;
    // A blocking call stuck in a filesystem that never answers (a CheckPath into a hung
    // FUSE mount) would keep a plain drop of the runtime waiting for ever: give the
    // others a moment, then leave that thread to the process's exit.
    drop(local);
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    result
}

/// How long the agent waits at exit for API calls still running on the blocking pool.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);
