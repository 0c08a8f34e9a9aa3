//! Who may use the bus: the peer's credentials (SO_PEERCRED, read by the
//! kernel at connect time, so they cannot be forged) against allow lists
//! of user and group names from the config.
//!
//! Root and the daemon's own user are always allowed; so are members of
//! the socket's group (`[bus] group`, else the daemon's primary group, which
//! the socket file gets when no group is configured), since the file mode
//! 0660 already grants them the socket. Names are resolved when the config is (re)loaded; a name that does not
//! resolve is logged and ignored.

use std::collections::HashSet;
use std::ffi::CString;

use nix::unistd::{getgrouplist, Gid, Group, Uid, User};

use super::BusConfig;

/// A connecting peer as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Effective uid at connect time.
    pub uid: u32,
    /// Effective gid at connect time.
    pub gid: u32,
    /// Process id, when the kernel told it.
    pub pid: Option<i32>,
}

impl Peer {
    /// The peer's user name, or its uid as text when it has none.
    pub fn user_name(&self) -> String {
        User::from_uid(Uid::from_raw(self.uid))
            .ok()
            .flatten()
            .map_or_else(|| self.uid.to_string(), |u| u.name)
    }
}

/// The resolved allow lists.
#[derive(Debug, Clone, Default)]
pub struct Access {
    own_uid: u32,
    uids: HashSet<u32>,
    gids: HashSet<u32>,
}

impl Access {
    /// Resolves the names in `config`. Unknown names are logged, not fatal:
    /// a typo must not lock everybody out.
    pub fn from_config(config: &BusConfig) -> Access {
        let mut access = Access::resolve(config);
        if config.group.is_none() {
            // The socket file is created with the daemon's group.
            access.gids.insert(Gid::effective().as_raw());
        }
        access
    }

    fn resolve(config: &BusConfig) -> Access {
        let mut access = Access {
            own_uid: Uid::effective().as_raw(),
            ..Access::default()
        };
        for name in &config.allow_users {
            match User::from_name(name) {
                Ok(Some(u)) => {
                    access.uids.insert(u.uid.as_raw());
                }
                Ok(None) => tracing::warn!(user = %name, "bus allow_users: no such user; ignored"),
                Err(e) => {
                    tracing::warn!(user = %name, error = %e, "bus allow_users: cannot look the user up; ignored")
                }
            }
        }
        for name in config.allow_groups.iter().chain(config.group.iter()) {
            match Group::from_name(name) {
                Ok(Some(g)) => {
                    access.gids.insert(g.gid.as_raw());
                }
                Ok(None) => {
                    tracing::warn!(group = %name, "bus: no such group; ignored for access")
                }
                Err(e) => {
                    tracing::warn!(group = %name, error = %e, "bus: cannot look the group up; ignored")
                }
            }
        }
        access
    }

    /// Who sees phone numbers instead of handles: root, the daemon's own
    /// user and the `see_numbers_*` lists (the socket's group gives no
    /// such right).
    pub fn see_numbers(config: &BusConfig) -> Access {
        Access::resolve(&BusConfig {
            group: None,
            allow_users: config.see_numbers_users.clone(),
            allow_groups: config.see_numbers_groups.clone(),
            ..BusConfig::default()
        })
    }

    /// Whether `peer` may use the bus.
    pub fn allows(&self, peer: &Peer) -> bool {
        if peer.uid == 0 || peer.uid == self.own_uid || self.uids.contains(&peer.uid) {
            return true;
        }
        if self.gids.is_empty() {
            return false;
        }
        if self.gids.contains(&peer.gid) {
            return true;
        }
        // Supplementary groups: SO_PEERCRED carries only the primary gid,
        // so ask the group database which groups the user is in.
        supplementary_groups(peer)
            .iter()
            .any(|g| self.gids.contains(&g.as_raw()))
    }
}

fn supplementary_groups(peer: &Peer) -> Vec<Gid> {
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(peer.uid)) else {
        return Vec::new();
    };
    let Ok(name) = CString::new(user.name) else {
        return Vec::new();
    };
    getgrouplist(&name, user.gid).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32) -> Peer {
        Peer {
            uid,
            gid,
            pid: None,
        }
    }

    #[test]
    fn root_and_self_always_allowed() {
        let a = Access::from_config(&BusConfig {
            group: None,
            ..BusConfig::default()
        });
        assert!(a.allows(&peer(0, 0)));
        let me = Uid::effective().as_raw();
        assert!(a.allows(&peer(me, 12345)));
    }

    #[test]
    fn members_of_the_daemons_group_are_allowed_without_a_configured_group() {
        let own_gid = Gid::effective().as_raw();
        let stranger = 4_000_001;
        let unset = BusConfig {
            group: None,
            ..BusConfig::default()
        };
        assert!(Access::from_config(&unset).allows(&peer(stranger, own_gid)));
        assert!(!Access::from_config(&unset).allows(&peer(stranger, 4_000_002)));
        // Being in the socket's group is no right to see numbers.
        assert!(!Access::see_numbers(&unset).allows(&peer(stranger, own_gid)));
    }

    #[test]
    fn lists_resolve_names_and_refuse_others() {
        let Ok(Some(nobody)) = User::from_name("nobody") else {
            eprintln!("SKIPPED: no user nobody on this system");
            return;
        };
        if nobody.uid == Uid::effective() {
            eprintln!("SKIPPED: running as nobody");
            return;
        }
        let base = BusConfig {
            group: None,
            allow_users: vec!["no-such-user-xyz".into()],
            allow_groups: vec!["no-such-group-xyz".into()],
            ..BusConfig::default()
        };
        let p = peer(nobody.uid.as_raw(), 4_000_000);
        assert!(!Access::from_config(&base).allows(&p));
        let by_user = BusConfig {
            allow_users: vec!["nobody".into()],
            ..base.clone()
        };
        assert!(Access::from_config(&by_user).allows(&p));
        if let Ok(Some(g)) = Group::from_gid(nobody.gid) {
            let by_group = BusConfig {
                allow_groups: vec![g.name],
                ..base
            };
            assert!(Access::from_config(&by_group)
                .allows(&peer(nobody.uid.as_raw(), nobody.gid.as_raw())));
        }
    }
}
