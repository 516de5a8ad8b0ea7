//! Operations on guests, pools and volumes, shared by the CLI and the API. Each takes
//! the state lock where it changes anything, and returns what it did as data; the
//! callers decide how to show it.

pub mod files;
pub mod guests;
pub mod report;
pub mod volumes;

use std::path::Path;

use crate::error::{Error, Result};

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
