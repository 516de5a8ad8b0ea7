//! The `Monitor` stream: one event reply per change, a `lagged` reply for a reader that
//! fell behind, ended at once when the peer hangs up (its connection slot comes back
//! then, not at the next event).

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::Stream;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::broadcast;
use zlink::Reply;

use super::replies::EventReply;
use super::types::{ApiError, Event};
use crate::model::EventKind;

/// The stream `Monitor` answers with: refused at once when `allowed` is an error;
/// `streaming` is set while it runs (the idle timeout spares the connection).
pub(super) fn events(
    receiver: broadcast::Receiver<Event>,
    allowed: Result<(), ApiError>,
    streaming: Arc<AtomicBool>,
    hangup: Arc<AsyncFd<OwnedFd>>,
    more: bool,
) -> impl Stream<Item = Result<Reply<EventReply>, ApiError>> + Unpin {
    Box::pin(futures_util::stream::unfold(
        (receiver, allowed, false),
        move |(mut rx, allowed, done)| {
            let (streaming, hangup) = (streaming.clone(), hangup.clone());
            async move {
                if done {
                    // Idle again: the idle timeout applies once the stream ends.
                    streaming.store(false, Ordering::Relaxed);
                    return None;
                }
                if let Err(e) = allowed {
                    return Some((Err(e), (rx, Ok(()), true)));
                }
                let received = tokio::select! {
                    r = rx.recv() => r,
                    () = hung_up(&hangup) => {
                        // The client is gone: give its slot back now, not at the
                        // next event.
                        streaming.store(false, Ordering::Relaxed);
                        return None;
                    }
                };
                let event = match received {
                    Ok(event) => event,
                    // A slow reader missed events: tell it how many, and go on.
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        Event::new(EventKind::Lagged, String::new(), n.to_string(), None)
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        streaming.store(false, Ordering::Relaxed);
                        return None;
                    }
                };
                let reply = Reply::new(Some(EventReply { event })).set_continues(Some(more));
                Some((Ok(reply), (rx, Ok(()), !more)))
            }
        },
    ))
}

/// Completes when the peer of the connection behind `fd` has hung up.
async fn hung_up(fd: &AsyncFd<OwnedFd>) {
    loop {
        let Ok(mut guard) = fd.ready(Interest::READABLE | Interest::ERROR).await else {
            return;
        };
        let ready = guard.ready();
        if ready.is_read_closed() || ready.is_error() {
            return;
        }
        // Data the client sent meanwhile is zlink's to read: wait for the next change.
        guard.clear_ready();
    }
}
