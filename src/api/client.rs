//! The Rust client of the API: what the CLI uses when an agent is running, so that one
//! process (the agent) decides and labels while it runs.

use std::os::fd::OwnedFd;
use std::path::Path;

use zlink::proxy;

use super::replies::{GuestReply, HookReply, LabeledReply, ReleasedReply};
use super::types::ApiError;
use crate::error::Error;

/// The methods the CLI calls through the agent.
#[proxy("io.svirtpool")]
pub trait SvirtPoolProxy {
    /// `DefineGuest`.
    async fn define_guest(
        &mut self,
        uuid: &str,
        name: Option<&str>,
    ) -> zlink::Result<Result<GuestReply, ApiError>>;
    /// `UndefineGuest`.
    async fn undefine_guest(
        &mut self,
        uuid: &str,
        force: Option<bool>,
    ) -> zlink::Result<Result<ReleasedReply, ApiError>>;
    /// `Attach`.
    async fn attach(
        &mut self,
        guest: &str,
        volume: &str,
        mode: &str,
    ) -> zlink::Result<Result<LabeledReply, ApiError>>;
    /// `Detach`.
    async fn detach(
        &mut self,
        guest: &str,
        volume: &str,
    ) -> zlink::Result<Result<LabeledReply, ApiError>>;
    /// `Release`.
    async fn release(&mut self, guest: &str) -> zlink::Result<Result<ReleasedReply, ApiError>>;
    /// `LibvirtHook`.
    async fn libvirt_hook(
        &mut self,
        op: &str,
        subop: &str,
        xml: &str,
    ) -> zlink::Result<Result<HookReply, ApiError>>;
    /// `CreateVolume`.
    async fn create_volume(
        &mut self,
        pool: &str,
        name: &str,
        format: &str,
        capacity: Option<u64>,
        backing: Option<&str>,
    ) -> zlink::Result<Result<LabeledReply, ApiError>>;
    /// `DeleteVolume`.
    async fn delete_volume(
        &mut self,
        pool: &str,
        name: &str,
    ) -> zlink::Result<Result<(), ApiError>>;
    /// `Import`, with the file passed as the one fd.
    async fn import(
        &mut self,
        pool: &str,
        name: &str,
        #[zlink(fds)] fds: Vec<OwnedFd>,
    ) -> zlink::Result<Result<LabeledReply, ApiError>>;
}

/// A connection to the agent.
pub type Connection = zlink::Connection<zlink::tokio::unix::Stream>;

/// An API error as a CLI error (and so an exit status).
impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::InvalidArgument { parameter, reason } if parameter.is_empty() => {
                Error::Usage(reason)
            }
            ApiError::InvalidArgument { parameter, reason } => {
                Error::Usage(format!("{parameter}: {reason}"))
            }
            ApiError::PermissionDenied { method, reason } if method.is_empty() => {
                Error::Forbidden(reason)
            }
            ApiError::PermissionDenied { method, reason } => {
                Error::Forbidden(format!("{method}: permission denied: {reason}"))
            }
            ApiError::Refused { reason } => Error::refused(reason),
            ApiError::GuestNotFound { uuid } => Error::NoSuchGuest(uuid),
            ApiError::PoolNotFound { pool } => Error::NoSuchPool(pool),
            ApiError::AlreadyExists { volume } => Error::Exists(volume),
            ApiError::Failed { reason } => Error::Failed(reason),
        }
    }
}

/// Runs `call` through the agent listening on `socket`, if one does.
///
/// `None` when no agent answers there (no socket, nobody listening): the caller then
/// does the work itself, under the same lock.
pub fn through_agent<T>(
    socket: &Path,
    call: impl AsyncFnOnce(&mut Connection) -> zlink::Result<Result<T, ApiError>>,
) -> Option<Result<T, Error>> {
    if !socket.exists() {
        return None;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        let mut conn = match zlink::tokio::unix::connect(socket).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(socket = %socket.display(), error = %e, "no agent: working locally");
                return None;
            }
        };
        Some(match call(&mut conn).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Error::from(e)),
            Err(e) => Err(Error::failed(format!("talking to the agent on {}: {e}", socket.display()))),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CLI through the agent fails with the same kind (and exit status) as without it.
    #[test]
    fn error_kinds_survive_the_api() {
        let kinds = [
            Error::Usage("u".into()),
            Error::refused("r"),
            Error::Exists("e".into()),
            Error::NoSuchGuest("g".into()),
            Error::NoSuchPool("p".into()),
            Error::Forbidden("f".into()),
            Error::Failed("x".into()),
        ];
        for e in kinds {
            let before = format!("{e:?}");
            let back = Error::from(ApiError::from(e));
            assert_eq!(format!("{back:?}"), before);
        }
    }
}
