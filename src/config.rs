//! The configuration file: TOML read once, validated into [`Settings`].
//!
//! Everything after start-up takes the validated types; every error names the key
//! or the path that is wrong.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::context::{CategorySet, Context};
use crate::error::{Error, Result};
use crate::fsys;
use crate::labels::GuestContexts;
use crate::policy::{self, FileContexts, FileKind};

/// Where the configuration is read from when neither `--config` nor
/// `$SVIRT_POOL_CONFIG` names a file.
pub const DEFAULT_PATH: &str = "/etc/svirt-pool/svirt-pool.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<PathBuf>,
    #[serde(default)]
    selinux: RawSelinux,
    #[serde(default, rename = "pool")]
    pools: Vec<RawPool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSelinux {
    file_contexts: Option<PathBuf>,
    image_label: Option<String>,
    content_label: Option<String>,
    process_label: Option<String>,
    categories: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
    resting_label: Option<String>,
    #[serde(default)]
    cross_filesystems: bool,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file it was read from.
    pub source: PathBuf,
    /// Folder of the state database and the lock file.
    pub state_dir: PathBuf,
    /// `[selinux]`: file_contexts, guest contexts, categories.
    pub selinux: SelinuxSettings,
    /// `[[pool]]` entries, in file order.
    pub pools: Vec<Pool>,
}

/// The `[selinux]` section after defaults were filled in from the policy.
#[derive(Debug, Clone)]
pub struct SelinuxSettings {
    /// file_contexts to look defaults up in; `None` for the policy's own.
    pub file_contexts: Option<PathBuf>,
    /// Image, content and process contexts.
    pub contexts: GuestContexts,
    /// Categories guests' pairs are drawn from.
    pub categories: CategorySet,
}

/// One managed pool.
#[derive(Debug, Clone)]
pub struct Pool {
    /// Its name, unique in the config.
    pub name: String,
    /// The directory at its root.
    pub path: PathBuf,
    /// The label of volumes no guest holds; `None` for the file_contexts default.
    pub resting_label: Option<Context>,
    /// Whether mount points below the root are followed (default: not).
    pub cross_filesystems: bool,
}

impl Pool {
    /// The path relative to this pool's root, if `path` (lexically normal) lies strictly inside it.
    pub fn relative<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        path.strip_prefix(&self.path)
            .ok()
            .filter(|rel| !rel.as_os_str().is_empty())
    }
}

impl Settings {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read config {}: {e}", path.display())))?;
        Self::parse(&text, path)
    }

    /// Validates `text`, which came from `source`.
    pub fn parse(text: &str, source: &Path) -> Result<Settings> {
        let err = |msg: String| Error::Config(format!("{}: {msg}", source.display()));
        let raw: RawConfig = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let selinux = validate_selinux(raw.selinux).map_err(err)?;
        let state_dir = raw
            .state_dir
            .unwrap_or_else(|| PathBuf::from("/var/lib/svirt-pool"));
        if !state_dir.is_absolute() {
            return Err(err(format!(
                "state_dir: {} is not an absolute path",
                state_dir.display()
            )));
        }
        let file_contexts = FileContexts::open(selinux.file_contexts.as_deref())
            .map_err(|e| err(format!("selinux.file_contexts: {e}")))?;
        let mut pools: Vec<Pool> = Vec::new();
        for (i, raw_pool) in raw.pools.into_iter().enumerate() {
            let pool = validate_pool(raw_pool, &file_contexts)
                .map_err(|e| err(format!("pool[{i}]: {e}")))?;
            for other in &pools {
                check_distinct(other, &pool).map_err(|e| err(format!("pool[{i}]: {e}")))?;
            }
            pools.push(pool);
        }
        if pools.is_empty() {
            return Err(err("no [[pool]] is configured".into()));
        }
        Ok(Settings {
            source: source.to_path_buf(),
            state_dir,
            selinux,
            pools,
        })
    }

    /// The pool named `name`.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The pool that contains `path` (absolute, lexically normal) and the path inside it.
    pub fn locate<'a>(&self, path: &'a Path) -> Option<(&Pool, &'a Path)> {
        self.pools
            .iter()
            .find_map(|p| p.relative(path).map(|rel| (p, rel)))
    }
}

fn parse_context(key: &str, value: &str) -> Result<Context, String> {
    value.parse().map_err(|e| format!("{key}: {e}"))
}

fn validate_selinux(raw: RawSelinux) -> Result<SelinuxSettings, String> {
    let context = |key: &str, value: Option<String>, file: &str, line: usize| match value {
        Some(v) => parse_context(&format!("selinux.{key}"), &v),
        None => policy::installed_context(file, line)
            .map_err(|e| format!("selinux.{key} is not set and the policy gives no default: {e}")),
    };
    let contexts = GuestContexts {
        image: context("image_label", raw.image_label, "virtual_image_context", 0)?,
        content: context(
            "content_label",
            raw.content_label,
            "virtual_image_context",
            1,
        )?,
        process: context(
            "process_label",
            raw.process_label,
            "virtual_domain_context",
            0,
        )?,
    };
    let categories = match raw.categories {
        Some(c) => CategorySet::parse(&c).map_err(|e| format!("selinux.categories: {e}"))?,
        None => policy::default_categories(),
    };
    if categories.len() < 2 {
        return Err("selinux.categories: at least two categories are needed to form a pair".into());
    }
    if let Some(fc) = &raw.file_contexts
        && !fc.is_file()
    {
        return Err(format!(
            "selinux.file_contexts: {} is not a readable file",
            fc.display()
        ));
    }
    Ok(SelinuxSettings {
        file_contexts: raw.file_contexts,
        contexts,
        categories,
    })
}

fn validate_pool(raw: RawPool, file_contexts: &FileContexts) -> Result<Pool, String> {
    let name = raw.name;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!(
            "name {name:?} must be letters, digits, '-', '_' or '.'"
        ));
    }
    if raw.kind != "dir" {
        return Err(format!(
            "pool {name:?}: type {:?} is not supported (expected \"dir\")",
            raw.kind
        ));
    }
    let path = raw
        .path
        .ok_or_else(|| format!("pool {name:?}: path is required for type \"dir\""))?;
    check_pool_path(&path).map_err(|e| format!("pool {name:?}: path {}: {e}", path.display()))?;
    let resting_label = match raw.resting_label {
        Some(v) => Some(parse_context(&format!("pool {name:?}: resting_label"), &v)?),
        None => {
            let probe = path.join("volume.img");
            for (what, p, kind) in [
                ("the directory", &path, FileKind::Directory),
                ("a file in it", &probe, FileKind::Regular),
            ] {
                if file_contexts.lookup(p, kind)?.is_none() {
                    return Err(format!(
                        "pool {name:?}: no resting_label is set and file_contexts has no default for {what} ({})",
                        p.display()
                    ));
                }
            }
            None
        }
    };
    Ok(Pool {
        name,
        path,
        resting_label,
        cross_filesystems: raw.cross_filesystems,
    })
}

/// A pool path must be absolute, normal (no `.` or `..`), and an existing directory
/// reached without any symlink.
fn check_pool_path(path: &Path) -> Result<(), String> {
    if !path.is_absolute() {
        return Err("is not absolute".into());
    }
    if path
        .components()
        .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
    {
        return Err("must not contain '.' or '..'".into());
    }
    if path.parent().is_none() {
        return Err("the root directory cannot be a pool".into());
    }
    fsys::open_pool_root(path).map(drop)
}

fn check_distinct(a: &Pool, b: &Pool) -> Result<(), String> {
    if a.name == b.name {
        return Err(format!("pool name {:?} is used twice", b.name));
    }
    if a.path.starts_with(&b.path) || b.path.starts_with(&a.path) {
        return Err(format!(
            "pool {:?} ({}) overlaps pool {:?} ({})",
            b.name,
            b.path.display(),
            a.name,
            a.path.display()
        ));
    }
    Ok(())
}
