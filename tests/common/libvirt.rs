//! libvirt from the tests: `virsh` on `qemu:///system`, and libvirtd started if none
//! runs (scripts/start-libvirtd).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `virsh -c qemu:///system args...`.
pub fn virsh(args: &[&str]) -> Output {
    Command::new("virsh")
        .args(["-c", "qemu:///system"])
        .args(args)
        .output()
        .expect("virsh (libvirt-clients) is needed: scripts/install-deps --tests")
}

/// Runs virsh and asserts it exits 0; returns stdout.
pub fn virsh_ok(args: &[&str]) -> String {
    let out = virsh(args);
    assert!(
        out.status.success(),
        "virsh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts libvirtd unless one runs.
pub fn start_libvirtd() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/start-libvirtd");
    let out = Command::new(script).output().unwrap();
    assert!(
        out.status.success(),
        "start-libvirtd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills libvirtd (its guests keep running: they are QEMU processes of their own) and
/// starts it again: it reconnects to them and calls the hooks with `reconnect begin`.
pub fn restart_libvirtd() {
    let _ = Command::new("pkill")
        .args(["-9", "-x", "libvirtd"])
        .status();
    assert!(
        super::wait_for(std::time::Duration::from_secs(5), || !Command::new("pgrep")
            .args(["-x", "libvirtd"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()),
        "libvirtd did not exit after SIGKILL"
    );
    start_libvirtd();
}

/// When the running libvirtd started (wall clock, to the second, from `ps -o etimes`);
/// `None` when no libvirtd runs.
fn libvirtd_started() -> Option<std::time::SystemTime> {
    let out = Command::new("ps")
        .args(["-C", "libvirtd", "-o", "etimes="])
        .output()
        .ok()?;
    let elapsed: u64 = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .max()?;
    Some(std::time::SystemTime::now() - std::time::Duration::from_secs(elapsed))
}

/// Installs `script` as the qemu hook `path` (`/etc/libvirt/hooks/qemu.d/NAME`) and
/// makes sure the libvirtd that runs has seen it. libvirtd looks for hook scripts only
/// when it starts: a hook written after that is never called (a machine whose
/// `qemu.d` was empty when libvirtd started, as CI's). So libvirtd is started after the
/// hook is written, or restarted when it started before.
pub fn install_hook(path: &std::path::Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    if std::fs::read_to_string(path).ok().as_deref() != Some(script) {
        std::fs::write(path, script).unwrap();
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let written = std::fs::metadata(path).unwrap().modified().unwrap();
    match libvirtd_started() {
        None => start_libvirtd(),
        // Two seconds of slack: the start time is known to the second.
        Some(started) if started > written + std::time::Duration::from_secs(2) => {}
        Some(_) => {
            eprintln!(
                "install_hook: libvirtd started before {} was written; restarting it so it sees the hook",
                path.display()
            );
            restart_libvirtd();
        }
    }
}

/// A domain XML with `disks` (`(source, extra elements)`) and an optional SELinux label.
pub fn domain_xml(name: &str, uuid: &str, label: Option<&str>, disks: &[(&Path, &str)]) -> String {
    let mut xml = format!(
        "<domain type='qemu' id='1'>\n<name>{name}</name>\n<uuid>{uuid}</uuid>\n<devices>\n"
    );
    for (i, (source, extra)) in disks.iter().enumerate() {
        let device = if extra.contains("cdrom") {
            "cdrom"
        } else {
            "disk"
        };
        xml.push_str(&format!(
            "<disk type='file' device='{device}'><source file='{}'/><target dev='vd{}'/>{}</disk>\n",
            source.display(),
            char::from(b'a' + u8::try_from(i).unwrap()),
            extra.replace("cdrom", "")
        ));
    }
    xml.push_str("</devices>\n<seclabel type='dynamic' model='dac' relabel='yes'/>\n");
    if let Some(label) = label {
        xml.push_str(&format!(
            "<seclabel type='dynamic' model='selinux' relabel='yes'><label>{label}</label></seclabel>\n"
        ));
    }
    xml.push_str("</domain>\n");
    xml
}

/// Runs `svirt-pool libvirt-hook NAME OP SUBOP -` with `xml` on stdin, as libvirtd does.
pub fn hook(config: &Path, name: &str, op: &str, subop: &str, xml: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_svirt-pool"))
        .arg("--config")
        .arg(config)
        .args(["libvirt-hook", name, op, subop, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(xml.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn hook_ok(config: &Path, name: &str, op: &str, subop: &str, xml: &str) {
    let out = hook(config, name, op, subop, xml);
    assert!(
        out.status.success(),
        "{op} {subop}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A libvirt storage pool of type `dir` on a directory, started (libvirtd too, if
/// none runs), destroyed and undefined when dropped.
pub struct LibvirtPool(pub String);

impl LibvirtPool {
    /// Defines and starts a pool on `dir`.
    pub fn new(dir: &Path) -> LibvirtPool {
        start_libvirtd();
        let name = super::unique("svirt-pool-test");
        virsh_ok(&[
            "pool-define-as",
            &name,
            "dir",
            "--target",
            dir.to_str().unwrap(),
        ]);
        let pool = LibvirtPool(name);
        virsh_ok(&["pool-start", &pool.0]);
        virsh_ok(&["pool-refresh", &pool.0]);
        pool
    }
}

impl Drop for LibvirtPool {
    fn drop(&mut self) {
        let _ = virsh(&["pool-destroy", &self.0]);
        let _ = virsh(&["pool-undefine", &self.0]);
    }
}
