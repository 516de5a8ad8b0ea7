//! Shared fixtures of the integration tests: temporary pools under
//! `/var/lib/libvirt/images` (so the real refpolicy file_contexts gives them
//! `virt_image_t`), the built binary, a running agent, and labels read straight from
//! the `security.selinux` xattr (not through the code under test).
//!
//! These tests need root (to write `security.*` xattrs) and the refpolicy
//! (`selinux-policy-default`). Without them they fail and say why: `.ci/run` installs
//! both and runs as root.

#![allow(dead_code)]

pub mod cluster;
pub mod etcd;
pub mod images;
pub mod libvirt;
pub mod lvm;
pub mod oracle;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where test pools are made: file_contexts maps `/var/lib/libvirt/images(/.*)?` to `virt_image_t`.
pub const IMAGES: &str = "/var/lib/libvirt/images";
/// The resting label the real file_contexts gives everything under [`IMAGES`].
pub const VIRT_IMAGE: &str = "system_u:object_r:virt_image_t:s0";
/// The policy's image context (virtual_image_context, line 1).
pub const SVIRT_IMAGE: &str = "system_u:object_r:svirt_image_t:s0";
/// The policy's content context (virtual_image_context, line 2).
pub const VIRT_CONTENT: &str = "system_u:object_r:virt_content_t:s0";

/// Fails the test with a reason when it cannot run here.
pub fn require_root_and_policy() {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests write security.selinux xattrs and must run as root (see README)"
    );
    assert!(
        Path::new("/etc/selinux/default/contexts/files/file_contexts").exists(),
        "the refpolicy is not installed: apt-get install selinux-policy-default (see .ci/run)"
    );
}

/// A unique name for this test's files.
pub fn unique(prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A directory removed (with everything in it) when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `parent/<unique name>`.
    pub fn new(parent: &str, prefix: &str) -> TempDir {
        let path = Path::new(parent).join(unique(prefix));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// A path inside it.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A configured test bed: one or more dir pools, a state dir and a config file.
pub struct Bed {
    /// The first pool's directory.
    pub pool: TempDir,
    /// The state directory.
    pub state: TempDir,
    /// The config file.
    pub config: PathBuf,
}

impl Bed {
    /// One pool named `test` under [`IMAGES`], using the policy's defaults.
    pub fn new() -> Bed {
        Bed::with_extra("")
    }

    /// Like [`Bed::new`], with `extra` TOML appended to the config.
    pub fn with_extra(extra: &str) -> Bed {
        Bed::with_api_and_extra("", extra)
    }

    /// Like [`Bed::new`], with `api` lines in the `[api]` table and `extra` TOML
    /// appended to the pool.
    pub fn with_api_and_extra(api: &str, extra: &str) -> Bed {
        require_root_and_policy();
        let pool = TempDir::new(IMAGES, "svirt-pool-test");
        let state = TempDir::new("/tmp", "svirt-pool-state");
        let config = state.join("svirt-pool.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{}\"\n\n[api]\nsocket = \"{}/api.sock\"\n{api}\n\n[[pool]]\nname = \"test\"\ntype = \"dir\"\npath = \"{}\"\n{extra}",
                state.0.display(),
                state.0.display(),
                pool.0.display()
            ),
        )
        .unwrap();
        Bed {
            pool,
            state,
            config,
        }
    }

    /// Creates a file in the pool with some content; returns its path.
    pub fn file(&self, rel: &str) -> PathBuf {
        let path = self.pool.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, b"disk image").unwrap();
        path
    }

    /// The API socket of this bed's agent.
    pub fn socket(&self) -> PathBuf {
        self.state.join("api.sock")
    }
}

impl Configured for Bed {
    fn config_path(&self) -> &Path {
        &self.config
    }
}

/// What every test bed offers once it has a config: the CLI, guests, the agent.
pub trait Configured {
    /// The bed's config file.
    fn config_path(&self) -> &Path;

    /// Runs `svirt-pool --config <this bed's> args...`.
    fn cli(&self, args: &[&str]) -> Output {
        run_cli(self.config_path(), args)
    }

    /// Runs the CLI and asserts it exits 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "svirt-pool {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `attach --guest G --volume V --mode M`.
    fn attach(&self, guest: &str, volume: impl AsRef<Path>, mode: &str) -> Output {
        let volume = volume.as_ref().to_str().expect("a UTF-8 test path");
        self.cli(&[
            "attach", "--guest", guest, "--volume", volume, "--mode", mode,
        ])
    }

    /// Attaches and asserts success; returns stdout.
    fn attach_ok(&self, guest: &str, volume: impl AsRef<Path>, mode: &str) -> String {
        let volume = volume.as_ref().to_str().expect("a UTF-8 test path");
        self.ok(&[
            "attach", "--guest", guest, "--volume", volume, "--mode", mode,
        ])
    }

    /// Defines a guest with a fresh UUID and returns (uuid, categories).
    fn define_guest(&self, name: &str) -> (String, String) {
        let uuid = new_uuid();
        let out = self.ok(&["guest", "define", "--uuid", &uuid, "--name", name]);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        (uuid, json["categories"].as_str().unwrap().to_owned())
    }

    /// Starts the agent on this bed and waits for READY=1.
    fn agent(&self) -> Agent {
        Agent::start(self.config_path())
    }
}

/// Runs `attach --guest G --volume V --mode M` on a config.
pub fn run_attach(config: &Path, guest: &str, volume: impl AsRef<Path>, mode: &str) -> Output {
    let volume = volume.as_ref().to_str().expect("a UTF-8 test path");
    run_cli(
        config,
        &[
            "attach", "--guest", guest, "--volume", volume, "--mode", mode,
        ],
    )
}

/// Runs the built binary with a config.
pub fn run_cli(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_svirt-pool"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("run svirt-pool")
}

/// A random guest UUID.
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    getrandom_fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn getrandom_fill(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(buf)
        .unwrap();
}

/// The label of `path` itself (never through a symlink), read from the xattr.
pub fn label(path: &Path) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::lgetxattr(path, "security.selinux", &mut buf) {
        Ok(n) => {
            let v = &buf[..n];
            let v = v.strip_suffix(b"\0").unwrap_or(v);
            Some(String::from_utf8(v.to_vec()).unwrap())
        }
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("lgetxattr {}: {e}", path.display()),
    }
}

/// The xattrs libvirt's SELinux driver sets on a file it labels for a running domain:
/// the label it remembered (and will restore) and its reference count.
const LIBVIRT_REMEMBER: [&str; 2] = [
    "trusted.libvirt.security.selinux",
    "trusted.libvirt.security.ref_selinux",
];

/// Marks `path` as libvirt does when it labels it for a running domain, remembering
/// `remembered` to restore at stop.
pub fn libvirt_remembers(path: &Path, remembered: &str) {
    for (name, value) in LIBVIRT_REMEMBER.iter().zip([remembered, "1"]) {
        rustix::fs::setxattr(
            path,
            *name,
            value.as_bytes(),
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", path.display()));
    }
}

/// Removes libvirt's remember xattrs from `path`, as libvirt does when it restores.
pub fn libvirt_forgets(path: &Path) {
    for name in LIBVIRT_REMEMBER {
        rustix::fs::removexattr(path, name)
            .unwrap_or_else(|e| panic!("removexattr {name} on {}: {e}", path.display()));
    }
}

/// Sets a label on `path` itself, as `chcon -h` would.
pub fn set_label(path: &Path, label: &str) {
    let mut value = label.as_bytes().to_vec();
    value.push(0);
    rustix::fs::lsetxattr(
        path,
        "security.selinux",
        &value,
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap_or_else(|e| panic!("lsetxattr {}: {e}", path.display()));
}

/// The image label of a guest with these categories.
pub fn image_label(categories: &str) -> String {
    format!("{SVIRT_IMAGE}:{categories}")
}

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts that `path` reaches `expected` within one second.
pub fn assert_label_within_1s(path: &Path, expected: &str) {
    let ok = wait_for(Duration::from_secs(1), || {
        label(path).as_deref() == Some(expected)
    });
    assert!(
        ok,
        "{} is {:?}, expected {expected} within 1s",
        path.display(),
        label(path)
    );
}

/// A running agent, stopped with SIGTERM when dropped.
pub struct Agent {
    child: Option<Child>,
    _notify: TempDir,
}

impl Agent {
    /// Starts `svirt-pool agent` with a real sd_notify socket and waits for READY=1.
    pub fn start(config: &Path) -> Agent {
        let notify_dir = TempDir::new("/tmp", "svirt-pool-notify");
        let sock_path = notify_dir.join("notify.sock");
        let sock = UnixDatagram::bind(&sock_path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_svirt-pool"))
            .arg("--config")
            .arg(config)
            .arg("agent")
            .env("NOTIFY_SOCKET", &sock_path)
            // Warnings and errors only, so a failing test's output shows what matters.
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .expect("start the agent");
        let mut buf = [0u8; 4096];
        loop {
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                // A signal to this test process (another test's child exiting) is no answer.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("the agent did not send READY=1 within 30s: {e}"),
            };
            let msg = String::from_utf8_lossy(&buf[..n]);
            if msg.lines().any(|l| l == "READY=1") {
                break;
            }
        }
        Agent {
            child: Some(child),
            _notify: notify_dir,
        }
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// CPU time the agent has used so far (user + system), from `/proc/PID/stat`.
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        // utime and stime are fields 14 and 15 of the whole line, in clock ticks (100/s).
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10)
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate().expect("agent was running")
    }

    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        Some(child.wait().unwrap())
    }

    /// Kills the agent with SIGKILL (a crash).
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Asserts that `file` is a domain XML libvirt's schema accepts (`virt-xml-validate`).
pub fn assert_valid_domain_xml(file: &Path) {
    let out = Command::new("virt-xml-validate")
        .arg(file)
        .arg("domain")
        .output()
        .expect("virt-xml-validate (libvirt-clients; xmllint from libxml2-utils) is needed");
    assert!(
        out.status.success(),
        "{} is not valid domain XML: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A mount that is undone when dropped.
pub struct Mount(pub PathBuf);

impl Mount {
    pub fn new(fstype: &str, options: &str, at: &Path) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", fstype, "-o", options, fstype, at.to_str().unwrap()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t {fstype} failed (the tests run as root)");
        Mount(at.to_path_buf())
    }

    /// Remounts it read-only (`"ro"`) or writable again (`"rw"`).
    pub fn remount(&self, mode: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}"), self.0.to_str().unwrap()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -o remount,{mode} failed");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // A state database on it may still be open (a connection this test thread
        // cached): detach the mount lazily then, rather than leave it mounted.
        let unmounted = Command::new("umount")
            .arg(&self.0)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("--lazy").arg(&self.0).status();
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A FUSE mount whose server never answers: any lookup that enters it, by any user
/// (`allow_other`), waits for ever (until the server's descriptor is closed, which
/// aborts the connection).
pub struct HungFuse {
    target: std::path::PathBuf,
    server: Option<std::os::fd::OwnedFd>,
}

impl HungFuse {
    pub fn mount(target: &std::path::Path) -> HungFuse {
        use std::os::fd::AsRawFd;
        let server = rustix::fs::open(
            "/dev/fuse",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .expect("/dev/fuse");
        let rootmode = if target.is_dir() { "40755" } else { "100644" };
        let data = format!(
            "fd={},rootmode={rootmode},user_id=0,group_id=0,allow_other",
            server.as_raw_fd()
        );
        let c = |s: &str| std::ffi::CString::new(s).unwrap();
        let (source, target_c, fstype, data) = (
            c("svirt-hung"),
            c(target.to_str().unwrap()),
            c("fuse"),
            c(&data),
        );
        // SAFETY: every pointer is a valid NUL-terminated string for the call.
        let rc = unsafe {
            libc::mount(
                source.as_ptr(),
                target_c.as_ptr(),
                fstype.as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mount fuse: {}", std::io::Error::last_os_error());
        HungFuse {
            target: target.to_path_buf(),
            server: Some(server),
        }
    }
}

impl Drop for HungFuse {
    fn drop(&mut self) {
        // Closing the server aborts the connection: whatever waits on it fails.
        self.server.take();
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.target)
            .status();
    }
}
