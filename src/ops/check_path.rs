//! `check-path`: can the emulator reach this file? For every directory on the way and
//! the file itself: what the emulator's user may do by DAC (the kernel's `access(2)`
//! answered as that user: mode bits, ACLs, groups), and what the guest's process label
//! may do by the SELinux policy (`decide::policy_query`). The first component that
//! blocks it comes with the fix to suggest. Changes nothing.
//!
//! The path is looked at with the caller's own rights (it learns nothing it could not
//! `stat` itself); only the DAC answers are asked as the emulator's user.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Access, FileType, Mode, OFlags};

use super::{Caller, access, locate::is_managed, parse_uuid};
use crate::backend;
use crate::config::Settings;
use crate::decide::policy::{FileContexts, FileKind};
use crate::decide::policy_query::{self, QueryError, Source};
use crate::error::{Error, Result};
use crate::model::{PathCheck, PathStep};

/// What libvirt's qemu.conf says QEMU runs as (`user = "..."`), if it says.
fn qemu_conf_user() -> Option<String> {
    let text = std::fs::read_to_string("/etc/libvirt/qemu.conf").ok()?;
    text.lines().find_map(|l| {
        let (key, value) = l.trim().split_once('=')?;
        (key.trim() == "user").then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The emulator's user: `[libvirt] qemu_user`, else qemu.conf's `user`, else
/// `libvirt-qemu`; with its uid and primary gid.
fn emulator(settings: &Settings) -> Result<(String, Caller)> {
    let name = settings
        .qemu_user
        .clone()
        .or_else(qemu_conf_user)
        .unwrap_or_else(|| "libvirt-qemu".into());
    let (uid, gid) = crate::users::user_ids(&name).ok_or_else(|| {
        Error::failed(format!(
            "the emulator's user {name:?} does not exist (set [libvirt] qemu_user)"
        ))
    })?;
    Ok((name, Caller { uid, gid }))
}

/// What a component of a checked path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
    Other,
    /// It cannot be reached (or does not exist).
    Missing,
}

impl Kind {
    /// The name `PathStep.kind` carries.
    fn as_str(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::File => "file",
            Kind::Symlink => "symlink",
            Kind::Other => "other",
            Kind::Missing => "missing",
        }
    }
}

/// One component as the caller sees it, with the descriptor it was seen through.
struct Seen {
    path: PathBuf,
    kind: Kind,
    label: Option<String>,
    /// `O_PATH` descriptor of the component (none for a missing one): the emulator's
    /// DAC answers are asked of this very inode, never of the path again.
    fd: Option<OwnedFd>,
}

/// How many symlinks a walk follows before it gives up (the kernel's limit).
const MAX_LINKS: usize = 40;

/// Walks `path` as the current thread's user (the caller's, in [`access::as_caller`]),
/// one component at a time from `/` with `O_PATH | O_NOFOLLOW`, following symlinks
/// itself as QEMU's open would: returns `/`, each directory and the file on the real
/// path, each with its descriptor, and stops at the first that cannot be reached
/// (reported `missing`). Every later question is asked of these descriptors, so a name
/// swapped meanwhile (a directory for a symlink) cannot make it answer for another file.
fn walk(path: &Path) -> Vec<Seen> {
    use std::collections::VecDeque;
    use std::path::Component;
    let open = |at: BorrowedFd<'_>, name: &OsStr| {
        rustix::fs::openat(
            at,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let Ok(root) = open(rustix::fs::CWD, OsStr::new("/")) else {
        return Vec::new();
    };
    // The directories from `/` to where the walk stands (`..` goes back one).
    let mut at: Vec<Seen> = vec![look(PathBuf::from("/"), root)];
    let mut todo: VecDeque<std::ffi::OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    let missing = |path: PathBuf| Seen {
        path,
        kind: Kind::Missing,
        label: None,
        fd: None,
    };
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            if at.len() > 1 {
                at.pop();
            }
            continue;
        }
        let parent = at.last().expect("/ is never popped");
        let parent_fd = parent.fd.as_ref().expect("directories have descriptors");
        let child = parent.path.join(&name);
        let Ok(fd) = open(parent_fd.as_fd(), &name) else {
            at.push(missing(child));
            break;
        };
        let is_link = rustix::fs::fstat(&fd)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
        if !is_link {
            let seen = look(child, fd);
            let go_on = seen.kind == Kind::Dir;
            at.push(seen);
            if go_on {
                continue;
            }
            // A file with more components after it: the next one does not exist.
            if let Some(next) = todo.pop_front() {
                let below = at.last().expect("just pushed").path.join(next);
                at.push(missing(below));
            }
            break;
        }
        links += 1;
        let target = rustix::fs::readlinkat(parent_fd.as_fd(), &name, Vec::new());
        let Some(target) = target.ok().filter(|_| links <= MAX_LINKS) else {
            at.push(missing(child));
            break;
        };
        let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
        if target.is_absolute() {
            at.truncate(1);
        }
        for c in target.components().rev() {
            match c {
                Component::Normal(n) => todo.push_front(n.to_os_string()),
                Component::ParentDir => todo.push_front("..".into()),
                _ => {}
            }
        }
    }
    at
}

/// Whether the current thread's user may `mode` the inode behind `fd` (an `O_PATH`
/// descriptor): `faccessat2(fd, "", mode, AT_EACCESS | AT_EMPTY_PATH)`, the kernel's own
/// answer with ACLs and groups. (rustix's `accessat` refuses `AT_EMPTY_PATH`.)
fn access_fd(fd: BorrowedFd<'_>, mode: Access) -> bool {
    // SAFETY: a valid descriptor, a NUL-terminated empty path, plain integer flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode.bits() as libc::c_int,
            libc::AT_EACCESS | libc::AT_EMPTY_PATH,
        )
    };
    rc == 0
}

/// What the caller sees of the component `fd` (an `O_PATH` descriptor) at `path`.
fn look(path: PathBuf, fd: OwnedFd) -> Seen {
    let kind = match rustix::fs::fstat(&fd) {
        Ok(st) => match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => Kind::Dir,
            FileType::RegularFile => Kind::File,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        },
        Err(_) => Kind::Missing,
    };
    // Through the thread's own view of the descriptor: this thread runs as the caller,
    // and `/proc/self` (the process, root's) would be closed to it.
    let mut buf = vec![0u8; 256];
    let magic = format!("/proc/thread-self/fd/{}", fd.as_raw_fd());
    let label = rustix::fs::getxattr(magic.as_str(), "security.selinux", &mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(crate::decide::policy::trim_nul(&buf[..n])).into_owned());
    Seen {
        path,
        kind,
        label,
        fd: Some(fd),
    }
}

/// Checks whether the emulator can reach `path` for `guest` (its process label and
/// the mode it holds the file in), or for any guest (base `svirt_t`, read access).
pub fn check(
    settings: &Settings,
    caller: Caller,
    path: &Path,
    guest: Option<&str>,
) -> Result<PathCheck> {
    if !path.is_absolute() {
        return Err(Error::Usage(format!(
            "{}: the path must be absolute",
            path.display()
        )));
    }
    let path = super::locate::normalize_user_path(path, Path::new("/"))
        .map_err(|e| Error::Usage(e.to_string()))?;
    let (user, who) = emulator(settings)?;
    let contexts = &settings.selinux.contexts;
    let (process, write) = match guest {
        None => (contexts.process.clone(), false),
        Some(uuid) => {
            let uuid = parse_uuid(uuid)?;
            let store = backend::open(settings)?;
            let g = store
                .guest(&uuid)?
                .ok_or_else(|| Error::NoSuchGuest(uuid.clone()))?;
            let key_matches = |a: &crate::registry::Attachment| {
                settings
                    .pools
                    .iter()
                    .find(|p| p.name == a.pool)
                    .is_some_and(|p| p.entry_path(Path::new(OsStr::from_bytes(&a.volume))) == path)
            };
            let writes = store
                .attachments(Some(&uuid))?
                .iter()
                .any(|a| key_matches(a) && a.mode != crate::decide::labels::Mode::Ro);
            (contexts.process_label(g.effective_pair()), writes)
        }
    };
    // Symlinks are followed by QEMU: check where they lead, as the caller resolves them,
    // on descriptors the caller's own walk opened.
    let seen = access::as_caller(caller, || walk(&path))?;
    let real = seen.last().map_or(path.clone(), |s| s.path.clone());
    let file_perms: &[&str] = if write {
        &["read", "open", "write"]
    } else {
        &["read", "open"]
    };
    let mut selinux_source: Option<Result<Source, QueryError>> = None;
    let mut steps = Vec::new();
    let mut blocked: Option<(String, String, String)> = None;
    for (i, s) in seen.iter().enumerate() {
        let last = i + 1 == seen.len();
        let mut step = PathStep {
            path: s.path.to_string_lossy().into_owned(),
            kind: s.kind.as_str().into(),
            label: s.label.clone(),
            label_is_default: false,
            dac_allowed: Vec::new(),
            dac_denied: Vec::new(),
            selinux_allowed: Vec::new(),
            selinux_denied: Vec::new(),
        };
        if s.kind == Kind::Missing {
            blocked.get_or_insert((step.path.clone(), "it does not exist".into(), String::new()));
            steps.push(step);
            break;
        }
        // With SELinux disabled nothing labels new files: ask what a relabel would give.
        if step.label.is_none() && !policy_query::enabled() {
            let kind = if s.kind == Kind::Dir {
                FileKind::Directory
            } else {
                FileKind::Regular
            };
            let fc = settings.selinux.file_contexts.as_deref();
            step.label = FileContexts::shared(fc)
                .ok()
                .and_then(|f| f.lookup(&s.path, kind).ok().flatten())
                .map(|c| c.to_string());
            step.label_is_default = step.label.is_some();
        }
        // DAC, as the emulator's user.
        let dac: Vec<(&str, Access)> = if last {
            let mut v = vec![("read", Access::READ_OK)];
            if write {
                v.push(("write", Access::WRITE_OK));
            }
            v
        } else {
            vec![("search", Access::EXEC_OK)]
        };
        let fd = s.fd.as_ref().expect("only a missing component has none");
        for (name, mode) in dac {
            // Of the inode the caller's walk reached, not of the path again.
            let ok = access::as_caller(who, || access_fd(fd.as_fd(), mode))?;
            if ok {
                step.dac_allowed.push(name.into());
            } else {
                step.dac_denied.push(name.into());
            }
        }
        // SELinux, for the guest's process label.
        let (class, perms): (&str, &[&str]) = if last {
            ("file", file_perms)
        } else {
            ("dir", &["search"])
        };
        match &step.label {
            Some(label) => match policy_query::allows(process.as_str(), label, class, perms) {
                Ok(v) => {
                    selinux_source.get_or_insert(Ok(v.source));
                    step.selinux_allowed = v.allowed;
                    step.selinux_denied = v.denied;
                }
                Err(e) => {
                    selinux_source.get_or_insert(Err(e));
                }
            },
            // Unlabeled: the kernel treats it as `unlabeled_t`, which svirt_t may not use.
            None => step.selinux_denied = perms.iter().map(|p| (*p).to_owned()).collect(),
        }
        if blocked.is_none() {
            blocked = blocker(settings, &user, &real, s, &step, last, guest);
        }
        steps.push(step);
    }
    let selinux = match selinux_source {
        Some(Ok(Source::Kernel)) => "kernel".into(),
        Some(Ok(Source::PolicyFile)) => "policy file".into(),
        Some(Err(e)) => format!("unavailable: {e}"),
        None => "not asked".into(),
    };
    let (blocked_at, reason, fix) = match blocked {
        Some((at, why, fix)) => (Some(at), Some(why), (!fix.is_empty()).then_some(fix)),
        None => (None, None, None),
    };
    Ok(PathCheck {
        path: path.to_string_lossy().into_owned(),
        emulator: format!("{user} (uid {}, gid {})", who.uid, who.gid),
        process_label: process.to_string(),
        selinux,
        steps,
        reachable: blocked_at.is_none(),
        blocked_at,
        reason,
        fix,
    })
}

/// Whether `step` blocks the emulator, and the fix to suggest: (where, why, fix).
fn blocker(
    settings: &Settings,
    user: &str,
    file: &Path,
    seen: &Seen,
    step: &PathStep,
    last: bool,
    guest: Option<&str>,
) -> Option<(String, String, String)> {
    let at = step.path.clone();
    let managed = is_managed(settings, file);
    let shown = file.display();
    let into_pool = format!("import it into a pool: svirt-pool import {shown} --pool POOL");
    if !step.dac_denied.is_empty() {
        let why = format!("user {user} may not {} it", step.dac_denied.join(" or "));
        let perms = if last {
            if step.dac_denied.iter().any(|p| p == "write") {
                "rw"
            } else {
                "r"
            }
        } else {
            "x"
        };
        let acl = format!("setfacl -m u:{user}:{perms} {at}");
        let fix = if last && !managed {
            format!("{acl}, or {into_pool}")
        } else {
            acl
        };
        return Some((at, why, fix));
    }
    if !step.selinux_denied.is_empty() {
        let label = step.label.as_deref().unwrap_or("no label");
        let why = format!(
            "the policy does not let the guest {} it ({label})",
            step.selinux_denied.join(" or ")
        );
        let fix = match (last, managed) {
            (true, true) => format!(
                "attach it to the guest: svirt-pool attach --guest {} --volume {shown} --mode ro|rw",
                guest.unwrap_or("UUID")
            ),
            (true, false) => into_pool,
            (false, _) => format!(
                "give the directory a label svirt_t may search (e.g. semanage fcontext -a -t virt_image_t '{at}' && restorecon {at}), or {into_pool}"
            ),
        };
        return Some((at, why, fix));
    }
    if last && seen.kind != Kind::File {
        return Some((at, "it is not a regular file".into(), String::new()));
    }
    None
}
