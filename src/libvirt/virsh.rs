//! Running `virsh` (through duct, with a timeout): the one place that does.

use std::time::Duration;

use crate::error::{Error, Result};

/// How long one virsh call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `virsh -c qemu:///system ARGS...`; returns its stdout, or an error naming the
/// command, its status and what it said.
pub fn run(args: &[&str]) -> Result<String> {
    let mut argv = vec!["-c", "qemu:///system"];
    argv.extend_from_slice(args);
    let shown = format!("virsh {}", argv.join(" "));
    let handle = duct::cmd("virsh", &argv)
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .start()
        .map_err(|e| Error::failed(format!("{shown}: {e} (is libvirt-clients installed?)")))?;
    let output = handle
        .wait_timeout(TIMEOUT)
        .map_err(|e| Error::failed(format!("{shown}: {e}")))?
        .ok_or_else(|| {
            let _ = handle.kill();
            Error::failed(format!("{shown}: no answer within {} s", TIMEOUT.as_secs()))
        })?;
    if !output.status.success() {
        return Err(Error::refused(format!(
            "{shown}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
