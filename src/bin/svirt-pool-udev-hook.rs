//! `svirt-pool-udev-hook`: the program `udev/99-svirt-pool.rules` runs for every `add`
//! and `change` event of an LV node (the work is in `svirt_pool::hook`).
//!
//! It is `svirt-pool udev-hook` without what a per-event process has no use for, since
//! udev starts one for every event and `udevadm settle` waits for it: no argument
//! parser, no logging subscriber, no async runtime linked in (half the binary's size and
//! two fewer shared libraries to map), and no Rust runtime set-up (`#![no_main]`: std's
//! `lang_start` reads `/proc/self/maps` to find the main thread's stack guard). Measured
//! in `scripts/bench/hook.py`. What of that set-up matters here is done by `sanitize`.
#![no_main]

use std::ffi::{c_char, c_int};

/// The C entry point (see the module comment for why not `fn main`). Always returns 0:
/// a udev RUN program must never fail the event.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    sanitize();
    lean_sqlite();
    svirt_pool::hook::main(&svirt_pool::config::resolve_path(None));
    0
}

/// What std's start-up does that this program relies on: descriptors 0–2 are open (a
/// closed one would be the next file opened, and an error message would be written into
/// it), and SIGPIPE is ignored (an error written to a pipe udev closed must not kill the
/// hook before it reports to syslog).
fn sanitize() {
    for fd in 0..=2 {
        // SAFETY: F_GETFD only asks whether `fd` is open; `open` returns the lowest free
        // descriptor, which is `fd` since 0..fd are open by now.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) == -1 {
                libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            }
        }
    }
    // SAFETY: setting a signal's disposition to SIG_IGN has no other effect.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// SQLite set up for one short query: no lookaside buffer and no page-cache block
/// allocated and touched up front (fresh memory costs a page fault per page), no
/// allocation statistics. Must run before the first connection opens.
fn lean_sqlite() {
    use rusqlite::ffi;
    // SAFETY: sqlite3_config is called before SQLite is initialized (no connection has
    // been opened yet in this process), with the argument types each option takes.
    unsafe {
        ffi::sqlite3_config(ffi::SQLITE_CONFIG_LOOKASIDE, 0 as c_int, 0 as c_int);
        ffi::sqlite3_config(
            ffi::SQLITE_CONFIG_PAGECACHE,
            std::ptr::null_mut::<std::ffi::c_void>(),
            0 as c_int,
            0 as c_int,
        );
        ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int);
    }
}
