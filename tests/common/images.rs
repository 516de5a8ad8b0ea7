//! Disk images made by the real qemu-img.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `qemu-img args...` and asserts it exits 0.
pub fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img (qemu-utils) is needed: scripts/install-deps");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A qcow2 image at `path` of `size` (`64M`, …), on `backing` (its name as written and
/// its format; not opened: `-u`).
pub fn qcow2_sized(path: &Path, size: &str, backing: Option<(&str, &str)>) -> PathBuf {
    let p = path.to_str().unwrap();
    match backing {
        None => qemu_img(&["create", "-q", "-f", "qcow2", p, size]),
        Some((name, fmt)) => qemu_img(&[
            "create", "-q", "-f", "qcow2", "-u", "-b", name, "-F", fmt, p, size,
        ]),
    }
    path.to_path_buf()
}

/// A 64 MiB qcow2 image, as [`qcow2_sized`].
pub fn qcow2(path: &Path, backing: Option<(&str, &str)>) -> PathBuf {
    qcow2_sized(path, "64M", backing)
}
