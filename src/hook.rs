//! The udev RUN program that labels an LV node synchronously: `svirt-pool-udev-hook`
//! (`src/bin/`, what the shipped rule runs), also reachable as `svirt-pool udev-hook`.
//!
//! udev runs it for `add` and `change` events of LV nodes (see `udev/99-svirt-pool.rules`).
//! It reads the event from its environment, opens the state read-only (never the lock,
//! never the agent), applies the desired label and exits — so once `udevadm settle`
//! returns, the node is right even when the agent is down. It must never fail the
//! event: every error is reported (stderr and syslog) and the exit status is 0.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use crate::config::{Checks, Settings};
use crate::observe::devices;
use crate::reconcile::{Apply, Outcome, Reconciler};
use crate::registry::Holds;
use crate::state::{DB_FILE, Store};

/// What happened, for the log line.
#[derive(Debug, PartialEq, Eq)]
pub enum HookResult {
    /// Not an event of a managed LV node: nothing to do.
    NotOurs,
    /// The label was already right.
    Unchanged,
    /// The label was written.
    Relabeled(String),
    /// Something went wrong; the message says what.
    Error(String),
}

/// The whole program: runs the hook for the event in this process's environment with
/// the config at `config` and reports the result. It never fails the event, not even
/// on a panic: the caller exits 0 whatever this returns.
pub fn main(config: &Path) {
    let result = std::panic::catch_unwind(|| run(config, &|k| std::env::var(k).ok()))
        .unwrap_or_else(|_| HookResult::Error("the hook panicked (see above)".into()));
    report(&result);
}

/// Runs the hook for the event in `env` (a lookup of the process environment).
pub fn run(config: &Path, env: &dyn Fn(&str) -> Option<String>) -> HookResult {
    match env("ACTION").as_deref() {
        Some("add" | "change") => {}
        Some(_) => return HookResult::NotOurs,
        None => return HookResult::Error("ACTION is not set: not run by udev?".into()),
    }
    let settings = match Settings::load_with(config, Checks::Syntax) {
        Ok(s) => s,
        Err(e) => return HookResult::Error(e.to_string()),
    };
    let devnum = match (parse_number(env("MAJOR")), parse_number(env("MINOR"))) {
        (Some(major), Some(minor)) => Some(rustix::fs::makedev(major, minor)),
        _ => None,
    };
    let managed = |vg: &str| settings.lvm_pool_of(vg).is_some();
    let Some(node) =
        devices::lv_node_from(env, env("DEVNAME").map(PathBuf::from), devnum, &managed)
    else {
        return HookResult::NotOurs;
    };
    let idx = settings.lvm_pool_of(&node.vg).expect("managed").index();
    let pool = &settings.pools[idx];
    let holders = if let (true, Some(cluster)) = (pool.shared, &settings.cluster) {
        // A shared volume group's holders are the cluster's (this host's count for its
        // node); while etcd does not answer the node is left as it is, never taken
        // for unheld: the agent labels it once etcd answers again.
        match crate::cluster::Kv::connect(cluster).and_then(|kv| {
            crate::cluster::EtcdHolds::new(std::sync::Arc::new(kv))
                .holders(&pool.name, node.lv_uuid.as_bytes())
        }) {
            Ok(h) => h,
            Err(e) => {
                return HookResult::Error(format!(
                    "{}: left as it is: {e}",
                    node.devnode.display()
                ));
            }
        }
    } else if settings.state_dir.join(DB_FILE).exists() {
        match Store::open_read_only(&settings.state_dir)
            .and_then(|s| s.holders(&pool.name, node.lv_uuid.as_bytes()))
        {
            Ok(h) => h,
            Err(e) => return HookResult::Error(format!("{}: {e}", node.devnode.display())),
        }
    } else {
        // No state yet: no guest holds anything, the node rests.
        Vec::new()
    };
    let mut rec = Reconciler::new(&settings, Apply::Write);
    let ex = rec.reconcile_lv_node(idx, &node, &holders);
    let what = format!("{}/{} ({})", node.vg, node.lv, node.devnode.display());
    match ex.outcome {
        Outcome::Unchanged => HookResult::Unchanged,
        Outcome::Relabeled => HookResult::Relabeled(format!(
            "{what}: {}",
            ex.desired.map(|c| c.to_string()).unwrap_or_default()
        )),
        Outcome::Missing => HookResult::Error(format!("{what}: the node does not exist")),
        Outcome::Skipped(reason) => HookResult::Error(format!("{what}: {}", reason.as_str())),
        Outcome::Failed(e) => HookResult::Error(format!("{what}: {e}")),
    }
}

fn parse_number(value: Option<String>) -> Option<u32> {
    value?.parse().ok()
}

/// Reports an error where an administrator sees it: stderr (udevd's debug log) and
/// syslog (the journal), since udev does not log a RUN program's output by default.
pub fn report(result: &HookResult) {
    if let HookResult::Error(msg) = result {
        eprintln!("svirt-pool udev-hook: {msg}");
        let text =
            CString::new(format!("udev-hook: {msg}").replace('\0', " ")).expect("NULs replaced");
        // SAFETY: both strings are NUL-terminated and outlive the calls.
        unsafe {
            libc::openlog(c"svirt-pool".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON);
            libc::syslog(libc::LOG_ERR, c"%s".as_ptr(), text.as_ptr());
            libc::closelog();
        }
    }
}
