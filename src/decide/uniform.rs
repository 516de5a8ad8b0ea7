//! Deciding, from the file_contexts sources, whether every path below a directory gets
//! the same default label (per file type), so one lookup can stand for all of them.
//!
//! `selabel_lookup` matches a path against thousands of regular expressions; a pool of
//! 100,000 files would pay that 100,000 times. But when every specification that can
//! match some path below the pool matches *all* of them (`/dir(/.*)?`, `/dir/.*`), the
//! answer cannot depend on the name, and it is looked up once per file type. Anything
//! less certain (a spec naming files below the pool, a wildcard in the middle, a path
//! alias) turns the shortcut off: the analysis only ever errs towards looking up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::decide::context::Context;
use crate::decide::policy::{FileKind, PolicyError};

/// The file_contexts files `selabel_open` reads for `base`, and its alias files.
fn sources(base: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let with = |suffix: &str| PathBuf::from(format!("{}{suffix}", base.display()));
    (
        vec![base.to_path_buf(), with(".homedirs"), with(".local")],
        vec![with(".subs"), with(".subs_dist")],
    )
}

/// The literal start of a file_contexts regular expression (escapes resolved) and the
/// rest from the first metacharacter on.
fn literal_prefix(regex: &str) -> (String, &str) {
    let mut lit = String::new();
    let mut chars = regex.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some((_, n)) if !n.is_ascii_alphanumeric() => {
                    lit.push(*n);
                    chars.next();
                }
                _ => return (lit, &regex[i..]),
            },
            '.' | '^' | '$' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' => {
                return (lit, &regex[i..]);
            }
            c => lit.push(c),
        }
    }
    (lit, "")
}

/// Whether `ancestor` is `dir` or a directory above it (component-wise).
fn is_ancestor_or_self(ancestor: &str, dir: &str) -> bool {
    let a = ancestor.trim_end_matches('/');
    dir == a || dir.starts_with(&format!("{a}/")) || a.is_empty()
}

/// How one spec relates to the paths strictly below `dir`.
#[derive(Debug, PartialEq, Eq)]
enum Relation {
    /// It cannot match any of them.
    None,
    /// It matches every one of them.
    All,
    /// It may match some and not others.
    Some,
}

fn relation(regex: &str, dir: &str) -> Relation {
    let (lit, rest) = literal_prefix(regex);
    let below = format!("{dir}/");
    if rest.is_empty() {
        // A literal path: one file.
        return if lit.starts_with(&below) {
            Relation::Some
        } else {
            Relation::None
        };
    }
    let compatible = lit.starts_with(&below) || below.starts_with(&lit);
    if !compatible {
        return Relation::None;
    }
    match rest {
        "(/.*)?" | "/.*" if is_ancestor_or_self(&lit, dir) => Relation::All,
        ".*" if lit.ends_with('/') && below.starts_with(&lit) => Relation::All,
        _ if can_start_with(regex, &below) => Relation::Some,
        _ => Relation::None,
    }
}

/// Whether the (implicitly anchored) `regex` can match some string that starts with
/// `prefix`: run a lazy DFA over the prefix and see whether it dies. A regex this
/// engine cannot read counts as "can" (the safe answer).
fn can_start_with(regex: &str, prefix: &str) -> bool {
    use regex_automata::Anchored;
    use regex_automata::hybrid::dfa::DFA;
    use regex_automata::util::start;
    let Ok(dfa) = DFA::new(&format!("^(?:{regex})$")) else {
        return true;
    };
    let mut cache = dfa.create_cache();
    let Ok(mut state) = dfa.start_state(&mut cache, &start::Config::new().anchored(Anchored::Yes))
    else {
        return true;
    };
    for &b in prefix.as_bytes() {
        state = match dfa.next_state(&mut cache, state, b) {
            Ok(s) => s,
            Err(_) => return true,
        };
        if state.is_dead() {
            return false;
        }
    }
    true
}

/// Whether every spec of `text` that can match a path below `dir` matches all of them.
fn uniform_in(text: &str, dir: &str) -> bool {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .all(|regex| relation(regex, dir) != Relation::Some)
}

/// Whether every path strictly below `dir` gets the same default label for a given file
/// type, according to the file_contexts at `base`. Cached for the process's life.
pub fn uniform_below(base: &Path, dir: &Path) -> bool {
    static CACHE: OnceLock<Mutex<HashMap<(PathBuf, PathBuf), bool>>> = OnceLock::new();
    let key = (base.to_path_buf(), dir.to_path_buf());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().expect("uniform cache").get(&key) {
        return *v;
    }
    let v = analyze(base, dir);
    cache.lock().expect("uniform cache").insert(key, v);
    v
}

/// What one pool remembers about its defaults: whether its specs are uniform, and the
/// default of each file type once looked up. Shared by every clone of the pool's config.
#[derive(Debug, Default)]
pub struct PoolDefaults {
    uniform: OnceLock<bool>,
    by_kind: [OnceLock<Option<Context>>; 3],
}

impl PoolDefaults {
    /// The default label of every path of type `kind` strictly below `dir`, looked up
    /// once (by `lookup`, for any one of them) when [`uniform_below`] holds for the
    /// file_contexts at `base()`; `None` otherwise, and the caller looks each path up.
    pub fn shared(
        &self,
        base: impl FnOnce() -> PathBuf,
        dir: &Path,
        kind: FileKind,
        lookup: impl FnOnce() -> Result<Option<Context>, PolicyError>,
    ) -> Option<Result<Option<Context>, PolicyError>> {
        if !*self.uniform.get_or_init(|| uniform_below(&base(), dir)) {
            return None;
        }
        let slot = &self.by_kind[match kind {
            FileKind::Regular => 0,
            FileKind::Directory => 1,
            FileKind::BlockDevice => 2,
        }];
        if let Some(v) = slot.get() {
            return Some(Ok(v.clone()));
        }
        Some(lookup().map(|v| slot.get_or_init(|| v).clone()))
    }
}

fn analyze(base: &Path, dir: &Path) -> bool {
    let Some(dir) = dir.to_str() else {
        return false;
    };
    let (specs, aliases) = sources(base);
    // A path alias above or below the pool rewrites lookups: do not guess.
    for alias_file in aliases {
        let Ok(text) = std::fs::read_to_string(&alias_file) else {
            continue;
        };
        let touches = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().next())
            .any(|alias| is_ancestor_or_self(alias, dir) || alias.starts_with(&format!("{dir}/")));
        if touches {
            return false;
        }
    }
    let mut read_any = false;
    for file in specs {
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                read_any = true;
                if !uniform_in(&text, dir) {
                    return false;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return false,
        }
    }
    read_any
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGES: &str = "/var/lib/libvirt/images";

    #[test]
    fn literal_prefixes() {
        assert_eq!(
            literal_prefix("/var/lib/libvirt(/.*)?"),
            ("/var/lib/libvirt".into(), "(/.*)?")
        );
        assert_eq!(
            literal_prefix("/etc/rc\\.d/init\\.d/x"),
            ("/etc/rc.d/init.d/x".into(), "")
        );
        assert_eq!(
            literal_prefix("/home/[^/]+/\\.ssh"),
            ("/home/".into(), "[^/]+/\\.ssh")
        );
    }

    #[test]
    fn relations() {
        assert_eq!(
            relation("/var/lib/libvirt/images(/.*)?", IMAGES),
            Relation::All
        );
        assert_eq!(relation("/var/lib/libvirt(/.*)?", IMAGES), Relation::All);
        assert_eq!(relation("/var(/.*)?", IMAGES), Relation::All);
        assert_eq!(
            relation("/var/lib/libvirt/images/.*", IMAGES),
            Relation::All
        );
        assert_eq!(relation("/etc/libvirt/.*/.*", IMAGES), Relation::None);
        assert_eq!(
            relation("/var/lib/libvirt/images/boot\\.iso", IMAGES),
            Relation::Some
        );
        assert_eq!(
            relation("/var/lib/libvirt/[^/]*/foo", IMAGES),
            Relation::Some
        );
        assert_eq!(relation("/var/lib/libvirt/images", IMAGES), Relation::None);
        assert_eq!(
            relation("/var/lib/libvirt/imagesX(/.*)?", IMAGES),
            Relation::None
        );
        assert_eq!(relation("/.*\\.so", IMAGES), Relation::Some);
        assert_eq!(
            relation("/var/lib/libvirt/images.*", IMAGES),
            Relation::Some
        );
        assert_eq!(relation("/var/lib/[xkw]dm(/.*)?", IMAGES), Relation::None);
        assert_eq!(relation("/var/(db|adm)/sudo(/.*)?", IMAGES), Relation::None);
        assert_eq!(
            relation("/var/lib/(misc/)?logrotate\\.status", IMAGES),
            Relation::None
        );
        assert_eq!(
            relation("/var/lib/(libvirt|x)/images/[^/]*\\.iso", IMAGES),
            Relation::Some
        );
    }

    #[test]
    fn one_spec_naming_files_below_turns_the_shortcut_off() {
        let base = "/var/lib/libvirt(/.*)?\tsystem_u:object_r:virt_var_lib_t:s0\n\
                    /var/lib/libvirt/images(/.*)?\tsystem_u:object_r:virt_image_t:s0\n";
        assert!(uniform_in(base, IMAGES));
        let extra = format!(
            "{base}/var/lib/libvirt/images/.*\\.iso\t--\tsystem_u:object_r:virt_content_t:s0\n"
        );
        assert!(!uniform_in(&extra, IMAGES));
    }

    #[test]
    fn the_installed_refpolicy_is_uniform_below_libvirt_images() {
        let base = Path::new("/etc/selinux/default/contexts/files/file_contexts");
        assert!(
            base.exists(),
            "selinux-policy-default is needed (scripts/install-deps)"
        );
        assert!(uniform_below(base, Path::new(IMAGES)));
        assert!(!uniform_below(base, Path::new("/home")));
        assert!(!uniform_below(base, Path::new("/etc")));
    }
}
