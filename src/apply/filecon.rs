//! Reading and writing a file's label through an open descriptor (libselinux
//! `fgetfilecon_raw` / `fsetfilecon_raw`, which accept `O_PATH` descriptors).

use std::ffi::CString;
use std::io;
use std::os::fd::BorrowedFd;

use crate::decide::context::Context;
use crate::decide::policy::{io_error_of, trim_nul};

/// Why a label could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// The filesystem stores no extended attributes (`EOPNOTSUPP`).
    #[error("filesystem does not support labels (EOPNOTSUPP)")]
    Unsupported,
    /// The filesystem is mounted read-only (`EROFS`).
    #[error("read-only filesystem (EROFS)")]
    ReadOnly,
    /// Any other error, as text.
    #[error("{0}")]
    Io(String),
}

fn label_error(e: &selinux::errors::Error) -> LabelError {
    match io_error_of(e).and_then(io::Error::raw_os_error) {
        Some(libc::EOPNOTSUPP) => LabelError::Unsupported,
        Some(libc::EROFS) => LabelError::ReadOnly,
        Some(errno) => LabelError::Io(io::Error::from_raw_os_error(errno).to_string()),
        None => LabelError::Io(e.to_string()),
    }
}

/// The current label of the object behind `fd`, as raw bytes; `None` when it has none.
pub fn read(fd: BorrowedFd<'_>) -> Result<Option<Vec<u8>>, LabelError> {
    match selinux::SecurityContext::of_file(&fd, true) {
        Ok(Some(con)) => Ok(Some(trim_nul(con.as_bytes()).to_vec())),
        Ok(None) => Ok(None),
        Err(e) => Err(label_error(&e)),
    }
}

/// Writes `label` on the object behind `fd`.
pub fn write(fd: BorrowedFd<'_>, label: &Context) -> Result<(), LabelError> {
    let text = CString::new(label.as_str()).expect("validated contexts contain no NUL");
    selinux::SecurityContext::from_c_str(&text, true)
        .set_for_file(&fd)
        .map_err(|e| label_error(&e))
}

/// The xattr libvirt's SELinux driver sets (with `trusted.libvirt.security.selinux`, the
/// label it remembered) on every file it labels for a running domain, and removes when
/// it restores the label.
pub const LIBVIRT_REF_XATTR: &str = "trusted.libvirt.security.ref_selinux";

/// Whether libvirt holds the object behind `fd`: it labeled it for a running domain and
/// will restore it itself. Such a label is never rewritten under the running VM.
pub fn held_by_libvirt(fd: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 64];
    let answer = match rustix::fs::fgetxattr(fd, LIBVIRT_REF_XATTR, &mut buf) {
        // An O_PATH descriptor (an LV node) has no xattr calls: go through its magic link.
        Err(rustix::io::Errno::BADF) => {
            rustix::fs::getxattr(crate::fsys::proc_fd_path(fd), LIBVIRT_REF_XATTR, &mut buf)
        }
        other => other,
    };
    matches!(answer, Ok(_) | Err(rustix::io::Errno::RANGE))
}
