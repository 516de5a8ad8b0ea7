//! Whether a directory is sealed: only root can add, remove or rename its entries.
//! Walks decide it once per directory; label writes rely on it (`apply::sole_link`).

use std::os::fd::BorrowedFd;

use rustix::io::Errno;

/// Whether nobody but root can add, remove or rename entries of `dir`.
pub fn sealed(dir: BorrowedFd<'_>) -> bool {
    let Ok(st) = rustix::fs::fstat(dir) else {
        return false;
    };
    st.st_uid == 0 && st.st_mode & 0o022 == 0 && !acl_grants_write(dir)
}

/// Whether `dir` has a POSIX ACL whose mask lets named users or groups write.
fn acl_grants_write(dir: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 1024];
    match rustix::fs::fgetxattr(dir, "system.posix_acl_access", &mut buf) {
        Ok(n) => acl_allows_write(&buf[..n]),
        Err(Errno::NODATA | Errno::NOTSUP) => false,
        // Unknown (too large, unreadable): assume the worst.
        Err(_) => true,
    }
}

/// The decision on a `system.posix_acl_access` value: a u32 version, then entries of
/// u16 tag, u16 permissions, u32 id (little endian). Extended entries (named users and
/// groups, the owning group) are limited by the mask entry; no mask, no extended entry.
fn acl_allows_write(acl: &[u8]) -> bool {
    const ACL_MASK: u16 = 0x10;
    const WRITE: u16 = 0x02;
    let Some(entries) = acl.get(4..) else {
        return true;
    };
    entries
        .chunks_exact(8)
        .find(|e| u16::from_le_bytes([e[0], e[1]]) == ACL_MASK)
        .is_some_and(|e| u16::from_le_bytes([e[2], e[3]]) & WRITE != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ACL value: USER_OBJ rwx, USER(1000) rwx, GROUP_OBJ r-x, MASK `mask`, OTHER r-x.
    fn acl(mask: u16) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 7u16, u32::MAX),
            (2, 7, 1000),
            (4, 5, u32::MAX),
            (0x10, mask, u32::MAX),
            (0x20, 5, u32::MAX),
        ] {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    #[test]
    fn the_acl_mask_decides_whether_named_entries_may_write() {
        assert!(!acl_allows_write(&acl(5)), "mask r-x");
        assert!(acl_allows_write(&acl(7)), "mask rwx");
        assert!(acl_allows_write(&acl(2)), "mask -w-");
        assert!(acl_allows_write(&[2, 0]), "truncated: assume the worst");
        // Only the three base entries (no mask): the mode bits say it all.
        assert!(!acl_allows_write(&acl(7)[..4 + 8]));
    }
}
