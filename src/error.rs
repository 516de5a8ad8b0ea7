//! The error type of commands, and how each kind maps to an exit status.

use std::fmt;

/// A failed command. The kind decides the exit status: 2 for usage or config
/// errors, 1 for a refused or failed operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line was wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The configuration file was wrong (exit 2).
    #[error("{0}")]
    Config(String),
    /// The request was understood and refused; nothing was changed (exit 1).
    #[error("{0}")]
    Refused(String),
    /// A volume of that name already exists (exit 1).
    #[error("{0} already exists")]
    Exists(String),
    /// The guest with this UUID is not defined (exit 1).
    #[error("guest {0} is not defined")]
    NoSuchGuest(String),
    /// No pool of this name is configured (exit 1).
    #[error("pool {0:?} is not configured")]
    NoSuchPool(String),
    /// The caller may not act on this guest or file (exit 1).
    #[error("{0}")]
    Forbidden(String),
    /// The request failed while being carried out (exit 1).
    #[error("{0}")]
    Failed(String),
    /// The state database failed (exit 1); the SQLite error is kept as the source.
    #[error("state database: {0}")]
    State(#[from] rusqlite::Error),
}

impl Error {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Config(_) => 2,
            Error::Refused(_)
            | Error::Exists(_)
            | Error::NoSuchGuest(_)
            | Error::NoSuchPool(_)
            | Error::Forbidden(_)
            | Error::Failed(_)
            | Error::State(_) => 1,
        }
    }

    /// A refusal with the given message.
    pub fn refused(msg: impl fmt::Display) -> Self {
        Error::Refused(msg.to_string())
    }

    /// A failure with the given message.
    pub fn failed(msg: impl fmt::Display) -> Self {
        Error::Failed(msg.to_string())
    }
}

/// Shorthand for results of commands.
pub type Result<T, E = Error> = std::result::Result<T, E>;
