//! The configuration file: TOML read once, validated into [`Settings`].
//!
//! Everything after start-up takes the validated types; every error names the key
//! or the path that is wrong.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::decide::context::{CategorySet, Context};
use crate::decide::labels::GuestContexts;
use crate::decide::policy::{self, FileContexts, FileKind};
use crate::error::{Error, Result};
use crate::fsys;
use crate::observe::lvm;

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
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    agent: RawAgent,
    #[serde(default)]
    libvirt: RawLibvirt,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLibvirt {
    status_dir: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    unwatched_rescan_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApi {
    socket: Option<PathBuf>,
    group: Option<String>,
    read_only_for_all: Option<bool>,
    max_connections: Option<usize>,
    max_connections_per_user: Option<usize>,
    max_guests_per_user: Option<u32>,
    max_request_bytes: Option<usize>,
    idle_timeout_secs: Option<u64>,
    write_timeout_secs: Option<u64>,
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
    vg: Option<String>,
    resting_label: Option<String>,
    cross_filesystems: Option<bool>,
    lvm_args: Option<Vec<String>>,
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
    /// `[api]`: the varlink socket and its limits.
    pub api: ApiSettings,
    /// `[agent] unwatched_rescan_secs`: how often a pool that could not be fully watched
    /// (inotify watch limit reached) is rescanned instead.
    pub unwatched_rescan: std::time::Duration,
    /// `[libvirt] status_dir`: where libvirtd keeps a status XML per running QEMU domain
    /// (`/run/libvirt/qemu`), to tell which hook-managed guests still run.
    pub libvirt_status_dir: PathBuf,
}

/// The `[api]` section.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// The socket's path (when the agent binds it itself).
    pub socket: PathBuf,
    /// Members of this group may change attachments; `None` when no such group exists.
    pub group: Option<(String, u32)>,
    /// Whether everyone else may list pools, volumes and guests.
    pub read_only_for_all: bool,
    /// Connections served at once; more are closed at accept (root's never are).
    pub max_connections: usize,
    /// Connections one user other than root may hold at once.
    pub max_connections_per_user: usize,
    /// Guests one user other than root may define (each holds an MCS pair).
    pub max_guests_per_user: u32,
    /// Largest request accepted, in bytes.
    pub max_request_bytes: usize,
    /// A connection that sends nothing for this long (and streams nothing) is closed.
    pub idle_timeout: std::time::Duration,
    /// A reply that cannot be written within this long closes its connection.
    pub write_timeout: std::time::Duration,
}

/// Where the agent binds its socket unless `[api] socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/svirt-pool/io.svirtpool.sock";

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
    /// The label of volumes no guest holds; `None` for the file_contexts default.
    pub resting_label: Option<Context>,
    /// A directory tree or a volume group.
    pub kind: PoolKind,
    /// Its file_contexts defaults, once known (shared by clones of the settings).
    pub defaults: std::sync::Arc<crate::decide::uniform::PoolDefaults>,
}

/// What a pool is made of.
#[derive(Debug, Clone)]
pub enum PoolKind {
    /// `type = "dir"`: every regular file below a directory.
    Dir(DirPool),
    /// `type = "lvm"`: every LV of a volume group.
    Lvm(LvmPool),
}

/// A directory pool.
#[derive(Debug, Clone)]
pub struct DirPool {
    /// The directory at its root.
    pub path: PathBuf,
    /// Whether mount points below the root are followed (default: not).
    pub cross_filesystems: bool,
}

/// An LVM pool.
#[derive(Debug, Clone)]
pub struct LvmPool {
    /// The volume group.
    pub vg: String,
    /// Extra arguments for every lvm2 command (e.g. `--driverloaded n`).
    pub lvm_args: Vec<String>,
}

/// Which pool a volume named by a path is in, and its name there: the one answer to
/// "which pool is this?" for the CLI, the API, the hook and the picker. Lexical only: it
/// opens nothing and asks nothing of lvm2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located<'a> {
    /// A file of dir pool `pool`, `rel` below its root.
    File {
        /// The pool's index.
        pool: usize,
        /// The path below the pool root.
        rel: &'a Path,
    },
    /// LV `lv` of the volume group of lvm pool `pool`.
    Lv {
        /// The pool's index.
        pool: usize,
        /// The volume group.
        vg: &'a str,
        /// The LV's name.
        lv: &'a str,
    },
}

impl Located<'_> {
    /// The pool's index.
    pub fn pool(&self) -> usize {
        match self {
            Located::File { pool, .. } | Located::Lv { pool, .. } => *pool,
        }
    }
}

impl DirPool {
    /// The path relative to this pool's root, if `path` (lexically normal) lies strictly inside it.
    pub fn relative<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        path.strip_prefix(&self.path)
            .ok()
            .filter(|rel| !rel.as_os_str().is_empty())
    }
}

impl Pool {
    /// The directory pool, if it is one.
    pub fn dir(&self) -> Option<&DirPool> {
        match &self.kind {
            PoolKind::Dir(d) => Some(d),
            PoolKind::Lvm(_) => None,
        }
    }

    /// The LVM pool, if it is one.
    pub fn lvm(&self) -> Option<&LvmPool> {
        match &self.kind {
            PoolKind::Lvm(l) => Some(l),
            PoolKind::Dir(_) => None,
        }
    }

    /// `dir` or `lvm`.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            PoolKind::Dir(_) => "dir",
            PoolKind::Lvm(_) => "lvm",
        }
    }

    /// The full path of an entry a scan reported: below a dir pool's root, or an LV
    /// node's own path.
    pub fn entry_path(&self, entry: &Path) -> PathBuf {
        match &self.kind {
            PoolKind::Dir(d) if entry.as_os_str().is_empty() => d.path.clone(),
            PoolKind::Dir(d) => d.path.join(entry),
            PoolKind::Lvm(_) => entry.to_path_buf(),
        }
    }

    /// Where it is, for people: the directory, or `VG vg0`.
    pub fn location(&self) -> String {
        match &self.kind {
            PoolKind::Dir(d) => d.path.display().to_string(),
            PoolKind::Lvm(l) => format!("VG {}", l.vg),
        }
    }
}

/// How much of the configuration is checked against the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checks {
    /// Everything: paths exist, file_contexts loads and has defaults (commands, agent).
    Full,
    /// Syntax and values only (the udev hook, which must finish in milliseconds).
    Syntax,
}

impl Settings {
    /// Reads and fully validates the file at `path`.
    pub fn load(path: &Path) -> Result<Settings> {
        Self::load_with(path, Checks::Full)
    }

    /// Reads and validates the file at `path` with the given checks.
    pub fn load_with(path: &Path, checks: Checks) -> Result<Settings> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read config {}: {e}", path.display())))?;
        Self::parse_with(&text, path, checks)
    }

    /// Fully validates `text`, which came from `source`.
    pub fn parse(text: &str, source: &Path) -> Result<Settings> {
        Self::parse_with(text, source, Checks::Full)
    }

    /// Validates `text`, which came from `source`, with the given checks.
    pub fn parse_with(text: &str, source: &Path, checks: Checks) -> Result<Settings> {
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
        let file_contexts = match checks {
            Checks::Full => Some(
                FileContexts::open(selinux.file_contexts.as_deref())
                    .map_err(|e| err(format!("selinux.file_contexts: {e}")))?,
            ),
            Checks::Syntax => None,
        };
        let mut pools: Vec<Pool> = Vec::new();
        for (i, raw_pool) in raw.pools.into_iter().enumerate() {
            let pool = validate_pool(raw_pool, file_contexts.as_ref())
                .map_err(|e| err(format!("pool[{i}]: {e}")))?;
            for other in &pools {
                check_distinct(other, &pool).map_err(|e| err(format!("pool[{i}]: {e}")))?;
            }
            pools.push(pool);
        }
        if pools.is_empty() {
            return Err(err("no [[pool]] is configured".into()));
        }
        check_state_dir_outside_pools(&state_dir, &pools).map_err(err)?;
        if checks == Checks::Full {
            check_no_overlap_through_mounts(&state_dir, &pools).map_err(err)?;
        }
        let api = validate_api(raw.api).map_err(err)?;
        let unwatched_rescan = match raw.agent.unwatched_rescan_secs {
            Some(0) => {
                return Err(err(
                    "agent.unwatched_rescan_secs must be greater than 0".into()
                ));
            }
            Some(s) => std::time::Duration::from_secs(s),
            None => std::time::Duration::from_secs(30),
        };
        let libvirt_status_dir = raw
            .libvirt
            .status_dir
            .unwrap_or_else(|| PathBuf::from("/run/libvirt/qemu"));
        if !libvirt_status_dir.is_absolute() {
            return Err(err(format!(
                "libvirt.status_dir: {} is not an absolute path",
                libvirt_status_dir.display()
            )));
        }
        Ok(Settings {
            unwatched_rescan,
            libvirt_status_dir,
            source: source.to_path_buf(),
            state_dir,
            selinux,
            pools,
            api,
        })
    }

    /// Where `path` is: `VG/LV` or `/dev/VG/LV` of a managed volume group, or an absolute,
    /// lexically normal path strictly inside a dir pool. `None`: in no pool.
    pub fn locate<'a>(&self, path: &'a Path) -> Option<Located<'a>> {
        if let Some(text) = path.to_str() {
            let name = text.strip_prefix("/dev/").unwrap_or(text);
            if let Some((vg, lv)) = name.split_once('/')
                && let Some(pool) = self.lvm_pool_of(vg)
                && lvm::is_valid_name(lv)
            {
                return Some(Located::Lv { pool, vg, lv });
            }
        }
        self.pools.iter().enumerate().find_map(|(pool, p)| {
            let rel = p.dir()?.relative(path)?;
            Some(Located::File { pool, rel })
        })
    }

    /// The index of the LVM pool of volume group `vg`.
    pub fn lvm_pool_of(&self, vg: &str) -> Option<usize> {
        self.pools
            .iter()
            .position(|p| p.lvm().is_some_and(|l| l.vg == vg))
    }
}

fn validate_api(raw: RawApi) -> Result<ApiSettings, String> {
    let socket = raw.socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    if !socket.is_absolute() {
        return Err(format!(
            "api.socket: {} is not an absolute path",
            socket.display()
        ));
    }
    let group_name = raw.group.unwrap_or_else(|| "libvirt".into());
    // A missing group is not an error: the host may not run libvirt yet. Only root
    // (and, with read_only_for_all, readers) is served then.
    let group = crate::users::group_gid(&group_name).map(|gid| (group_name, gid));
    // Counts and sizes fit a usize on every target this runs on (64-bit Linux).
    let as_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let positive = |key: &str, v: Option<u64>, default: u64| match v {
        Some(0) => Err(format!("api.{key} must be greater than 0")),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    Ok(ApiSettings {
        socket,
        group,
        read_only_for_all: raw.read_only_for_all.unwrap_or(false),
        max_connections: as_usize(positive(
            "max_connections",
            raw.max_connections.map(|v| v as u64),
            256,
        )?),
        max_connections_per_user: as_usize(positive(
            "max_connections_per_user",
            raw.max_connections_per_user.map(|v| v as u64),
            16,
        )?),
        max_guests_per_user: u32::try_from(positive(
            "max_guests_per_user",
            raw.max_guests_per_user.map(u64::from),
            64,
        )?)
        .unwrap_or(u32::MAX),
        max_request_bytes: as_usize(positive(
            "max_request_bytes",
            raw.max_request_bytes.map(|v| v as u64),
            1 << 20,
        )?),
        idle_timeout: std::time::Duration::from_secs(positive(
            "idle_timeout_secs",
            raw.idle_timeout_secs,
            60,
        )?),
        write_timeout: std::time::Duration::from_secs(positive(
            "write_timeout_secs",
            raw.write_timeout_secs,
            10,
        )?),
    })
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

fn validate_pool(raw: RawPool, file_contexts: Option<&FileContexts>) -> Result<Pool, String> {
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
    let only = |key: &str, set: bool, kind: &str| {
        if set {
            Err(format!(
                "pool {name:?}: {key} is not a key of type {kind:?} pools"
            ))
        } else {
            Ok(())
        }
    };
    let kind = match raw.kind.as_str() {
        "dir" => {
            only("vg", raw.vg.is_some(), "dir")?;
            only("lvm_args", raw.lvm_args.is_some(), "dir")?;
            let path = raw
                .path
                .ok_or_else(|| format!("pool {name:?}: path is required for type \"dir\""))?;
            if file_contexts.is_some() {
                check_pool_path(&path)
                    .map_err(|e| format!("pool {name:?}: path {}: {e}", path.display()))?;
            } else if !path.is_absolute() {
                return Err(format!(
                    "pool {name:?}: path {} is not absolute",
                    path.display()
                ));
            }
            PoolKind::Dir(DirPool {
                path,
                cross_filesystems: raw.cross_filesystems.unwrap_or(false),
            })
        }
        "lvm" => {
            only("path", raw.path.is_some(), "lvm")?;
            only("cross_filesystems", raw.cross_filesystems.is_some(), "lvm")?;
            let vg = raw
                .vg
                .ok_or_else(|| format!("pool {name:?}: vg is required for type \"lvm\""))?;
            if !lvm::is_valid_name(&vg) {
                return Err(format!(
                    "pool {name:?}: vg {vg:?} is not a volume group name"
                ));
            }
            PoolKind::Lvm(LvmPool {
                vg,
                lvm_args: raw.lvm_args.unwrap_or_default(),
            })
        }
        other => {
            return Err(format!(
                "pool {name:?}: type {other:?} is not supported (expected \"dir\" or \"lvm\")"
            ));
        }
    };
    let resting_label = match raw.resting_label {
        Some(v) => Some(parse_context(&format!("pool {name:?}: resting_label"), &v)?),
        None => {
            if let Some(fc) = file_contexts {
                check_default_exists(&name, &kind, fc)?;
            }
            None
        }
    };
    Ok(Pool {
        name,
        resting_label,
        kind,
        defaults: Default::default(),
    })
}

/// Without a resting_label, file_contexts must give the pool's volumes a default.
fn check_default_exists(name: &str, kind: &PoolKind, fc: &FileContexts) -> Result<(), String> {
    let probes: Vec<(&str, PathBuf, FileKind)> = match kind {
        PoolKind::Dir(d) => vec![
            ("the directory", d.path.clone(), FileKind::Directory),
            ("a file in it", d.path.join("volume.img"), FileKind::Regular),
        ],
        PoolKind::Lvm(_) => vec![(
            "an LV node",
            PathBuf::from("/dev/dm-0"),
            FileKind::BlockDevice,
        )],
    };
    for (what, path, file_kind) in probes {
        if fc.lookup(&path, file_kind)?.is_none() {
            return Err(format!(
                "pool {name:?}: no resting_label is set and file_contexts has no default for {what} ({})",
                path.display()
            ));
        }
    }
    Ok(())
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

/// The state database must not be a pool volume: members could then open it.
fn check_state_dir_outside_pools(state_dir: &Path, pools: &[Pool]) -> Result<(), String> {
    for pool in pools {
        if let Some(dir) = pool.dir()
            && state_dir.starts_with(&dir.path)
        {
            return Err(format!(
                "state_dir {} is inside pool {:?} ({}): keep the state out of every pool",
                state_dir.display(),
                pool.name,
                dir.path.display()
            ));
        }
    }
    Ok(())
}

/// A directory's (device, inode) followed by its ancestors'.
type Ancestry = Vec<(u64, u64)>;

/// (device, inode) of a directory and of each of its ancestors up to `/`, found by
/// opening `..` from the directory itself: a bind mount shows the directory it mounts.
fn ancestry(path: &Path) -> Ancestry {
    use rustix::fs::{Mode, OFlags};
    let mut ids = Vec::new();
    let open = |at: &dyn std::os::fd::AsFd, name: &Path| {
        rustix::fs::openat(
            at.as_fd(),
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let Ok(mut fd) = open(&rustix::fs::CWD, path) else {
        return ids;
    };
    while let Ok(st) = rustix::fs::fstat(&fd) {
        let id = (st.st_dev, st.st_ino);
        if ids.last() == Some(&id) || ids.len() > 4096 {
            break; // `/` is its own parent
        }
        ids.push(id);
        match open(&fd, Path::new("..")) {
            Ok(parent) => fd = parent,
            Err(_) => break,
        }
    }
    ids
}

/// The nearest directory of `path` that exists (the state directory may not yet).
fn existing_dir(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.is_dir())
        .unwrap_or(Path::new("/"))
}

/// Pools that overlap through a bind mount (two paths, one directory tree), and a state
/// directory inside a pool reached that way, are refused like lexical overlaps.
fn check_no_overlap_through_mounts(state_dir: &Path, pools: &[Pool]) -> Result<(), String> {
    let dirs: Vec<(&Pool, &Path, Ancestry)> = pools
        .iter()
        .filter_map(|p| Some((p, p.dir()?.path.as_path())))
        .map(|(p, path)| (p, path, ancestry(path)))
        .collect();
    for (i, (a, a_path, a_chain)) in dirs.iter().enumerate() {
        let Some(a_root) = a_chain.first() else {
            continue;
        };
        for (b, b_path, b_chain) in &dirs[i + 1..] {
            let Some(b_root) = b_chain.first() else {
                continue;
            };
            if b_chain.contains(a_root) || a_chain.contains(b_root) {
                return Err(format!(
                    "pool {:?} ({}) overlaps pool {:?} ({}) through a mount: both reach the same directory tree",
                    b.name,
                    b_path.display(),
                    a.name,
                    a_path.display()
                ));
            }
        }
        if ancestry(existing_dir(state_dir)).contains(a_root) {
            return Err(format!(
                "state_dir {} is inside pool {:?} ({}) through a mount: keep the state out of every pool",
                state_dir.display(),
                a.name,
                a_path.display()
            ));
        }
    }
    Ok(())
}

fn check_distinct(a: &Pool, b: &Pool) -> Result<(), String> {
    if a.name == b.name {
        return Err(format!("pool name {:?} is used twice", b.name));
    }
    let overlap = match (&a.kind, &b.kind) {
        (PoolKind::Dir(x), PoolKind::Dir(y)) => {
            x.path.starts_with(&y.path) || y.path.starts_with(&x.path)
        }
        (PoolKind::Lvm(x), PoolKind::Lvm(y)) => x.vg == y.vg,
        _ => false,
    };
    if overlap {
        return Err(format!(
            "pool {:?} ({}) overlaps pool {:?} ({})",
            b.name,
            b.location(),
            a.name,
            a.location()
        ));
    }
    Ok(())
}
