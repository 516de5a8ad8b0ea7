//! A dir pool's side of a page: the walk in name order from a cursor, and what a
//! storage dialog shows of each file (read through the descriptor the page opened).

use std::ffi::OsStr;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use crate::config::DirPool;
use crate::error::{Error, Result};
use crate::fsys::{self, NodeKind, OpenError};
use crate::model::{BackingFile, Volume};
use crate::observe::chain;
use crate::observe::image::{self, Format};
use crate::ops::locate::volume_address;

use super::recent;

/// Length, blocks, format, virtual size and backing chain of a dir-pool file, read
/// through a descriptor opened beneath the pool root (a FIFO or device planted in a
/// pool is opened `O_PATH` and never read).
pub(super) fn file_facts(
    dir: &DirPool,
    root: BorrowedFd<'_>,
    rel: &Path,
    node: &fsys::Node,
    v: &mut Volume,
) {
    if !matches!(node.kind, NodeKind::Regular { .. }) {
        return;
    }
    v.size = Some(node.size);
    v.allocation = Some(node.allocated);
    let size = node.size;
    let header = match image::read(node.fd.as_fd()) {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            // Only a qcow2 header can be refused: the magic said qcow2.
            v.format = Some(Format::Qcow2.as_str().into());
            v.note.get_or_insert_with(|| e.to_string());
            return;
        }
        Err(_) => return,
    };
    v.format = Some(header.format.as_str().to_owned());
    v.capacity = Some(header.capacity.unwrap_or(size));
    if header.backing.is_some() {
        // The overlay is open and parsed already: only its backing files are read.
        match chain::chain_below(
            root,
            &dir.path,
            rel,
            node.file,
            header,
            dir.cross_filesystems,
        ) {
            Ok(links) => {
                v.backing = links
                    .into_iter()
                    .map(|l| BackingFile {
                        path: volume_address(&dir.path.join(&l.rel)),
                        format: l.format,
                    })
                    .collect();
            }
            Err(e) => {
                v.note
                    .get_or_insert_with(|| format!("backing chain refused: {e}"));
            }
        }
    }
}

/// What [`sorted_walk`] calls for each non-directory entry: its path below the pool
/// root, the directory holding it, its name there and its directory-entry type.
pub(super) type VisitVolume<'v> =
    dyn FnMut(&Path, BorrowedFd<'_>, &OsStr, FileType) -> Result<ControlFlow<()>> + 'v;

/// Visits, in name order, every non-directory entry below `dir_rel` that comes after
/// `cursor` (the components of a path below the pool root), until `visit` breaks.
/// Directories on another filesystem are left out unless `cross_fs`, and so are
/// directories (with all below them) that `may_list` refuses: those the viewer could
/// not list itself.
pub(super) fn sorted_walk(
    root: BorrowedFd<'_>,
    dir_rel: &Path,
    cursor: &[&OsStr],
    cross_fs: bool,
    may_list: &mut dyn FnMut(&Path) -> bool,
    visit: &mut VisitVolume<'_>,
) -> Result<ControlFlow<()>> {
    if !may_list(dir_rel) {
        return Ok(ControlFlow::Continue(()));
    }
    let dir = match fsys::open_dir_beneath(root, dir_rel, cross_fs) {
        Ok(fd) => fd,
        // A directory removed, or turned into a symlink or mount point meanwhile.
        Err(OpenError::Missing | OpenError::Symlink | OpenError::OtherFilesystem) => {
            return Ok(ControlFlow::Continue(()));
        }
        Err(e) => return Err(Error::failed(format!("{}: {e}", dir_rel.display()))),
    };
    let entries = recent::sorted_entries(dir.as_fd())?;
    let mut cursor = cursor;
    let mut child = PathBuf::new();
    for (name, kind) in entries.iter() {
        if dir_rel.as_os_str().is_empty()
            && crate::fsys::staging::is_legacy_staging(dir.as_fd(), name.as_bytes())
        {
            continue; // what an older agent's crash left
        }
        child.clear();
        child.push(dir_rel);
        child.push(name);
        let is_dir = match kind {
            FileType::Directory => true,
            // A filesystem that does not fill in entry types: look, but through
            // `openat2` like every other lookup (a `stat` by name would enter a mount
            // on that name, and hang with a hung FUSE server).
            FileType::Unknown => fsys::open_entry(dir.as_fd(), name, kind, cross_fs)
                .is_ok_and(|node| node.kind == NodeKind::Directory),
            _ => false,
        };
        let mut below: &[&OsStr] = &[];
        if let Some((first, rest)) = cursor.split_first() {
            match name.as_bytes().cmp(first.as_bytes()) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => {
                    // The cursor itself was on the last page; a directory of that name
                    // goes on from where the cursor is inside it.
                    cursor = &[];
                    if !is_dir || rest.is_empty() {
                        continue;
                    }
                    below = rest;
                }
                std::cmp::Ordering::Greater => cursor = &[],
            }
        }
        let flow = if is_dir {
            sorted_walk(root, &child, below, cross_fs, may_list, visit)?
        } else {
            visit(&child, dir.as_fd(), name, kind)?
        };
        if flow.is_break() {
            return Ok(flow);
        }
    }
    Ok(ControlFlow::Continue(()))
}
