//! The system's user and group databases (NSS): the one place that asks them.

/// The gid of a group by name.
pub fn group_gid(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: an all-zero `group` is a valid value of this plain C struct.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; buf outlives it.
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(grp.gr_gid)
}

/// A user's uid and primary gid, by name, or `+N` / `N` for a uid (as libvirt's
/// qemu.conf writes it).
pub fn user_ids(name: &str) -> Option<(u32, u32)> {
    let by_name = || -> Option<(u32, u32)> {
        let c = std::ffi::CString::new(name).ok()?;
        passwd_entry(
            // SAFETY: `c` is a NUL-terminated string alive for the call; the other
            // pointers come from `passwd_entry`, valid for the call.
            |pwd, buf, len, result| unsafe { libc::getpwnam_r(c.as_ptr(), pwd, buf, len, result) },
            |pwd| (pwd.pw_uid, pwd.pw_gid),
        )
    };
    let numeric = name.strip_prefix('+').unwrap_or(name).parse::<u32>().ok();
    match (name.starts_with('+'), numeric) {
        (true, Some(uid)) => Some((uid, primary_gid(uid).unwrap_or(uid))),
        (false, Some(uid)) => by_name().or(Some((uid, primary_gid(uid).unwrap_or(uid)))),
        _ => by_name(),
    }
}

/// The primary gid of user `uid`.
fn primary_gid(uid: u32) -> Option<u32> {
    with_passwd(uid, |pwd| pwd.pw_gid)
}

/// Calls `f` with user `uid`'s passwd entry (its strings valid during the call).
fn with_passwd<T>(uid: u32, f: impl FnOnce(&libc::passwd) -> T) -> Option<T> {
    passwd_entry(
        // SAFETY: the pointers come from `passwd_entry`, valid for the call.
        |pwd, buf, len, result| unsafe { libc::getpwuid_r(uid, pwd, buf, len, result) },
        f,
    )
}

/// One passwd lookup (`getpwnam_r` or `getpwuid_r`, given the entry, a buffer, its
/// length and the result pointer), and `f` of the entry found (its strings live in the
/// buffer, valid during the call).
fn passwd_entry<T>(
    lookup: impl FnOnce(
        *mut libc::passwd,
        *mut libc::c_char,
        usize,
        *mut *mut libc::passwd,
    ) -> libc::c_int,
    f: impl FnOnce(&libc::passwd) -> T,
) -> Option<T> {
    // SAFETY: an all-zero `passwd` is a valid value of this plain C struct.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = lookup(&mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
    (rc == 0 && !result.is_null()).then(|| f(&pwd))
}

/// The groups of user `uid`: its primary group and every supplementary one. `None`
/// when the user is unknown.
pub fn groups_of(uid: u32) -> Option<Vec<u32>> {
    with_passwd(uid, group_list).flatten()
}

/// Every group of the user `pwd` describes.
fn group_list(pwd: &libc::passwd) -> Option<Vec<u32>> {
    let mut groups = vec![0 as libc::gid_t; 64];
    loop {
        let mut n = libc::c_int::try_from(groups.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: pw_name points into buf; groups has room for n entries.
        let rc =
            unsafe { libc::getgrouplist(pwd.pw_name, pwd.pw_gid, groups.as_mut_ptr(), &mut n) };
        let n = usize::try_from(n).unwrap_or(0);
        if rc >= 0 {
            groups.truncate(n);
            return Some(groups);
        }
        // Too small: n says how many there are.
        if n <= groups.len() || groups.len() >= 65_536 {
            return None;
        }
        groups.resize(n, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_in_its_own_group_and_unknown_users_have_none() {
        assert!(groups_of(0).unwrap().contains(&0));
        assert_eq!(groups_of(u32::MAX - 1), None);
        assert_eq!(group_gid("root"), Some(0));
        assert_eq!(group_gid("no-such-group-svirt"), None);
        assert_eq!(user_ids("root"), Some((0, 0)));
        assert_eq!(user_ids("+0"), Some((0, 0)));
        assert_eq!(user_ids("no-such-user-svirt"), None);
    }
}
