//! Which pool and volume a user's name stands for: a path inside a dir pool, `VG/LV`
//! or `/dev/VG/LV`, or a `base64:` address. The one place a volume name from the CLI,
//! the API or a hook becomes a pool index and a state key (the pool itself comes from
//! [`Settings::locate`], lexically).

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::shown;
use crate::config::{DirPoolId, Located, LvmPoolId, Settings};
use crate::error::{Error, Refusal, Result};
use crate::observe::lvm::{self, LvmError};

/// A volume named by a user, found: its pool and where in it, its key in the state,
/// and how people call it.
pub(super) struct Volume {
    pub(super) at: At,
    /// The path relative to a dir pool's root, or the LV uuid.
    pub(super) key: Vec<u8>,
    /// The path given, or `VG/LV`.
    pub(super) shown: String,
}

/// Where a volume is.
pub(super) enum At {
    /// A file of a dir pool, `rel` below its root.
    File { pool: DirPoolId, rel: PathBuf },
    /// An LV of an lvm pool.
    Lv { pool: LvmPoolId },
}

impl Volume {
    /// Its pool's index (how the reconciler and the state's names address a pool).
    pub(super) fn pool(&self) -> usize {
        match &self.at {
            At::File { pool, .. } => pool.index(),
            At::Lv { pool } => pool.index(),
        }
    }

    /// Its dir pool and path below the root, when it is a file.
    pub(super) fn file(&self) -> Option<(DirPoolId, &Path)> {
        match &self.at {
            At::File { pool, rel } => Some((*pool, rel)),
            At::Lv { .. } => None,
        }
    }
}

/// Whether `path` names a volume of a managed pool: a file inside a dir pool (by its
/// absolute path), or `/dev/VG/LV` of a managed volume group. Asks nothing of lvm2.
pub fn is_managed(settings: &Settings, path: &Path) -> bool {
    if let Some(Located::Lv { .. }) = settings.locate(path) {
        return true;
    }
    normalize_user_path(path, Path::new("/")).is_ok_and(|path| settings.locate(&path).is_some())
}

/// The pool name and state key of a volume named by a user (as attach finds it).
pub fn state_key(settings: &Settings, path: &Path) -> Result<(String, Vec<u8>)> {
    let vol = locate(settings, path)?;
    Ok((settings.pools[vol.pool()].name.clone(), vol.key))
}

/// A volume as a user named it, resolved against the config once: its pool, and the
/// file below the pool's root or the LV of its volume group. Lexical: making one opens
/// nothing and asks nothing of lvm2 ([`name`]); `resolve` then finds an LV's uuid.
#[derive(Clone, Debug)]
pub struct Named {
    target: Target,
    /// The path given (normalized), or `VG/LV`.
    shown: String,
}

#[derive(Clone, Debug)]
enum Target {
    /// A file of a dir pool, below its root.
    File { pool: DirPoolId, rel: PathBuf },
    /// An LV of the volume group of an lvm pool.
    Lv {
        pool: LvmPoolId,
        vg: String,
        lv: String,
    },
}

impl Named {
    /// The name of the pool it is in.
    pub fn pool_name<'s>(&self, settings: &'s Settings) -> &'s str {
        let index = match &self.target {
            Target::File { pool, .. } => pool.index(),
            Target::Lv { pool, .. } => pool.index(),
        };
        &settings.pools[index].name
    }

    /// Whether it names an LV (finding it asks lvm2, which may block).
    pub fn is_lv(&self) -> bool {
        matches!(self.target, Target::Lv { .. })
    }
}

/// Finds the pool of a volume named by a user: an LV of a managed VG (`VG/LV` or
/// `/dev/VG/LV`), or a path inside a dir pool. Refuses `..` and paths outside every
/// pool. A relative path is taken from the working directory (the CLI's).
pub fn name(settings: &Settings, input: &Path) -> Result<Named> {
    if let Some(Located::Lv { pool, vg, lv }) = settings.locate(input) {
        return Ok(Named {
            shown: format!("{vg}/{lv}"),
            target: Target::Lv {
                pool,
                vg: vg.to_owned(),
                lv: lv.to_owned(),
            },
        });
    }
    // The working directory only for a relative path (the API's are absolute).
    let cwd = if input.is_absolute() {
        PathBuf::from("/")
    } else {
        std::env::current_dir().map_err(|e| Error::failed(format!("cwd: {e}")))?
    };
    let path = normalize_user_path(input, &cwd).map_err(Error::refused)?;
    match settings.locate(&path) {
        Some(Located::File { pool, rel }) => Ok(Named {
            target: Target::File {
                pool,
                rel: rel.to_path_buf(),
            },
            shown: shown(&path),
        }),
        _ => Err(Refusal::NotInPool { path: shown(&path) }.into()),
    }
}

/// The volume a [`Named`] stands for, with its key in the state: a file's path below
/// its pool's root, or an LV's uuid (asked of lvm2; an unknown LV is refused).
pub(super) fn resolve(settings: &Settings, named: Named) -> Result<Volume> {
    let Named { target, shown } = named;
    match target {
        Target::File { pool, rel } => Ok(Volume {
            key: rel.as_os_str().as_bytes().to_vec(),
            shown,
            at: At::File { pool, rel },
        }),
        Target::Lv { pool, vg, lv } => {
            let args = &settings.lvm_pool(pool).lvm_args;
            let lvs = lvm::invoke_lvs(&vg, args).map_err(|e| match e {
                LvmError::NoSuchVg(_) => Error::refused(e),
                e => Error::failed(e),
            })?;
            let info = lvs
                .into_iter()
                .find(|l| l.name == lv)
                .ok_or_else(|| Refusal::NoSuchLv {
                    vg: vg.clone(),
                    lv: lv.clone(),
                })?;
            Ok(Volume {
                key: info.uuid.into_bytes(),
                shown,
                at: At::Lv { pool },
            })
        }
    }
}

/// [`name`], then [`resolve`].
pub(super) fn locate(settings: &Settings, input: &Path) -> Result<Volume> {
    resolve(settings, name(settings, input)?)
}

/// Why a volume path given by a user is refused before anything is looked up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserPathError {
    /// The path is empty.
    #[error("the path is empty")]
    Empty,
    /// It has a `..` component (a volume is named by where it is, not by a way there).
    #[error("{}: '..' is not allowed in a volume path", .0.display())]
    DotDot(PathBuf),
}

/// Checks that a volume path given by a user is lexically clean: no `..`, no empty name.
///
/// `.` components and repeated slashes are dropped; the result is absolute
/// (relative input is taken from `cwd`).
pub fn normalize_user_path(input: &Path, cwd: &Path) -> Result<PathBuf, UserPathError> {
    if input.as_os_str().is_empty() {
        return Err(UserPathError::Empty);
    }
    let joined = if input.is_absolute() {
        input.to_path_buf()
    } else {
        cwd.join(input)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => out.push(name),
            Component::ParentDir => return Err(UserPathError::DotDot(input.to_path_buf())),
            Component::Prefix(_) => unreachable!("no path prefixes on Unix"),
        }
    }
    Ok(out)
}

/// The prefix of a volume address that carries the path's bytes in base64.
pub const BASE64_PREFIX: &str = "base64:";

/// How a client addresses a volume path in the API and JSON output: the path itself
/// when it is UTF-8, else `base64:` and its bytes in base64 (an absolute path starts
/// with `/` and a VG name has no `:`, so neither can be mistaken for it).
pub fn volume_address(path: &Path) -> String {
    use base64::Engine;
    use std::os::unix::ffi::OsStrExt;
    match path.to_str() {
        Some(text) => text.to_owned(),
        None => format!(
            "{BASE64_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(path.as_os_str().as_bytes())
        ),
    }
}

/// The path a volume address stands for (see [`volume_address`]).
pub fn volume_from_address(address: &str) -> Result<std::path::PathBuf> {
    use base64::Engine;
    use std::os::unix::ffi::OsStringExt;
    match address.strip_prefix(BASE64_PREFIX) {
        None => Ok(std::path::PathBuf::from(address)),
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map(|bytes| std::path::PathBuf::from(std::ffi::OsString::from_vec(bytes)))
            .map_err(|e| Error::Usage(format!("volume address {address:?}: bad base64: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_paths_are_normalized_and_dotdot_refused() {
        let cwd = Path::new("/var/lib/libvirt/images");
        assert_eq!(
            normalize_user_path(Path::new("a//./b.img"), cwd).unwrap(),
            Path::new("/var/lib/libvirt/images/a/b.img")
        );
        let dotdot = normalize_user_path(Path::new("/pool/../etc/shadow"), cwd).unwrap_err();
        assert_eq!(dotdot, UserPathError::DotDot("/pool/../etc/shadow".into()));
        assert!(dotdot.to_string().contains("'..'"));
        assert_eq!(
            normalize_user_path(Path::new(""), cwd),
            Err(UserPathError::Empty)
        );
    }

    #[test]
    fn volume_addresses_round_trip_any_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let plain = Path::new("/pool/disk.img");
        assert_eq!(volume_address(plain), "/pool/disk.img");
        assert_eq!(volume_from_address("/pool/disk.img").unwrap(), plain);
        let odd = Path::new(std::ffi::OsStr::from_bytes(b"/pool/\xff\xfe-x.img"));
        let address = volume_address(odd);
        assert!(address.starts_with(BASE64_PREFIX), "{address}");
        assert_eq!(volume_from_address(&address).unwrap(), odd);
        assert!(volume_from_address("base64:!!").is_err());
    }
}
