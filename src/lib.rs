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
pub mod backend;
pub mod cli;
pub mod cluster;
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
pub mod registry;
pub mod run;
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

/// A logged value with its control characters escaped (`\n`, `\u{1b}`): the one guard
/// that keeps any text in a log field or message on its line, whatever carried it (a
/// volume, a guest's name, an error that quotes either). The log formatter applies it
/// to every field (`main.rs`); [`logname`] and [`logpath`] first turn names that may
/// not be UTF-8 into text.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            super::escape_controls("plain 'é' \\ text"),
            "plain 'é' \\ text"
        );
        assert_eq!(
            super::escape_controls("x.img\nERROR forged\r\u{1b}[2J\t"),
            "x.img\\nERROR forged\\r\\u{1b}[2J\\t"
        );
    }
}
