//! svirt-pool: owns the SELinux labels of virtual-machine storage pools for sVirt.
//!
//! Layout: `context` (labels as values), `policy` and `filecon` (libselinux),
//! `config`, `state` (SQLite), `mcs` (pairs), `labels` (the one label decision),
//! `fsys` (safe access beneath a pool), `sole_link` (the one writer of pool files'
//! labels), `reconcile`, `watch` (inotify), `agent`,
//! `lock`, `cli` and `commands`.
#![deny(missing_docs)]

pub mod agent;
pub mod api;
pub mod cli;
pub mod commands;
pub mod config;
pub mod context;
pub mod devices;
pub mod error;
pub mod filecon;
pub mod fsys;
pub mod hook;
pub mod labels;
pub mod libvirt;
pub mod lock;
pub mod lvm;
pub mod mcs;
pub mod ops;
pub mod policy;
pub mod reconcile;
pub mod sole_link;
pub mod state;
pub mod uniform;
pub mod users;
pub mod watch;

/// A file name made safe for one log line: bytes that are not printable ASCII (a
/// newline that would forge a line, invalid UTF-8) are shown escaped (`\n`, `\xff`).
pub fn logname(name: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    name.as_bytes().escape_ascii().to_string()
}

/// A path made safe for one log line, as [`logname`] does for names.
pub fn logpath(path: &std::path::Path) -> String {
    logname(path.as_os_str())
}
