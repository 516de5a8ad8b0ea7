//! `svirt-pool-udev-hook`: the program `udev/99-svirt-pool.rules` runs for every `add`
//! and `change` event of an LV node (the work is in `svirt_pool::hook`).
//!
//! It is `svirt-pool udev-hook` without what a per-event process has no use for, since
//! udev starts one for every event and `udevadm settle` waits for it: no argument
//! parser, no logging subscriber, no async runtime linked in (half the binary's size and
//! two fewer shared libraries to map), and no Rust runtime set-up (`#![no_main]`: std's
//! `lang_start` reads `/proc/self/maps` to find the main thread's stack guard, polls fds
//! 0–2 and resets SIGPIPE). Measured in `scripts/bench/hook.py`.
#![no_main]

use std::ffi::{c_char, c_int};

/// The C entry point (see the module comment for why not `fn main`). Always returns 0:
/// a udev RUN program must never fail the event.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    svirt_pool::hook::main(&svirt_pool::config::resolve_path(None));
    0
}
