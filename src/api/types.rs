//! The wire types of the `io.svirtpool` varlink interface (the shared shapes of
//! [`crate::model`]) and its errors.

use crate::error::Error;
use crate::ops::report::PoolStatus;

pub use crate::model::{
    Attachment, BackingFile, Event, Guest, Holder, Labeled, PathCheck, PathStep, Pool, Volume,
};

/// Every error a method of `io.svirtpool` can return.
#[derive(Debug, Clone, PartialEq, Eq, zlink::ReplyError, zlink::introspect::ReplyError)]
#[zlink(interface = "io.svirtpool")]
pub enum ApiError {
    /// The peer may not call this method.
    PermissionDenied {
        /// The method.
        method: String,
        /// Why not.
        reason: String,
    },
    /// A parameter is malformed.
    InvalidArgument {
        /// Which parameter.
        parameter: String,
        /// What is wrong.
        reason: String,
    },
    /// The request was understood and refused; nothing changed.
    Refused {
        /// Why.
        reason: String,
    },
    /// No such guest.
    GuestNotFound {
        /// The UUID asked for.
        uuid: String,
    },
    /// No such pool.
    PoolNotFound {
        /// The name asked for.
        pool: String,
    },
    /// A volume of that name already exists.
    AlreadyExists {
        /// The volume.
        volume: String,
    },
    /// The request failed while being carried out.
    Failed {
        /// Why.
        reason: String,
    },
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Usage(reason) | Error::Config(reason) => ApiError::InvalidArgument {
                parameter: String::new(),
                reason,
            },
            Error::NoSuchGuest(uuid) => ApiError::GuestNotFound { uuid },
            Error::NoSuchPool(pool) => ApiError::PoolNotFound { pool },
            Error::Exists(volume) => ApiError::AlreadyExists { volume },
            Error::Refused(why) => ApiError::Refused {
                reason: why.to_string(),
            },
            Error::Forbidden(reason) => ApiError::PermissionDenied {
                method: String::new(),
                reason,
            },
            Error::Failed(reason) | Error::Conflict(reason) => ApiError::Failed { reason },
            e @ Error::State(_) => ApiError::Failed {
                reason: e.to_string(),
            },
        }
    }
}

impl Pool {
    /// The picker's view of a pool's status.
    pub fn from_status(p: &PoolStatus, space: Option<(u64, u64, u64)>) -> Self {
        Pool {
            name: p.name.clone(),
            kind: p.kind.clone(),
            location: p.location.clone(),
            available: p.available,
            volumes: p.volumes.len() as u64,
            capacity: space.map(|s| s.0),
            allocation: space.map(|s| s.1),
            free: space.map(|s| s.2),
        }
    }
}
