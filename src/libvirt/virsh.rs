//! Running `virsh` (a `run::Program`, with a timeout): the one place that does.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::run::{Program, RunError};

/// How long one virsh call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `virsh -c qemu:///system ARGS...`; returns its stdout, or an error naming the
/// command, its status and what it said (a refusal: libvirt understood and said no).
pub fn run(args: &[&str]) -> Result<String> {
    let mut argv = vec!["-c", "qemu:///system"];
    argv.extend_from_slice(args);
    let stdout = Program::new("virsh", &argv, TIMEOUT)
        .stdout()
        .map_err(|e| match e {
            RunError::Spawn { .. } => Error::failed(format!("{e} (is libvirt-clients installed?)")),
            RunError::Timeout { .. } => Error::failed(e),
            RunError::Failed { .. } => Error::refused(e),
        })?;
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}
