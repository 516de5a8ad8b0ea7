//! Operations on guests, pools and volumes, shared by the CLI and the API. Each takes
//! the state lock where it changes anything, and returns what it did as data; the
//! callers decide how to show it.

pub mod access;
mod chains;
pub mod check_path;
pub mod cluster;
pub mod files;
pub mod guests;
pub mod lifecycle;
pub mod listing;
pub mod locate;
pub mod quota;
pub mod report;
pub mod restore;
mod settle;
pub mod verify;
pub mod volumes;

use std::path::Path;

use crate::error::{Error, Result};
use crate::registry::{Guest, Registry};

/// Who asks for an operation: the API's peer (`SO_PEERCRED`), or the user running the
/// CLI without an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Its user.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
}

impl Caller {
    /// Root: may act on every guest, with root's access to files.
    pub const ROOT: Caller = Caller { uid: 0, gid: 0 };

    /// The user running this process.
    pub fn current() -> Caller {
        Caller {
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
        }
    }

    /// Whether it is root.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// The guest `uuid`, if `caller` may change what it holds: root may for every guest,
/// anyone else only for the guests it defined.
pub fn guest_for(store: &dyn Registry, uuid: &str, caller: Caller) -> Result<Guest> {
    let guest = store
        .guest(uuid)?
        .ok_or_else(|| Error::NoSuchGuest(uuid.to_owned()))?;
    if guest.may_act(caller.uid) {
        Ok(guest)
    } else {
        Err(Error::Forbidden(format!(
            "guest {uuid} belongs to another user: uid {} may act only for its own guests",
            caller.uid
        )))
    }
}

/// A guest UUID from a request, in libvirt's lower-case hyphenated form.
pub fn parse_uuid(input: &str) -> Result<String> {
    uuid::Uuid::try_parse(input)
        .map(|u| u.hyphenated().to_string())
        .map_err(|e| Error::Usage(format!("guest UUID {input:?} is not a UUID: {e}")))
}

/// A path as people read it (invalid UTF-8 shown with replacement characters).
pub fn shown(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Which file a descriptor is (inode and birth time).
pub(crate) fn file_of(fd: &std::os::fd::OwnedFd) -> Result<crate::decide::labels::FileId> {
    use std::os::fd::AsFd;
    crate::fsys::file_id(fd.as_fd()).map_err(Error::failed)
}
