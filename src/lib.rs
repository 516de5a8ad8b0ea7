//! svirt-pool: owns the SELinux labels of virtual-machine storage pools for sVirt.
//!
//! Layout (docs/architecture.md draws the flow): `context` (labels as values), `mcs`
//! (pairs), `labels` (the one label decision), `policy`, `uniform` and `filecon`
//! (libselinux), `sole_link` (the one writer of pool files' labels), `fsys` (safe access
//! beneath a pool), `devices` (udev), `lvm` (lvm2), `watch` (inotify), `reconcile`
//! (observe, decide, apply), `state` (SQLite), `lock`, `ops` (operations shared by the
//! CLI, the API and the hooks), `agent`, `api` (varlink), `hook` (udev RUN hook),
//! `libvirt` (qemu hook), `config`, `cli` and `commands`, `error`, `users` (NSS).
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
