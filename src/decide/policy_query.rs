//! Asking the SELinux policy whether a process label may do something to a file label.
//!
//! With SELinux enabled, the kernel's loaded policy answers (libselinux
//! `security_compute_av_raw`). Without it (these test machines), the installed binary
//! policy is loaded into libsepol and asked offline, as `audit2why` does
//! (`sepol_set_policydb_from_file`, `sepol_context_to_sid`,
//! `sepol_compute_av`): a small FFI to Debian's libsepol2, since no
//! maintained crate wraps it.

use std::collections::HashMap;
use std::ffi::{CString, c_char, c_int, c_uint};
use std::path::PathBuf;
use std::sync::Mutex;

use super::context::{CategorySet, Context};
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
    fn sepol_compute_av(
        ssid: SepolSid,
        tsid: SepolSid,
        tclass: SepolClass,
        requested: SepolAv,
        avd: *mut SepolAvDecision,
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

/// A class and its permissions' access vectors, in the numbering of who answers.
struct ClassBits {
    class: u16,
    perms: Vec<u32>,
}

/// Who answers, held for the life of an [`Asker`].
enum Answerer {
    Kernel,
    /// libsepol's one global policy, locked while asked (held for its drop only).
    Sepol {
        _lock: std::sync::MutexGuard<'static, Option<Result<(), QueryError>>>,
    },
}

/// Asks one policy many questions: each context's SID and each class's numbering are
/// looked up once, and one access computation answers all permissions of a question
/// (`verify` asks about every guest and every distinct label of a host).
pub struct Asker {
    answerer: Answerer,
    sids: HashMap<String, SepolSid>,
    classes: HashMap<(String, Vec<String>), ClassBits>,
    /// Answers by the shape of the question ([`Shape`]).
    answers: HashMap<Shape, Vec<bool>>,
    /// How many questions the policy itself was asked.
    asked: usize,
}

/// How two MLS levels' category sets compare.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Relation {
    Equal,
    Dominates,
    DominatedBy,
    Incomparable,
}

fn relation(a: &CategorySet, b: &CategorySet) -> Relation {
    match (a.contains_all(b), b.contains_all(a)) {
        (true, true) => Relation::Equal,
        (true, false) => Relation::Dominates,
        (false, true) => Relation::DominatedBy,
        (false, false) => Relation::Incomparable,
    }
}

/// All of a question that the policy's answer can depend on. Type enforcement and
/// RBAC see the contexts' user, role and type; levels are seen only by constraints,
/// and the constraint language compares levels only with each other (`l1`, `h1`,
/// `l2`, `h2` by `eq`, `dom`, `domby`, `incomp`). So two questions with the same
/// user:role:type on both sides, the same sensitivities and the same relations between
/// the four levels' category sets get the same answer from any policy: `verify` asks
/// the policy once per shape, not once per guest and label (a million questions on a
/// host of 1,000 guests).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Shape {
    subject: String,
    target: String,
    class: String,
    perms: Vec<String>,
    /// Sensitivities of l1, h1, l2, h2, as written (their order is the policy's).
    sensitivities: [u16; 4],
    /// l1:l2, l1:h2, h1:l2, h1:h2, l1:h1, l2:h2.
    relations: [Relation; 6],
}

impl Shape {
    fn of(scon: &str, tcon: &str, class: &str, perms: &[&str]) -> Option<Shape> {
        let (s, t): (Context, Context) = (scon.parse().ok()?, tcon.parse().ok()?);
        let (sbase, (ls, l1), (hs, h1)) = s.split_level()?;
        let (tbase, (lt, l2), (ht, h2)) = t.split_level()?;
        Some(Shape {
            subject: sbase.to_owned(),
            target: tbase.to_owned(),
            class: class.to_owned(),
            perms: perms.iter().map(|p| (*p).to_owned()).collect(),
            sensitivities: [ls, hs, lt, ht],
            relations: [
                relation(&l1, &l2),
                relation(&l1, &h2),
                relation(&h1, &l2),
                relation(&h1, &h2),
                relation(&l1, &h1),
                relation(&l2, &h2),
            ],
        })
    }
}

impl Asker {
    /// The loaded policy when SELinux is enabled, else the installed one through
    /// libsepol (loaded on first use; other askers wait while this one lives).
    pub fn new() -> Result<Asker, QueryError> {
        let answerer = if enabled() {
            Answerer::Kernel
        } else {
            let mut loaded = SEPOL
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if loaded.is_none() {
                *loaded = Some(load_sepol());
            }
            loaded.as_ref().expect("set above").clone()?;
            Answerer::Sepol { _lock: loaded }
        };
        Ok(Asker {
            answerer,
            sids: HashMap::new(),
            classes: HashMap::new(),
            answers: HashMap::new(),
            asked: 0,
        })
    }

    /// Who answers.
    pub fn source(&self) -> Source {
        match self.answerer {
            Answerer::Kernel => Source::Kernel,
            Answerer::Sepol { .. } => Source::PolicyFile,
        }
    }

    fn class_bits(&mut self, class: &str, perms: &[&str]) -> Result<&ClassBits, QueryError> {
        let key = (
            class.to_owned(),
            perms.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>(),
        );
        if !self.classes.contains_key(&key) {
            let bits = match self.answerer {
                Answerer::Kernel => kernel_class_bits(class, perms)?,
                Answerer::Sepol { .. } => sepol_class_bits(class, perms)?,
            };
            self.classes.insert(key.clone(), bits);
        }
        Ok(&self.classes[&key])
    }

    fn sid(&mut self, context: &str) -> Result<SepolSid, QueryError> {
        if let Some(sid) = self.sids.get(context) {
            return Ok(*sid);
        }
        let sid = sepol_sid(context)?;
        self.sids.insert(context.to_owned(), sid);
        Ok(sid)
    }

    /// Whether the policy knows `context` (its user, role, type and level are valid).
    pub fn knows(&mut self, context: &str) -> bool {
        match self.answerer {
            Answerer::Kernel => CString::new(context).is_ok_and(|c| {
                // SAFETY: c is NUL-terminated.
                unsafe { selinux_sys::security_check_context_raw(c.as_ptr()) == 0 }
            }),
            Answerer::Sepol { .. } => self.sid(context).is_ok(),
        }
    }

    /// How many questions the policy itself answered (the others were the same
    /// [`Shape`] as one it answered).
    pub fn asked(&self) -> usize {
        self.asked
    }

    /// Which of `perms` a process labeled `scon` has on an object of `class` labeled
    /// `tcon`, in the order asked. The policy is asked once per [`Shape`] of question.
    pub fn allowed(
        &mut self,
        scon: &str,
        tcon: &str,
        class: &str,
        perms: &[&str],
    ) -> Result<Vec<bool>, QueryError> {
        let Some(shape) = Shape::of(scon, tcon, class, perms) else {
            return self.ask(scon, tcon, class, perms);
        };
        if let Some(answer) = self.answers.get(&shape) {
            return Ok(answer.clone());
        }
        let answer = self.ask(scon, tcon, class, perms)?;
        self.answers.insert(shape, answer.clone());
        Ok(answer)
    }

    /// Asks the policy itself.
    fn ask(
        &mut self,
        scon: &str,
        tcon: &str,
        class: &str,
        perms: &[&str],
    ) -> Result<Vec<bool>, QueryError> {
        let (tclass, wanted) = {
            let bits = self.class_bits(class, perms)?;
            (bits.class, bits.perms.clone())
        };
        let requested = wanted.iter().fold(0, |all, p| all | p);
        self.asked += 1;
        let allowed = match self.answerer {
            Answerer::Kernel => kernel_allowed(scon, tcon, tclass, requested)?,
            Answerer::Sepol { .. } => {
                let (ssid, tsid) = (self.sid(scon)?, self.sid(tcon)?);
                sepol_allowed(ssid, tsid, tclass, requested)
                    .map_err(|()| QueryError::Unknown(format!("{scon} -> {tcon} {class}")))?
            }
        };
        Ok(wanted.iter().map(|p| allowed & p == *p).collect())
    }

    /// [`Asker::allowed`] as a verdict.
    pub fn verdict(
        &mut self,
        scon: &str,
        tcon: &str,
        class: &str,
        perms: &[&str],
    ) -> Result<Verdict, QueryError> {
        let answers = self.allowed(scon, tcon, class, perms)?;
        let mut verdict = Verdict {
            allowed: Vec::new(),
            denied: Vec::new(),
            source: self.source(),
        };
        for (perm, yes) in perms.iter().zip(answers) {
            verdict.record(perm, yes);
        }
        Ok(verdict)
    }
}

fn sepol_class_bits(class: &str, perms: &[&str]) -> Result<ClassBits, QueryError> {
    let class_c = CString::new(class).map_err(|_| QueryError::Unknown(class.into()))?;
    let mut tclass = 0;
    // SAFETY: class_c is NUL-terminated; tclass is a valid out pointer.
    if unsafe { sepol_string_to_security_class(class_c.as_ptr(), &mut tclass) } != 0 {
        return Err(QueryError::Unknown(format!("class {class}")));
    }
    let mut bits = ClassBits {
        class: tclass,
        perms: Vec::new(),
    };
    for perm in perms {
        let perm_c = CString::new(*perm).map_err(|_| QueryError::Unknown((*perm).into()))?;
        let mut av = 0;
        // SAFETY: perm_c is NUL-terminated; av is a valid out pointer.
        if unsafe { sepol_string_to_av_perm(tclass, perm_c.as_ptr(), &mut av) } != 0 {
            return Err(QueryError::Unknown(format!("permission {class} {perm}")));
        }
        bits.perms.push(av);
    }
    Ok(bits)
}

/// The permissions of `requested` the loaded libsepol policy allows (its lock held).
fn sepol_allowed(
    ssid: SepolSid,
    tsid: SepolSid,
    tclass: SepolClass,
    requested: SepolAv,
) -> Result<SepolAv, ()> {
    let mut avd = SepolAvDecision::default();
    // SAFETY: avd is a valid out pointer.
    let rc = unsafe { sepol_compute_av(ssid, tsid, tclass, requested, &mut avd) };
    match rc {
        0 => Ok(avd.allowed),
        _ => Err(()),
    }
}

fn kernel_class_bits(class: &str, perms: &[&str]) -> Result<ClassBits, QueryError> {
    let class_c = CString::new(class).map_err(|_| QueryError::Unknown(class.into()))?;
    // SAFETY: class_c is NUL-terminated.
    let tclass = unsafe { selinux_sys::string_to_security_class(class_c.as_ptr()) };
    if tclass == 0 {
        return Err(QueryError::Unknown(format!("class {class}")));
    }
    let mut bits = ClassBits {
        class: tclass,
        perms: Vec::new(),
    };
    for perm in perms {
        let perm_c = CString::new(*perm).map_err(|_| QueryError::Unknown((*perm).into()))?;
        // SAFETY: perm_c is NUL-terminated; tclass is a class the kernel named.
        let av = unsafe { selinux_sys::string_to_av_perm(tclass, perm_c.as_ptr()) };
        if av == 0 {
            return Err(QueryError::Unknown(format!("permission {class} {perm}")));
        }
        bits.perms.push(av);
    }
    Ok(bits)
}

/// The permissions of `requested` the kernel's loaded policy allows.
fn kernel_allowed(scon: &str, tcon: &str, tclass: u16, requested: u32) -> Result<u32, QueryError> {
    let unknown = |what: String| QueryError::Unknown(what);
    let (s, t) = (
        CString::new(scon).map_err(|_| unknown(scon.into()))?,
        CString::new(tcon).map_err(|_| unknown(tcon.into()))?,
    );
    // SAFETY: an all-zero av_decision is a valid value of this plain C struct.
    let mut avd: selinux_sys::av_decision = unsafe { std::mem::zeroed() };
    // SAFETY: the contexts are NUL-terminated and avd is a valid out pointer.
    let rc = unsafe {
        selinux_sys::security_compute_av_raw(s.as_ptr(), t.as_ptr(), tclass, requested, &mut avd)
    };
    if rc != 0 {
        return Err(unknown(format!(
            "{scon} -> {tcon}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(avd.allowed)
}

/// Whether SELinux is enabled in this kernel.
pub fn enabled() -> bool {
    // SAFETY: no arguments; reads /sys/fs/selinux state.
    unsafe { selinux_sys::is_selinux_enabled() > 0 }
}

/// May a process labeled `scon` have each of `perms` on an object of `class` labeled
/// `tcon`? The loaded policy answers when SELinux is enabled, else the installed one.
pub fn allows(scon: &str, tcon: &str, class: &str, perms: &[&str]) -> Result<Verdict, QueryError> {
    Asker::new()?.verdict(scon, tcon, class, perms)
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

    #[test]
    fn an_answer_by_shape_is_the_policys_own() {
        // Every subject against every target, asked directly and through the shapes:
        // the same answers (levels that overlap, dominate, range over all categories).
        let levels = [
            "s0",
            "s0:c1,c2",
            "s0:c2,c3",
            "s0:c1,c2,c3",
            "s0:c1",
            "s0-s0:c0.c1023",
            "s0-s0:c1,c2",
            "s0:c7,c9",
        ];
        let subjects = ["system_u:system_r:svirt_t", "system_u:system_r:virtd_t"];
        let targets = [
            "system_u:object_r:svirt_image_t",
            "system_u:object_r:virt_content_t",
            "system_u:object_r:virt_image_t",
            "system_u:object_r:etc_t",
        ];
        let perms = ["read", "write", "open"];
        let mut shaped = Asker::new().unwrap();
        let mut fresh = Vec::new();
        for s in subjects
            .iter()
            .flat_map(|s| levels.map(|l| format!("{s}:{l}")))
        {
            for t in targets
                .iter()
                .flat_map(|t| levels.map(|l| format!("{t}:{l}")))
            {
                for class in ["file", "blk_file"] {
                    let by_shape = shaped.allowed(&s, &t, class, &perms).unwrap();
                    fresh.push(((s.clone(), t.clone(), class), by_shape));
                }
            }
        }
        let asked = shaped.asked();
        drop(shaped);
        let mut direct = Asker::new().unwrap();
        let mut allowed_somewhere = 0;
        for ((s, t, class), by_shape) in fresh.iter() {
            let asked_itself = direct.ask(s, t, class, &perms).unwrap();
            assert_eq!(&asked_itself, by_shape, "{s} -> {t} {class}");
            allowed_somewhere += usize::from(asked_itself.iter().any(|a| *a));
        }
        // The shapes saved asking, and the answers were not all one way.
        assert!(asked < fresh.len() / 2, "{asked} of {}", fresh.len());
        assert!(allowed_somewhere > 0 && allowed_somewhere < fresh.len());
    }
}
