//! A qcow2 overlay's backing chain, resolved safely inside its pool.
//!
//! Backing names are written by whoever wrote the image. Each is taken relative to the
//! directory of the image that names it (or, when absolute, must lie in the pool), kept
//! strictly beneath the pool root, opened without following a symlink or crossing a
//! mount (`fsys::open_beneath`), and must be a regular file with one link. A chain that
//! leaves the pool, loops, or is deeper than [`MAX_DEPTH`] is refused, naming the link.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::image::{self, Header};
use crate::decide::labels::FileId;
use crate::fsys::{self, NodeKind, OpenError};

/// How many backing files a chain may have (qemu itself stops at a few hundred; real
/// chains have a handful).
pub const MAX_DEPTH: usize = 16;

/// One backing file of a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Its path relative to the pool root.
    pub rel: PathBuf,
    /// Its format: as the image naming it records, else by its own magic.
    pub format: String,
    /// Which file it is.
    pub file: FileId,
}

/// Why a chain is refused. `link` is the image whose backing name is at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The name leads out of the pool (`../` above its root, or an absolute path elsewhere).
    #[error("{}: backing file {name:?} is outside the pool", .link.display())]
    OutsidePool {
        /// The image naming it.
        link: PathBuf,
        /// The backing name as written.
        name: String,
    },
    /// The name is a protocol (`json:`, `nbd://`, …), not a file.
    #[error("{}: backing file {name:?} names a protocol, not a file", .link.display())]
    Protocol {
        /// The image naming it.
        link: PathBuf,
        /// The backing name as written.
        name: String,
    },
    /// The backing file cannot be used: a symlink, another mount, missing, hard links…
    #[error("{}: backing file {}: {why}", .link.display(), .rel.display())]
    Unusable {
        /// The image naming it.
        link: PathBuf,
        /// Where the name resolved to, below the pool root.
        rel: PathBuf,
        /// What is wrong with it.
        why: Unusable,
    },
    /// The chain comes back to a file already in it.
    #[error("{}: backing file {} makes a loop", .link.display(), .rel.display())]
    Loop {
        /// The image naming it.
        link: PathBuf,
        /// The file met twice.
        rel: PathBuf,
    },
    /// More than [`MAX_DEPTH`] backing files.
    #[error("{}: backing chain deeper than {MAX_DEPTH}", .link.display())]
    TooDeep {
        /// The image whose backing would be one too many.
        link: PathBuf,
    },
    /// An image header that cannot be trusted.
    #[error("{}: {why}", .link.display())]
    Header {
        /// The image.
        link: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// Why a file cannot be part of a chain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// It is, or its path goes through, a symlink.
    #[error("is or goes through a symlink")]
    Symlink,
    /// It cannot be opened beneath the pool (missing, another mount, I/O).
    #[error("{0}")]
    Open(OpenError),
    /// It has other links, which may be outside the pool.
    #[error("has {0} hard links (one may be a file outside the pool)")]
    HardLinks(u64),
    /// A directory, device, FIFO…
    #[error("is not a regular file")]
    NotRegular,
}

/// The path below the pool root that backing `name`, written in the image at `from`
/// (below the root), stands for; lexical, no I/O. `pool` is the root's absolute path.
pub fn resolve(pool: &Path, from: &Path, name: &[u8]) -> Result<PathBuf, ChainError> {
    let shown = String::from_utf8_lossy(name).into_owned();
    let outside = || ChainError::OutsidePool {
        link: from.to_path_buf(),
        name: shown.clone(),
    };
    let path = Path::new(OsStr::from_bytes(name));
    // qemu reads `proto:...` (json:, nbd:, file:, …) before any '/' as a protocol.
    let first = name.split(|b| *b == b'/').next().unwrap_or_default();
    if first.contains(&b':') {
        return Err(ChainError::Protocol {
            link: from.to_path_buf(),
            name: shown,
        });
    }
    let (base, rest) = if path.is_absolute() {
        (
            PathBuf::new(),
            path.strip_prefix(pool).map_err(|_| outside())?,
        )
    } else {
        let dir = from.parent().unwrap_or(Path::new(""));
        (dir.to_path_buf(), path)
    };
    let mut out = base;
    for c in rest.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(outside());
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(outside()),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(outside());
    }
    Ok(out)
}

/// The backing chain of the image at `rel` below the pool root `root` (whose path is
/// `pool`): every backing file, nearest first. Empty for anything but a qcow2 overlay
/// with a backing file.
pub fn backing_chain(
    root: std::os::fd::BorrowedFd<'_>,
    pool: &Path,
    rel: &Path,
    cross_fs: bool,
) -> Result<Vec<Link>, ChainError> {
    let node = open_file(root, rel, cross_fs).map_err(|why| ChainError::Header {
        link: rel.to_path_buf(),
        why: why.to_string(),
    })?;
    opened_chain(root, pool, rel, &node, cross_fs)
}

/// [`backing_chain`] of an image its caller has opened already (`node`, at `rel`).
pub fn opened_chain(
    root: std::os::fd::BorrowedFd<'_>,
    pool: &Path,
    rel: &Path,
    node: &fsys::Node,
    cross_fs: bool,
) -> Result<Vec<Link>, ChainError> {
    let header = read_header(node, rel)?;
    chain_below(root, pool, rel, node.file, header, cross_fs)
}

/// The backing chain below an image already opened (it is `file`) and parsed (`header`),
/// each header read once.
pub fn chain_below(
    root: std::os::fd::BorrowedFd<'_>,
    pool: &Path,
    rel: &Path,
    file: FileId,
    header: Header,
    cross_fs: bool,
) -> Result<Vec<Link>, ChainError> {
    let mut chain: Vec<Link> = Vec::new();
    let mut seen = vec![file];
    let mut at = rel.to_path_buf();
    let mut header = header;
    while let Some(name) = header.backing.take() {
        if chain.len() == MAX_DEPTH {
            return Err(ChainError::TooDeep { link: at });
        }
        let next = resolve(pool, &at, &name)?;
        let next_node = open_file(root, &next, cross_fs).map_err(|why| ChainError::Unusable {
            link: at.clone(),
            rel: next.clone(),
            why,
        })?;
        if seen.contains(&next_node.file) {
            return Err(ChainError::Loop {
                link: at,
                rel: next,
            });
        }
        seen.push(next_node.file);
        let next_header = read_header(&next_node, &next)?;
        // As the overlay records it, else by the backing file's own magic.
        let format = header
            .backing_format
            .take()
            .unwrap_or_else(|| next_header.format.as_str().to_owned());
        chain.push(Link {
            rel: next.clone(),
            format,
            file: next_node.file,
        });
        at = next;
        header = next_header;
    }
    Ok(chain)
}

/// The header of a chain element, or why it cannot be trusted.
fn read_header(node: &fsys::Node, rel: &Path) -> Result<Header, ChainError> {
    let error = |why: String| ChainError::Header {
        link: rel.to_path_buf(),
        why,
    };
    image::read(node.fd.as_fd())
        .map_err(|e| error(e.to_string()))?
        .map_err(|e| error(e.to_string()))
}

/// Opens a chain element: a regular file with one link, beneath the root.
fn open_file(
    root: std::os::fd::BorrowedFd<'_>,
    rel: &Path,
    cross_fs: bool,
) -> Result<fsys::Node, Unusable> {
    let node = fsys::open_beneath(root, rel, cross_fs)
        .map_err(|e| match e {
            OpenError::Symlink => Unusable::Symlink,
            e => Unusable::Open(e),
        })?
        .node;
    match node.kind {
        NodeKind::Regular { links: 1 } => Ok(node),
        NodeKind::Regular { links } => Err(Unusable::HardLinks(links)),
        _ => Err(Unusable::NotRegular),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_beside_the_image_and_never_out_of_the_pool() {
        let pool = Path::new("/pool");
        let ok = |from: &str, name: &str| resolve(pool, Path::new(from), name.as_bytes());
        assert_eq!(
            ok("vm/a.qcow2", "base.qcow2").unwrap(),
            Path::new("vm/base.qcow2")
        );
        assert_eq!(ok("vm/a.qcow2", "../b.img").unwrap(), Path::new("b.img"));
        assert_eq!(
            ok("a.qcow2", "/pool/x/b.img").unwrap(),
            Path::new("x/b.img")
        );
        assert_eq!(ok("a.qcow2", "./b.img").unwrap(), Path::new("b.img"));
        for (from, name) in [
            ("a.qcow2", "../etc/shadow"),
            ("vm/a.qcow2", "../../b.img"),
            ("a.qcow2", "/etc/shadow"),
            ("a.qcow2", "/pool2/b.img"),
            ("a.qcow2", "/pool"),
            ("a.qcow2", "."),
        ] {
            assert!(
                matches!(ok(from, name), Err(ChainError::OutsidePool { .. })),
                "{from} -> {name}: {:?}",
                ok(from, name)
            );
        }
        for name in [
            "json:{\"file.filename\":\"/etc/shadow\"}",
            "nbd://h/x",
            "file:b",
        ] {
            assert!(matches!(
                ok("a.qcow2", name),
                Err(ChainError::Protocol { .. })
            ));
        }
    }
}
