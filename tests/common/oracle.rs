//! The policy oracle: python3-selinux's audit2why on the installed refpolicy binary
//! policy (SELinux is not enabled in this kernel, so the policy is evaluated offline).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

/// A running `tests/support/policy_oracle.py`.
pub struct Oracle {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Oracle {
    /// Starts the oracle.
    pub fn start() -> Oracle {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/policy_oracle.py"
        );
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("/usr/bin/python3 with python3-selinux is needed (see .ci/run)");
        let out = BufReader::new(child.stdout.take().unwrap());
        Oracle { child, out }
    }

    /// Whether `scon` may have `perms` on a file labeled `tcon`.
    pub fn allows(&mut self, scon: &str, tcon: &str, perms: &[&str]) -> bool {
        self.allows_class(scon, tcon, "file", perms)
    }

    /// Whether `scon` may have `perms` on an object of `class` labeled `tcon`.
    pub fn allows_class(&mut self, scon: &str, tcon: &str, class: &str, perms: &[&str]) -> bool {
        let query = serde_json::json!([scon, tcon, class, perms]);
        writeln!(self.child.stdin.as_mut().unwrap(), "{query}").unwrap();
        let mut answer = String::new();
        self.out.read_line(&mut answer).unwrap();
        assert!(!answer.is_empty(), "the policy oracle died");
        answer.trim() == "allow"
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
