//! What the installed SELinux policy says: the sVirt contexts and file_contexts defaults.
//!
//! This module and `filecon` are the only places that call libselinux.

use std::ffi::{CString, c_int};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use selinux::label::{Labeler, back_end};

use crate::decide::context::{CategorySet, Context};

/// File type bits passed to `selabel_lookup`, as in `st_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file (`S_IFREG`).
    Regular,
    /// A directory (`S_IFDIR`).
    Directory,
    /// A block device node (`S_IFBLK`).
    BlockDevice,
}

impl FileKind {
    fn mode(self) -> c_int {
        let mode = match self {
            FileKind::Regular => libc::S_IFREG,
            FileKind::Directory => libc::S_IFDIR,
            FileKind::BlockDevice => libc::S_IFBLK,
        };
        mode as c_int
    }
}

/// The io::Error inside a libselinux error, if any.
pub fn io_error_of(e: &selinux::errors::Error) -> Option<&io::Error> {
    std::error::Error::source(e).and_then(|s| s.downcast_ref::<io::Error>())
}

/// The policy's root folder (`/etc/selinux/<SELINUXTYPE>`), if libselinux knows one.
pub fn policy_root() -> Option<PathBuf> {
    selinux::policy::root_path().ok().map(Path::to_path_buf)
}

/// What went wrong asking the installed policy or a file_contexts database.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyError {
    /// libselinux knows no policy root.
    #[error("no SELinux policy is installed (selinux_policy_root)")]
    NotInstalled,
    /// A policy file could not be read.
    #[error("cannot read {}: {cause}", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        cause: String,
    },
    /// A policy file has fewer lines than expected.
    #[error("{} has no line {line}", .path.display())]
    MissingLine {
        /// The file.
        path: PathBuf,
        /// The 1-based line asked for.
        line: usize,
    },
    /// A path or a context in a policy file is not what a label can be.
    #[error("{}: {why}", .path.display())]
    BadEntry {
        /// The file, or the path looked up.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// libselinux refused to load or answer.
    #[error("{what}: {cause}")]
    Selinux {
        /// What was asked.
        what: String,
        /// Its answer.
        cause: String,
    },
}

/// Reads line `line` (0-based) of `contexts/<name>` under the policy root.
///
/// `virtual_image_context` holds the image context on line 1 and the content
/// context on line 2; `virtual_domain_context` holds the process context.
pub fn installed_context(name: &str, line: usize) -> Result<Context, PolicyError> {
    let root = policy_root().ok_or(PolicyError::NotInstalled)?;
    let path = root.join("contexts").join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| PolicyError::Unreadable {
        path: path.clone(),
        cause: e.to_string(),
    })?;
    let value = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .nth(line)
        .ok_or_else(|| PolicyError::MissingLine {
            path: path.clone(),
            line: line + 1,
        })?;
    value.parse().map_err(
        |e: crate::decide::context::ParseError| PolicyError::BadEntry {
            path,
            why: e.to_string(),
        },
    )
}

/// The categories the agent may hand out by default: its own range, else `c0.c1023`.
pub fn default_categories() -> CategorySet {
    selinux::SecurityContext::current(true)
        .ok()
        .and_then(|c| c.to_c_string().ok().flatten().map(|s| s.into_owned()))
        .and_then(|s| s.to_str().ok().and_then(|s| s.parse::<Context>().ok()))
        .map(|c| c.high_categories())
        .filter(|set| set.len() >= 2)
        .unwrap_or_else(CategorySet::full)
}

/// A loaded file_contexts database (`selabel_open` on the file back end).
///
/// Not `Send`: libselinux handles stay on the thread that opened them.
pub struct FileContexts {
    labeler: Labeler<back_end::File>,
}

impl FileContexts {
    /// Opens `path`, or the policy's own file_contexts when `None`.
    pub fn open(path: Option<&Path>) -> Result<Self, PolicyError> {
        let labeler = match path {
            Some(p) => {
                let c = CString::new(p.as_os_str().as_bytes()).map_err(|_| nul_in(p))?;
                let opts = [(selinux_sys::SELABEL_OPT_PATH as c_int, c.as_ptr().cast())];
                Labeler::new(&opts, true)
            }
            None => Labeler::new(&[], true),
        };
        let labeler = labeler.map_err(|e| {
            let what = path.map_or("the policy's file_contexts".into(), |p| {
                p.display().to_string()
            });
            let cause = io_error_of(&e).map_or(e.to_string(), ToString::to_string);
            PolicyError::Selinux {
                what: format!("cannot load {what}"),
                cause,
            }
        })?;
        Ok(Self { labeler })
    }

    /// The default context for `path` (absolute) of type `kind`, as `matchpathcon` gives it.
    ///
    /// `Ok(None)` when file_contexts has no entry, or `<<none>>`, for that path.
    pub fn lookup(&self, path: &Path, kind: FileKind) -> Result<Option<Context>, PolicyError> {
        let key = CString::new(path.as_os_str().as_bytes()).map_err(|_| nul_in(path))?;
        let bad = |why: String| PolicyError::BadEntry {
            path: path.to_path_buf(),
            why,
        };
        match self.labeler.look_up(&key, kind.mode()) {
            Ok(con) => {
                let bytes = trim_nul(con.as_bytes());
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| bad("file_contexts entry is not UTF-8".into()))?;
                text.parse()
                    .map(Some)
                    .map_err(|e| bad(format!("file_contexts entry: {e}")))
            }
            Err(e) if io_error_of(&e).and_then(io::Error::raw_os_error) == Some(libc::ENOENT) => {
                Ok(None)
            }
            Err(e) => Err(PolicyError::Selinux {
                what: format!("{}: selabel_lookup", path.display()),
                cause: e.to_string(),
            }),
        }
    }
}

// SAFETY: libselinux's file backend answers `selabel_lookup` from several threads on
// one handle: each spec's regular expression is compiled lazily under its own mutex
// (`compile_regex` in label_file.h, libselinux >= 3.3, which `selinux_restorecon`'s
// parallel relabeling relies on), and nothing else a lookup touches is written. The
// handle is closed only when the last owner drops it.
unsafe impl Send for FileContexts {}
// SAFETY: as for `Send` just above: lookups from several threads at once are safe.
unsafe impl Sync for FileContexts {}

/// The file_contexts database the process loaded last: loading it takes ~10 ms and
/// ~20 MiB, so the config's check, the scan's walkers and the API's threads share one
/// (one per thread made the agent's peak 56 MiB on a 100,000-file scan).
static SHARED: std::sync::Mutex<Option<(Option<PathBuf>, Arc<FileContexts>)>> =
    std::sync::Mutex::new(None);

impl FileContexts {
    /// The process's handle on the file_contexts at `path`, loaded once.
    pub fn shared(path: Option<&Path>) -> Result<Arc<FileContexts>, PolicyError> {
        let mut cached = SHARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((p, fc)) = cached.as_ref()
            && p.as_deref() == path
        {
            return Ok(fc.clone());
        }
        let fc = Arc::new(FileContexts::open(path)?);
        *cached = Some((path.map(Path::to_path_buf), fc.clone()));
        Ok(fc)
    }

    /// Lets go of the process's handle (it is freed once its last user drops it): the
    /// agent after its first scan, which needed it for every pool; the next lookup
    /// loads it again.
    pub fn forget_shared() {
        SHARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

/// The file the lookups come from: the configured one, else the policy's own
/// (its sources tell whether a pool is uniform, see `uniform`).
pub fn file_contexts_path(configured: Option<&Path>) -> PathBuf {
    configured.map(Path::to_path_buf).unwrap_or_else(|| {
        policy_root()
            .unwrap_or_default()
            .join("contexts/files/file_contexts")
    })
}

fn nul_in(path: &Path) -> PolicyError {
    PolicyError::BadEntry {
        path: path.to_path_buf(),
        why: "path has a NUL byte".into(),
    }
}

/// Drops the trailing NUL bytes libselinux may include in a context's length.
pub fn trim_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    &bytes[..end]
}
