//! The Debian package, built from this tree by `scripts/package` and installed on this
//! machine with apt-get as an admin would: what it installs, that the installed agent
//! works on the packaged config, that an upgrade keeps the state, that removing it
//! keeps config and state and purging removes both, and that no label is touched by
//! either. lintian must find nothing its overrides do not explain.
//!
//! Installs and purges the package `svirt-pool` on the machine: test binaries run one
//! at a time, and a failed run purges it too.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(ROOT)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the package with `args` for cargo deb; returns its path.
fn package(args: &[&str]) -> PathBuf {
    let out = ok("scripts/package", args);
    let deb = out
        .lines()
        .rev()
        .find(|l| l.ends_with(".deb"))
        .unwrap_or_else(|| panic!("scripts/package printed no .deb: {out}"));
    // apt-get takes a path (not a package name) only when it has a slash in front.
    Path::new(ROOT).join(deb.trim())
}

/// Purges the package when the test ends, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = run("apt-get", &["purge", "-y", "-q", "svirt-pool"]);
    }
}

fn installed(deb: &Path) {
    ok("apt-get", &["install", "-y", "-q", deb.to_str().unwrap()]);
}

fn exists(path: &str) -> bool {
    Path::new(path).exists()
}

#[test]
fn the_package_installs_works_upgrades_and_goes_leaving_labels_alone() {
    require_root_and_policy();
    if exists("/etc/svirt-pool") || exists("/var/lib/svirt-pool") {
        panic!("/etc/svirt-pool or /var/lib/svirt-pool exists: this test installs the package");
    }
    let deb = package(&[]);
    let lintian = run(
        "lintian",
        &["--fail-on", "error,warning", deb.to_str().unwrap()],
    );
    assert!(
        lintian.status.success(),
        "lintian: {}{}",
        String::from_utf8_lossy(&lintian.stdout),
        String::from_utf8_lossy(&lintian.stderr)
    );

    let _purge = Installed;
    installed(&deb);
    // The binary names its version and the commit it was built from.
    let version = ok("/usr/bin/svirt-pool", &["--version"]);
    let head = ok("git", &["rev-parse", "--short=12", "HEAD"]);
    assert!(
        version.starts_with(&format!(
            "svirt-pool {} (commit {}",
            env!("CARGO_PKG_VERSION"),
            head.trim()
        )),
        "{version}"
    );
    // Everything in its place, with the package's paths.
    for path in [
        "/usr/bin/svirt-pool-udev-hook",
        "/etc/svirt-pool/svirt-pool.toml",
        "/usr/lib/sysusers.d/svirt-pool.conf",
        "/usr/lib/tmpfiles.d/svirt-pool.conf",
        "/usr/share/bash-completion/completions/svirt-pool",
        "/usr/share/zsh/vendor-completions/_svirt-pool",
        "/usr/share/fish/vendor_completions.d/svirt-pool.fish",
        "/usr/share/doc/svirt-pool/docs/install.md",
    ] {
        assert!(exists(path), "{path}");
    }
    for (path, wants) in [
        (
            "/lib/udev/rules.d/99-svirt-pool.rules",
            "/usr/bin/svirt-pool-udev-hook",
        ),
        (
            "/etc/libvirt/hooks/qemu.d/svirt-pool",
            "exec /usr/bin/svirt-pool ",
        ),
        (
            "/lib/systemd/system/svirt-pool.service",
            "ExecStart=/usr/bin/svirt-pool ",
        ),
        (
            "/lib/systemd/system/svirt-pool.socket",
            "SocketGroup=svirt-pool",
        ),
    ] {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            text.contains(wants) && !text.contains("/usr/local"),
            "{path}: {text}"
        );
    }
    ok("getent", &["group", "svirt-pool"]);
    let modules = ok("semodule", &["-l"]);
    assert!(
        modules.lines().any(|m| m == "svirt_pool"),
        "the SELinux module: {modules}"
    );
    ok(
        "bash",
        &[
            "-c",
            "source /usr/share/bash-completion/completions/svirt-pool && complete -p svirt-pool",
        ],
    );
    // The man pages read.
    let page = ok("man", &["-l", "/usr/share/man/man8/svirt-pool.8.gz"]);
    assert!(page.contains("svirt-pool-verify(8)"), "{page}");
    let page = ok("man", &["-l", "/usr/share/man/man8/svirt-pool-attach.8.gz"]);
    assert!(
        page.contains("svirt-pool attach") && page.contains("--mode"),
        "{page}"
    );
    let page = ok("man", &["-l", "/usr/share/man/man5/svirt-pool.toml.5.gz"]);
    assert!(
        page.contains("state_dir") && page.contains("cluster.endpoints"),
        "{page}"
    );

    // The installed agent on the packaged config: a file of its pool gets its label.
    let dir = TempDir::new(IMAGES, "svirt-pool-package-test");
    let disk = dir.join("disk.img");
    std::fs::write(&disk, b"x").unwrap();
    set_label(&disk, "system_u:object_r:etc_t:s0");
    ok("/usr/bin/svirt-pool", &["scan"]);
    assert_eq!(label(&disk).as_deref(), Some(VIRT_IMAGE));
    let uuid = new_uuid();
    ok(
        "/usr/bin/svirt-pool",
        &["guest", "define", "--uuid", &uuid, "--name", "kept"],
    );
    ok(
        "/usr/bin/svirt-pool",
        &[
            "attach",
            "--guest",
            &uuid,
            "--volume",
            disk.to_str().unwrap(),
            "--mode",
            "rw",
        ],
    );
    let held = label(&disk).unwrap();
    assert!(held.starts_with(SVIRT_IMAGE), "{held}");

    // Removed: no binary, config and state kept, the label as it was.
    ok("apt-get", &["remove", "-y", "-q", "svirt-pool"]);
    assert!(!exists("/usr/bin/svirt-pool"));
    let modules = ok("semodule", &["-l"]);
    assert!(
        !modules.lines().any(|m| m == "svirt_pool"),
        "module left: {modules}"
    );
    assert!(exists("/etc/svirt-pool/svirt-pool.toml") && exists("/var/lib/svirt-pool/state.db"));
    assert_eq!(label(&disk).as_ref(), Some(&held));

    // A newer version installed over it keeps the state: the guest and its hold.
    let next = package(&[
        "--deb-version",
        "0.1.0-2",
        "--output",
        "target/debian/next.deb",
    ]);
    installed(&next);
    let shown = ok("/usr/bin/svirt-pool", &["guest", "show", &uuid]);
    assert!(
        shown.contains("\"kept\"") && shown.contains("disk.img"),
        "{shown}"
    );

    // Purged: config and state gone, the group and every label left.
    ok("apt-get", &["purge", "-y", "-q", "svirt-pool"]);
    for gone in [
        "/etc/svirt-pool",
        "/var/lib/svirt-pool",
        "/etc/libvirt/hooks/qemu.d/svirt-pool",
        "/lib/systemd/system/svirt-pool.service",
    ] {
        assert!(!exists(gone), "{gone} left after purge");
    }
    assert_eq!(
        label(&disk).as_ref(),
        Some(&held),
        "purge never touches a label"
    );
    ok("getent", &["group", "svirt-pool"]);
}
