//! User names for uids, looked up once per uid (through NSS, as `id` does) and cached.
//!
//! Uses: nothing of this crate.

use std::sync::Arc;

/// uid -> name cache. Unknown uids map to their number, so that alerts always name someone.
#[derive(Default)]
pub struct Users {
    /// uid -> (name, the uid as text).
    names: foldhash::HashMap<u32, (Arc<str>, Arc<str>)>,
}

impl Users {
    pub fn name(&mut self, uid: u32) -> Arc<str> {
        self.name_and_id(uid).0
    }

    /// The name of `uid` and `uid` as text, both shared.
    pub fn name_and_id(&mut self, uid: u32) -> (Arc<str>, Arc<str>) {
        if let Some(n) = self.names.get(&uid) {
            return n.clone();
        }
        let name: Arc<str> = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            Ok(Some(user)) => user.name.into(),
            _ => uid.to_string().into(),
        };
        // Bounded: a host has few users; a flood of distinct uids (user namespaces) is capped.
        if self.names.len() >= 4096 {
            self.names.clear();
        }
        let entry = (name, Arc::<str>::from(uid.to_string()));
        self.names.insert(uid, entry.clone());
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_unknown() {
        let mut users = Users::default();
        assert_eq!(&*users.name(0), "root");
        assert_eq!(&*users.name(3_999_999_999), "3999999999");
    }
}
