//! The advisory lock around "read state, decide, label", shared by the agent and the CLI.
//!
//! Whoever holds it sees the state and the labels as the last holder left them, so a
//! CLI command and the agent can never write labels from two different states.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::FlockOperation;

use crate::error::{Error, Result};

/// The lock file's name inside the state directory.
const LOCK_FILE: &str = "lock";

/// A held lock; released when dropped.
pub struct StateLock {
    _file: File,
}

/// Creates the state directory (mode 0700) if it does not exist.
pub fn ensure_state_dir(state_dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|e| {
            Error::failed(format!(
                "cannot create state_dir {}: {e}",
                state_dir.display()
            ))
        })
}

/// Blocks until the lock of `state_dir` is held (creating the directory if needed).
pub fn acquire(state_dir: &Path) -> Result<StateLock> {
    let path = state_dir.join(LOCK_FILE);
    let open = || {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
    };
    // The directory exists on every call but the first: it is created only when the
    // open says it is missing (a mkdir per call cost every attach and detach).
    let file = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ensure_state_dir(state_dir)?;
            open()
        }
        opened => opened,
    }
    .map_err(|e| Error::failed(format!("cannot open lock {}: {e}", path.display())))?;
    rustix::fs::flock(&file, FlockOperation::LockExclusive)
        .map_err(|e| Error::failed(format!("cannot lock {}: {e}", path.display())))?;
    Ok(StateLock { _file: file })
}
