//! Running an external program, the one way the agent does: lvm2, virsh, qemu-img and
//! diff all go through [`Program`]. Stdin is empty, stdout and stderr are captured, the
//! program is killed when it outlives its timeout, and an error names the command line,
//! its exit status and what it said on stderr.

use std::os::fd::RawFd;
use std::process::ExitStatus;
use std::time::Duration;

/// Why a program gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// It could not be started.
    #[error("cannot run {argv}: {error}")]
    Spawn {
        /// The command line.
        argv: String,
        /// The OS error.
        error: String,
    },
    /// It ran longer than allowed and was killed.
    #[error("{argv} did not finish within {secs}s and was killed")]
    Timeout {
        /// The command line.
        argv: String,
        /// The limit.
        secs: u64,
    },
    /// It exited with a status other than 0.
    #[error("{argv} exited with {status}: {stderr}")]
    Failed {
        /// The command line.
        argv: String,
        /// Its exit status.
        status: String,
        /// What it wrote on stderr, its lines trimmed and joined with `; `.
        stderr: String,
    },
}

/// What a program that ran to its end printed, and how it exited.
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its stderr.
    pub stderr: Vec<u8>,
}

/// A program to run: its arguments, environment and timeout.
pub struct Program {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    timeout: Duration,
    pass_fd: Option<RawFd>,
}

impl Program {
    /// `program args...`, killed after `timeout`.
    pub fn new<S: AsRef<str>>(program: &str, args: &[S], timeout: Duration) -> Program {
        Program {
            program: program.to_owned(),
            args: args.iter().map(|a| a.as_ref().to_owned()).collect(),
            env: Vec::new(),
            timeout,
            pass_fd: None,
        }
    }

    /// Sets an environment variable for it.
    pub fn env(mut self, key: &str, value: &str) -> Program {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Lets it inherit descriptor `fd` (close-on-exec is cleared in the child only). The
    /// caller keeps `fd` open until the program has exited.
    pub fn pass_fd(mut self, fd: RawFd) -> Program {
        self.pass_fd = Some(fd);
        self
    }

    /// The command line, as errors show it.
    pub fn argv(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs it to its end, whatever its exit status.
    pub fn finish(self) -> Result<Finished, RunError> {
        let argv = self.argv();
        let spawn = |e: std::io::Error| RunError::Spawn {
            argv: argv.clone(),
            error: e.to_string(),
        };
        let mut cmd = duct::cmd(&self.program, &self.args);
        for (key, value) in &self.env {
            cmd = cmd.env(key, value);
        }
        if let Some(fd) = self.pass_fd {
            cmd = cmd.before_spawn(move |c| {
                use std::os::unix::process::CommandExt;
                // SAFETY: the closure runs in the child between fork and exec and calls
                // only fcntl(2), which is async-signal-safe; the caller keeps `fd` open
                // until the child has exited.
                unsafe {
                    c.pre_exec(move || {
                        let borrowed = std::os::fd::BorrowedFd::borrow_raw(fd);
                        rustix::io::fcntl_setfd(borrowed, rustix::io::FdFlags::empty())?;
                        Ok(())
                    });
                }
                Ok(())
            });
        }
        let handle = cmd
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .start()
            .map_err(spawn)?;
        let Some(output) = handle.wait_timeout(self.timeout).map_err(spawn)? else {
            let _ = handle.kill();
            return Err(RunError::Timeout {
                argv,
                secs: self.timeout.as_secs().max(1),
            });
        };
        Ok(Finished {
            status: output.status,
            stdout: output.stdout.clone(),
            stderr: output.stderr.clone(),
        })
    }

    /// Runs it and returns its stdout; an exit status other than 0 is an error.
    pub fn stdout(self) -> Result<Vec<u8>, RunError> {
        let argv = self.argv();
        let done = self.finish()?;
        if !done.status.success() {
            return Err(RunError::Failed {
                argv,
                status: done.status.to_string(),
                stderr: lines(&done.stderr),
            });
        }
        Ok(done.stdout)
    }
}

/// Output as one line: its non-empty lines trimmed and joined with `; `.
pub fn lines(output: &[u8]) -> String {
    String::from_utf8_lossy(output)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_failures_and_missing_programs_are_told_apart() {
        let started = std::time::Instant::now();
        let err = Program::new("sleep", &["30"], Duration::from_millis(200))
            .stdout()
            .unwrap_err();
        assert!(matches!(err, RunError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));

        let err = Program::new(
            "sh",
            &["-c", "echo ' one '; echo; echo two >&2; exit 3"],
            Duration::from_secs(10),
        )
        .stdout()
        .unwrap_err();
        assert_eq!(
            err,
            RunError::Failed {
                argv: "sh -c echo ' one '; echo; echo two >&2; exit 3".into(),
                status: "exit status: 3".into(),
                stderr: "two".into(),
            }
        );
        let err = Program::new("/nonexistent/lvs", &[] as &[&str], Duration::from_secs(10))
            .stdout()
            .unwrap_err();
        assert!(matches!(err, RunError::Spawn { .. }), "{err}");

        let out = Program::new(
            "sh",
            &["-c", "printf \"$X\"; exit 1"],
            Duration::from_secs(10),
        )
        .env("X", "seen")
        .finish()
        .unwrap();
        assert_eq!(
            (out.stdout.as_slice(), out.status.code()),
            (&b"seen"[..], Some(1))
        );
    }

    #[test]
    fn a_passed_descriptor_is_open_in_the_child() {
        use std::os::fd::AsRawFd;
        let file = tempfile::tempfile().unwrap();
        let fd = file.as_raw_fd();
        let path = format!("/proc/self/fd/{fd}");
        Program::new(
            "sh",
            &["-c", &format!("echo written > {path}")],
            Duration::from_secs(10),
        )
        .pass_fd(fd)
        .stdout()
        .unwrap();
        let mut text = String::new();
        use std::io::{Read, Seek};
        let mut file = file;
        file.rewind().unwrap();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "written\n");
    }
}
