//! The `ListVolumes` replies: one page; or, called with `more`, every page from `after`
//! to the end of the pool, each a reply of its own, in one call.
//!
//! A picker that wants the whole pool no longer waits for a page, asks for the next
//! and waits again: the agent reads the next page while the client is still reading
//! the last one (the stream is polled again as soon as a reply is written), so a whole
//! listing takes about the longer of the two sides, not their sum. Each page is the
//! same work as a `ListVolumes` call of its own (a blocking-pool job, at most `limit`
//! volumes), and a client that stops reading is cut by the write timeout like any other.

use futures_util::Stream;
use zlink::Reply;

use super::replies::VolumesReply;
use super::session::Api;
use super::types::ApiError;
use crate::ops::listing::{self, Filter};

/// What a `ListVolumes` call asks for, checked.
pub(super) struct Request {
    /// Who asks: a member sees only what it could list itself.
    pub viewer: crate::ops::Caller,
    pub pool: String,
    pub after: Option<String>,
    pub limit: usize,
    pub filter: Filter,
}

/// The replies to a `ListVolumes` call: `request`'s error, or its pages (only the first
/// unless `more`). The last reply has `continues` false; an error ends the stream.
pub(super) fn volume_pages(
    api: Api,
    request: Result<Request, ApiError>,
    more: bool,
) -> impl Stream<Item = Result<Reply<VolumesReply>, ApiError>> + Unpin {
    Box::pin(futures_util::stream::unfold(Some(request), move |state| {
        let api = api.clone();
        async move {
            let request = match state? {
                Ok(r) => r,
                Err(e) => return Some((Err(e), None)),
            };
            // The request goes to the blocking job and comes back for the next page.
            let page = api
                .blocking(move |s| {
                    let r = &request;
                    listing::page(s, r.viewer, &r.pool, r.after.as_deref(), r.limit, &r.filter)
                        .map(|page| (page, request))
                })
                .await;
            let (page, request) = match page {
                Ok(p) => p,
                Err(e) => return Some((Err(e), None)),
            };
            let last = !more || page.next.is_none();
            let rest = (!last).then(|| {
                Ok(Request {
                    after: page.next.clone(),
                    ..request
                })
            });
            let reply = Reply::new(Some(VolumesReply {
                volumes: page.volumes,
                next: page.next,
            }))
            .set_continues(Some(!last));
            Some((Ok(reply), rest))
        }
    }))
}
