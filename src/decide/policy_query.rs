//! Asking the SELinux policy whether a process label may do something to a file label.
//!
//! With SELinux enabled, the kernel's loaded policy answers (libselinux
//! `security_compute_av_raw`). Without it (these test machines), the installed binary
//! policy is loaded into libsepol and asked offline, as `audit2why` does
//! (`sepol_set_policydb_from_file`, `sepol_context_to_sid`,
//! `sepol_compute_av_reason_buffer`): a small FFI to Debian's libsepol2, since no
//! maintained crate wraps it.

use std::ffi::{CString, c_char, c_int, c_uint};
use std::path::PathBuf;
use std::sync::Mutex;

use super::policy::policy_root;

/// Which policy answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The kernel's loaded policy.
    Kernel,
    /// The installed policy file, evaluated offline by libsepol.
    PolicyFile,
}

/// The policy's answer for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The permissions asked for that are allowed.
    pub allowed: Vec<String>,
    /// Those that are denied.
    pub denied: Vec<String>,
    /// Who answered.
    pub source: Source,
}

impl Verdict {
    /// Files `perm` under allowed or denied.
    fn record(&mut self, perm: &str, allowed: bool) {
        match allowed {
            true => self.allowed.push(perm.to_owned()),
            false => self.denied.push(perm.to_owned()),
        }
    }
}

/// Why the policy could not be asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No binary policy is installed (and SELinux is not enabled).
    #[error("no SELinux policy to ask: {0}")]
    NoPolicy(String),
    /// A context or class the policy does not know.
    #[error("the policy does not know {0}")]
    Unknown(String),
}

// libsepol's types (sepol/policydb/flask_types.h, sepol/policydb/services.h).
type SepolSid = u32;
type SepolClass = u16;
type SepolAv = u32;

#[repr(C)]
#[derive(Default)]
struct SepolAvDecision {
    allowed: SepolAv,
    decided: SepolAv,
    auditallow: SepolAv,
    auditdeny: SepolAv,
    seqno: c_uint,
}

#[link(name = "sepol")]
unsafe extern "C" {
    fn sepol_set_policydb_from_file(fp: *mut libc::FILE) -> c_int;
    fn sepol_context_to_sid(scontext: *const c_char, len: usize, sid: *mut SepolSid) -> c_int;
    fn sepol_string_to_security_class(name: *const c_char, tclass: *mut SepolClass) -> c_int;
    fn sepol_string_to_av_perm(tclass: SepolClass, name: *const c_char, av: *mut SepolAv) -> c_int;
    fn sepol_compute_av_reason_buffer(
        ssid: SepolSid,
        tsid: SepolSid,
        tclass: SepolClass,
        requested: SepolAv,
        avd: *mut SepolAvDecision,
        reason: *mut c_uint,
        reason_buf: *mut *mut c_char,
        flags: c_uint,
    ) -> c_int;
}

/// libsepol keeps one global policy: loaded once, asked under this lock.
static SEPOL: Mutex<Option<Result<(), QueryError>>> = Mutex::new(None);

/// The installed binary policy with the highest version (`policy/policy.NN`).
fn policy_file() -> Result<PathBuf, QueryError> {
    let dir = policy_root()
        .ok_or_else(|| QueryError::NoPolicy("no policy root".into()))?
        .join("policy");
    let newest = std::fs::read_dir(&dir)
        .map_err(|e| QueryError::NoPolicy(format!("{}: {e}", dir.display())))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version: u32 = name.strip_prefix("policy.")?.parse().ok()?;
            Some((version, e.path()))
        })
        .max();
    newest
        .map(|(_, p)| p)
        .ok_or_else(|| QueryError::NoPolicy(format!("no policy.NN in {}", dir.display())))
}

fn load_sepol() -> Result<(), QueryError> {
    let path = policy_file()?;
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| QueryError::NoPolicy("policy path has a NUL byte".into()))?;
    // SAFETY: both strings are NUL-terminated; the FILE is closed below and libsepol
    // reads the whole policy during the call.
    let fp = unsafe { libc::fopen(c.as_ptr(), c"r".as_ptr()) };
    if fp.is_null() {
        return Err(QueryError::NoPolicy(format!(
            "cannot open {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: fp is an open FILE; the caller holds SEPOL's lock (libsepol is global).
    let rc = unsafe { sepol_set_policydb_from_file(fp) };
    // SAFETY: fp came from fopen above and is not used after this.
    unsafe { libc::fclose(fp) };
    if rc != 0 {
        return Err(QueryError::NoPolicy(format!(
            "libsepol cannot load {}",
            path.display()
        )));
    }
    Ok(())
}

fn sepol_sid(context: &str) -> Result<SepolSid, QueryError> {
    let c = CString::new(context).map_err(|_| QueryError::Unknown(context.into()))?;
    let mut sid = 0;
    // SAFETY: c is NUL-terminated and its length is passed with the NUL, as
    // audit2why does; sid is a valid out pointer.
    let rc = unsafe { sepol_context_to_sid(c.as_ptr(), context.len() + 1, &mut sid) };
    if rc != 0 {
        return Err(QueryError::Unknown(format!("context {context}")));
    }
    Ok(sid)
}

fn ask_sepol(scon: &str, tcon: &str, class: &str, perms: &[&str]) -> Result<Verdict, QueryError> {
    let mut loaded = SEPOL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if loaded.is_none() {
        *loaded = Some(load_sepol());
    }
    loaded.as_ref().expect("set above").clone()?;
    let (ssid, tsid) = (sepol_sid(scon)?, sepol_sid(tcon)?);
    let class_c = CString::new(class).map_err(|_| QueryError::Unknown(class.into()))?;
    let mut tclass = 0;
    // SAFETY: class_c is NUL-terminated; tclass is a valid out pointer.
    if unsafe { sepol_string_to_security_class(class_c.as_ptr(), &mut tclass) } != 0 {
        return Err(QueryError::Unknown(format!("class {class}")));
    }
    let mut verdict = Verdict {
        allowed: Vec::new(),
        denied: Vec::new(),
        source: Source::PolicyFile,
    };
    for perm in perms {
        let perm_c = CString::new(*perm).map_err(|_| QueryError::Unknown((*perm).into()))?;
        let mut av = 0;
        // SAFETY: perm_c is NUL-terminated; av is a valid out pointer.
        if unsafe { sepol_string_to_av_perm(tclass, perm_c.as_ptr(), &mut av) } != 0 {
            return Err(QueryError::Unknown(format!("permission {class} {perm}")));
        }
        let mut avd = SepolAvDecision::default();
        let mut reason = 0;
        let mut buf: *mut c_char = std::ptr::null_mut();
        // SAFETY: all out pointers are valid; flags 0 asks for no reason text, so
        // buf stays null (freed below if libsepol set it anyway).
        let rc = unsafe {
            sepol_compute_av_reason_buffer(
                ssid,
                tsid,
                tclass,
                av,
                &mut avd,
                &mut reason,
                &mut buf,
                0,
            )
        };
        if !buf.is_null() {
            // SAFETY: libsepol allocates the reason buffer with malloc.
            unsafe { libc::free(buf.cast()) };
        }
        if rc != 0 {
            return Err(QueryError::Unknown(format!("{scon} -> {tcon} {class}")));
        }
        verdict.record(perm, avd.allowed & av == av);
    }
    Ok(verdict)
}

fn ask_kernel(scon: &str, tcon: &str, class: &str, perms: &[&str]) -> Result<Verdict, QueryError> {
    let unknown = |what: String| QueryError::Unknown(what);
    let (s, t) = (
        CString::new(scon).map_err(|_| unknown(scon.into()))?,
        CString::new(tcon).map_err(|_| unknown(tcon.into()))?,
    );
    let class_c = CString::new(class).map_err(|_| unknown(class.into()))?;
    // SAFETY: class_c is NUL-terminated.
    let tclass = unsafe { selinux_sys::string_to_security_class(class_c.as_ptr()) };
    if tclass == 0 {
        return Err(unknown(format!("class {class}")));
    }
    let mut verdict = Verdict {
        allowed: Vec::new(),
        denied: Vec::new(),
        source: Source::Kernel,
    };
    for perm in perms {
        let perm_c = CString::new(*perm).map_err(|_| unknown((*perm).into()))?;
        // SAFETY: perm_c is NUL-terminated; tclass is a class the kernel named.
        let av = unsafe { selinux_sys::string_to_av_perm(tclass, perm_c.as_ptr()) };
        if av == 0 {
            return Err(unknown(format!("permission {class} {perm}")));
        }
        // SAFETY: an all-zero av_decision is a valid value of this plain C struct.
        let mut avd: selinux_sys::av_decision = unsafe { std::mem::zeroed() };
        // SAFETY: the contexts are NUL-terminated and avd is a valid out pointer.
        let rc = unsafe {
            selinux_sys::security_compute_av_raw(s.as_ptr(), t.as_ptr(), tclass, av, &mut avd)
        };
        if rc != 0 {
            return Err(unknown(format!(
                "{scon} -> {tcon}: {}",
                std::io::Error::last_os_error()
            )));
        }
        verdict.record(perm, avd.allowed & av == av);
    }
    Ok(verdict)
}

/// Whether SELinux is enabled in this kernel.
pub fn enabled() -> bool {
    // SAFETY: no arguments; reads /sys/fs/selinux state.
    unsafe { selinux_sys::is_selinux_enabled() > 0 }
}

/// May a process labeled `scon` have each of `perms` on an object of `class` labeled
/// `tcon`? The loaded policy answers when SELinux is enabled, else the installed one.
pub fn allows(scon: &str, tcon: &str, class: &str, perms: &[&str]) -> Result<Verdict, QueryError> {
    if enabled() {
        ask_kernel(scon, tcon, class, perms)
    } else {
        ask_sepol(scon, tcon, class, perms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_installed_policy_answers_for_svirt() {
        // Needs the refpolicy (selinux-policy-default): fails, never skips, without it.
        policy_file().expect("an installed binary policy");
        let guest = "system_u:system_r:svirt_t:s0:c1,c2";
        let mine = allows(
            guest,
            "system_u:object_r:svirt_image_t:s0:c1,c2",
            "file",
            &["read", "write"],
        )
        .unwrap();
        assert_eq!(mine.denied, Vec::<String>::new());
        let theirs = allows(
            guest,
            "system_u:object_r:svirt_image_t:s0:c3,c4",
            "file",
            &["read"],
        )
        .unwrap();
        assert_eq!(theirs.denied, ["read"]);
        let content = allows(
            guest,
            "system_u:object_r:virt_content_t:s0",
            "file",
            &["read", "write"],
        )
        .unwrap();
        assert_eq!(
            (content.allowed, content.denied),
            (vec!["read".to_string()], vec!["write".to_string()])
        );
        assert!(matches!(
            allows(guest, "nonsense", "file", &["read"]),
            Err(QueryError::Unknown(_))
        ));
    }
}
