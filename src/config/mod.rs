//! The configuration file: TOML read once, validated into [`Settings`].
//!
//! Everything after start-up takes the validated types; every error names the key
//! or the path that is wrong. `raw` is the file as serde reads it, `validate` turns it
//! into [`Settings`] (pure, unit-tested in `tests`), `probe` asks the system what the
//! full checks need (paths, mounts, file_contexts defaults).

use std::path::{Path, PathBuf};

use crate::decide::context::{CategorySet, Context};
use crate::decide::labels::GuestContexts;
use crate::error::{Error, Result};
use crate::observe::lvm;

/// One thing wrong with the configuration. Its message names the key (and the pool)
/// that is wrong; validation puts the file's path in front and makes it an
/// [`Error::Config`] (exit status 2, `InvalidArgument` through the API).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Invalid(String);

/// An [`Invalid`] from a format string.
macro_rules! invalid {
    ($($arg:tt)*) => {
        $crate::config::Invalid(format!($($arg)*))
    };
}

mod probe;
mod raw;
#[cfg(test)]
mod tests;
mod validate;

/// Where the configuration is read from when neither `--config` nor
/// `$SVIRT_POOL_CONFIG` names a file.
pub const DEFAULT_PATH: &str = "/etc/svirt-pool/svirt-pool.toml";

/// The config file to read: `given` (`--config`), else `$SVIRT_POOL_CONFIG` (the udev
/// rule may set it for the hook), else [`DEFAULT_PATH`].
pub fn resolve_path(given: Option<PathBuf>) -> PathBuf {
    given
        .or_else(|| std::env::var_os("SVIRT_POOL_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
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
    /// `[libvirt] qemu_user`: the user QEMU runs as, for `check-path`; `None`: as
    /// libvirt's qemu.conf says (`user`), else `libvirt-qemu`.
    pub qemu_user: Option<String>,
    /// `[cluster]`: the etcd cluster hosts that share storage keep guests, pairs and
    /// the holders of shared pools in; `None`: this host alone, on its SQLite state.
    pub cluster: Option<ClusterSettings>,
}

/// The `[cluster]` section: how to reach etcd, and what this host is called there.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// etcd's client URLs (`http://HOST:PORT`, or `https://` with [`ClusterSettings::tls`]).
    pub endpoints: Vec<String>,
    /// This host's name in the cluster (default: its hostname).
    pub host: String,
    /// The key prefix every key of this cluster starts with (`/svirt-pool`).
    pub prefix: String,
    /// How long one call to etcd may take, connecting included.
    pub timeout: std::time::Duration,
    /// TLS: the CA that signed etcd's certificates, and this host's client certificate
    /// and key (all three, or none).
    pub tls: Option<ClusterTls>,
}

/// The files of `[cluster]` TLS.
#[derive(Debug, Clone)]
pub struct ClusterTls {
    /// `ca`: PEM certificate(s) of the CA etcd's server certificates are signed by.
    pub ca: PathBuf,
    /// `cert`: this host's PEM client certificate.
    pub cert: PathBuf,
    /// `key`: its PEM private key.
    pub key: PathBuf,
}

/// The `[api]` section.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// The socket's path (when the agent binds it itself).
    pub socket: PathBuf,
    /// Members of this group may change attachments; `None` when no such group exists
    /// (or the settings were loaded with `Checks::Syntax`, which does not look it up).
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
    /// A call (other than `Import`, bounded by its progress) that has not finished
    /// within this long is answered `Failed`; its thread counts against its user's
    /// limit until it returns.
    pub call_timeout: std::time::Duration,
    /// Volumes one user other than root may own at the root of a dir pool (what
    /// `CreateVolume` and `Import` make).
    pub max_volumes_per_user: u64,
    /// Bytes (their sizes added) those volumes may have together.
    pub max_volume_bytes_per_user: u64,
    /// Percent of a pool filesystem's blocks and inodes that users other than root
    /// may not fill through the API.
    pub reserve_percent: u8,
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
    /// `shared = true`: every host of the cluster sees it at the same place (a dir pool
    /// on a cluster filesystem, a volume group on a SAN); its holders are kept in etcd.
    pub shared: bool,
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

/// A dir pool of the settings that made it: only [`Settings`] makes one (by lookup),
/// so it always names a dir pool of those settings, and no caller checks the kind again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DirPoolId(usize);

/// An lvm pool of the settings that made it (see [`DirPoolId`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LvmPoolId(usize);

impl DirPoolId {
    /// Its index in `Settings::pools`.
    pub fn index(self) -> usize {
        self.0
    }
}

impl LvmPoolId {
    /// Its index in `Settings::pools`.
    pub fn index(self) -> usize {
        self.0
    }
}

/// Which pool a volume named by a path is in, and its name there: the one answer to
/// "which pool is this?" for the CLI, the API, the hook and the picker. Lexical only: it
/// opens nothing and asks nothing of lvm2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located<'a> {
    /// A file of dir pool `pool`, `rel` below its root.
    File {
        /// The pool.
        pool: DirPoolId,
        /// The path below the pool root.
        rel: &'a Path,
    },
    /// LV `lv` of the volume group of lvm pool `pool`.
    Lv {
        /// The pool.
        pool: LvmPoolId,
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
            Located::File { pool, .. } => pool.index(),
            Located::Lv { pool, .. } => pool.index(),
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
        validate::settings(text, source, checks)
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
            Some(Located::File {
                pool: DirPoolId(pool),
                rel,
            })
        })
    }

    /// The LVM pool of volume group `vg`.
    pub fn lvm_pool_of(&self, vg: &str) -> Option<LvmPoolId> {
        self.pools
            .iter()
            .position(|p| p.lvm().is_some_and(|l| l.vg == vg))
            .map(LvmPoolId)
    }

    /// Pool `index` as a dir pool, if it is one.
    pub fn dir_pool_id(&self, index: usize) -> Option<DirPoolId> {
        self.pools.get(index)?.dir().map(|_| DirPoolId(index))
    }

    /// The dir pool `id` names.
    pub fn dir_pool(&self, id: DirPoolId) -> &DirPool {
        // Settings never change after validation, and ids are made only from them.
        self.pools[id.0]
            .dir()
            .expect("a DirPoolId names a dir pool")
    }

    /// The lvm pool `id` names.
    pub fn lvm_pool(&self, id: LvmPoolId) -> &LvmPool {
        self.pools[id.0]
            .lvm()
            .expect("an LvmPoolId names an lvm pool")
    }
}
