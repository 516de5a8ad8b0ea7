//! Who may call what: root everything, members of `api.group` everything but
//! forgetting guests, everyone else read-only listing if `api.read_only_for_all`.

use crate::config::ApiSettings;

/// What a method needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Listing pools, volumes and guests, and monitoring.
    Read,
    /// Changing attachments, importing, opening, creating save images, defining guests.
    Operate,
    /// Config-level actions: forgetting a guest (its pair may be handed out again).
    Admin,
}

/// The peer of a connection, from `SO_PEERCRED` at connect time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its user.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// Its process.
    pub pid: i32,
}

/// Why a peer may not call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The method is root's.
    #[error("only root may do this")]
    RootOnly,
    /// Changing labels is for root and the API group.
    #[error("only root and members of the API group may change labels")]
    NotOperator,
    /// Reading is for root and the API group unless `api.read_only_for_all`.
    #[error("only root and members of the API group may list (api.read_only_for_all is off)")]
    NotReader,
}

/// The pure rule, given whether the peer is root and whether it is in the API group.
pub fn decide(
    is_root: bool,
    is_member: bool,
    read_only_for_all: bool,
    need: Access,
) -> Result<(), Denied> {
    match need {
        _ if is_root => Ok(()),
        Access::Admin => Err(Denied::RootOnly),
        Access::Operate if is_member => Ok(()),
        Access::Operate => Err(Denied::NotOperator),
        Access::Read if is_member || read_only_for_all => Ok(()),
        Access::Read => Err(Denied::NotReader),
    }
}

/// Whether `peer` may do what `need` says under `api`. Membership of the API group is
/// asked of NSS on every call (a member taken out of the group loses access even on a
/// connection it holds open), and never for root.
pub fn check(peer: &Peer, need: Access, api: &ApiSettings) -> Result<(), Denied> {
    let is_root = peer.uid == 0;
    let is_member = !is_root
        && api
            .group
            .as_ref()
            .is_some_and(|(_, gid)| peer.gid == *gid || user_in_group(peer.uid, *gid));
    decide(is_root, is_member, api.read_only_for_all, need)
}

/// Whether user `uid` is a member of group `gid` (primary or supplementary).
fn user_in_group(uid: u32, gid: u32) -> bool {
    crate::users::groups_of(uid).is_some_and(|groups| groups.contains(&gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules() {
        use Access::*;
        for need in [Read, Operate, Admin] {
            assert!(
                decide(true, false, false, need).is_ok(),
                "root may {need:?}"
            );
        }
        assert!(decide(false, true, false, Operate).is_ok());
        assert!(decide(false, true, false, Read).is_ok());
        assert!(decide(false, true, false, Admin).is_err());
        assert!(decide(false, false, true, Read).is_ok());
        assert!(decide(false, false, true, Operate).is_err());
        assert!(decide(false, false, false, Read).is_err());
    }

    #[test]
    fn root_is_in_its_own_group() {
        assert!(user_in_group(0, 0));
        assert!(!user_in_group(u32::MAX - 1, 0));
    }
}
