//! svirt-pool: owns the SELinux labels of virtual-machine storage pools for sVirt.
//!
//! Layout (docs/architecture.md draws the flow): `observe` (walk, inotify, udev, lvm2)
//! → `decide` (labels as values, the one label decision, the plan as data, the policy's
//! resting labels) → `apply` (the only writers of labels); `reconcile` runs the three for
//! one entry or a pool, `fsys` is safe access beneath a pool root. `state` (SQLite) and
//! `lock` keep who holds what; `ops` are the operations the `cli`, the `api` (varlink),
//! the udev `hook` and the `libvirt` qemu hook share; `agent` is the long-running engine.
//! `config`, `error`, `users` (NSS).
#![deny(missing_docs)]

pub mod agent;
pub mod api;
pub mod apply;
pub mod cli;
pub mod config;
pub mod decide;
pub mod error;
pub mod fsys;
pub mod hook;
pub mod libvirt;
pub mod lock;
pub mod model;
pub mod observe;
pub mod ops;
pub mod reconcile;
pub mod state;
pub mod users;

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
