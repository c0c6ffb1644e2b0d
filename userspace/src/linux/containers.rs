//! Where a process runs: its container (from its cgroup path, `container_path`) and its
//! namespaces when they are not the host's. Resolved once per cgroup and cached by cgroup id
//! (ids are never reused), so that a process's events cost a pointer copy; one [`Slot`] per
//! container, shared by its processes, which the runtime's API answer (`runtime_api`) fills
//! with names later, off the event path.
//!
//! An exec record carries its cgroup's names (the kernel read them), so a container that is
//! gone before user space reads the record still has its id. A process read from `/proc`
//! (seeded at start, or not reported by the kernel) is resolved from `/proc/PID/cgroup`. On a
//! hybrid host a runtime may have placed a container in the v1 hierarchies only: when the v2
//! path names no container and the process is in namespaces of its own, `/proc/PID/cgroup`'s
//! v1 paths are read too (host processes never pay for it).
//!
//! Uses: `container_path`, `container_slot`, `procfs`, `runtime_api` (this folder) and the
//! engine's events.

use std::{path::Path, sync::Arc};

use tunnelwatch_engine::event::Namespaces;

use crate::linux::{container_path, container_slot::Slot, procfs, runtime_api::Lookups};

/// Most cgroups and containers remembered (then the caches start over: a pointer copy per
/// event becomes one path parse per cgroup again).
const CACHE_MAX: usize = 16_384;

/// Where a process runs.
#[derive(Clone, Debug, Default)]
pub struct Place {
    pub container: Option<Arc<Slot>>,
    /// `None` when every namespace is the host's (or unknown).
    pub namespaces: Option<Namespaces>,
}

impl PartialEq for Place {
    fn eq(&self, other: &Place) -> bool {
        let same = match (&self.container, &other.container) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
        same && self.namespaces == other.namespaces
    }
}

impl Eq for Place {}

/// The resolver and its caches.
#[derive(Default)]
pub struct Containers {
    host: Namespaces,
    /// v1 controllers are mounted beside the v2 hierarchy.
    hybrid: bool,
    by_cgroup: foldhash::HashMap<u64, Option<Arc<Slot>>>,
    by_id: foldhash::HashMap<Arc<str>, Arc<Slot>>,
    lookups: Option<Lookups>,
    /// `/proc/PID/cgroup` reads for a v1-only layout.
    pub v1_reads: u64,
}

impl Containers {
    /// The host's namespaces (pid 1's; the sensor's own where pid 1's cannot be read) and
    /// hierarchy; names asked of `lookups` (none: ids only).
    pub fn new(lookups: Option<Lookups>) -> Containers {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let init = procfs::namespaces_at(Path::new("/proc/1"));
        let me = procfs::namespaces_at(Path::new("/proc/self"));
        let either = |a: u32, b: u32| if a != 0 { a } else { b };
        Containers {
            host: Namespaces {
                pid: either(init.pid, me.pid),
                mnt: either(init.mnt, me.mnt),
                net: either(init.net, me.net),
            },
            hybrid: own.lines().any(|l| !l.starts_with("0:")),
            lookups,
            ..Containers::default()
        }
    }

    /// A resolver that reads nothing (tests of the process table).
    pub fn detached() -> Containers {
        Containers::default()
    }

    /// The runtime API's lookups, when there are.
    pub fn lookups(&self) -> Option<&Lookups> {
        self.lookups.as_ref()
    }

    /// Where the process of an exec record runs: its cgroup (id and names, leaf first, as the
    /// kernel sent them) and its namespaces.
    pub fn of_exec(&mut self, pid: u32, cgroup_id: u64, names: &[u8], ns: Namespaces) -> Place {
        let namespaces = self.own(ns);
        let container = match self.by_cgroup.get(&cgroup_id) {
            Some(slot) => slot.clone(),
            None => {
                let found = container_path::parse(&crate::linux::decode::cgroup_path(names));
                let slot = found.map(|c| self.slot(c));
                // A cgroup that names no container may still hold one on a hybrid host
                // (v1 only): not cached, the v1 paths are per process.
                if slot.is_some() || !self.hybrid || namespaces.is_none() {
                    self.remember(cgroup_id, slot.clone());
                }
                slot
            }
        };
        let container = match container {
            None if self.hybrid && namespaces.is_some() && cgroup_id != 0 => {
                self.v1_reads += 1;
                let text =
                    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
                self.of_paths(&text)
            }
            c => c,
        };
        Place {
            container,
            namespaces,
        }
    }

    /// The container of cgroup `cgroup_id` if it was resolved before (a DNS packet of a
    /// process the table does not know: the packet's socket's cgroup).
    pub fn cached(&self, cgroup_id: u64) -> Option<Arc<Slot>> {
        self.by_cgroup.get(&cgroup_id).cloned().flatten()
    }

    /// Where a process read from `/proc` runs.
    pub fn of_proc(&mut self, entry: &procfs::ProcEntry) -> Place {
        Place {
            container: self.of_paths(&entry.cgroup),
            namespaces: self.own(entry.namespaces),
        }
    }

    /// The container a `/proc/PID/cgroup` text names (the v2 path first).
    fn of_paths(&mut self, text: &str) -> Option<Arc<Slot>> {
        container_path::parse_any(container_path::proc_cgroup_paths(text)).map(|c| self.slot(c))
    }

    /// The namespaces, when one is known and not the host's.
    fn own(&self, ns: Namespaces) -> Option<Namespaces> {
        let differs = |a: u32, host: u32| a != 0 && host != 0 && a != host;
        (differs(ns.pid, self.host.pid)
            || differs(ns.mnt, self.host.mnt)
            || differs(ns.net, self.host.net))
        .then_some(ns)
    }

    /// The one slot of a container (its names asked of the runtime's API when it is new).
    fn slot(&mut self, c: container_path::PathContainer) -> Arc<Slot> {
        if let Some(s) = self.by_id.get(c.id.as_str()) {
            return s.clone();
        }
        if self.by_id.len() >= CACHE_MAX {
            self.by_id.clear();
        }
        let slot = Arc::new(Slot::new(c));
        self.by_id.insert(slot.base().id.clone(), slot.clone());
        if let Some(lookups) = &self.lookups {
            lookups.ask(slot.clone());
        }
        slot
    }

    fn remember(&mut self, cgroup_id: u64, slot: Option<Arc<Slot>>) {
        if self.by_cgroup.len() >= CACHE_MAX {
            self.by_cgroup.clear();
        }
        self.by_cgroup.insert(cgroup_id, slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tunnelwatch_engine::event::Container;

    const ID: &str = "93b6694fe4836db7e01d49fa230e91aa4cd46503e6ddf216a1b36a8f30b7bcb7";

    fn names(path: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for part in path.split('/').filter(|p| !p.is_empty()).rev() {
            out.extend_from_slice(part.as_bytes());
            out.push(0);
        }
        out
    }

    fn host() -> Containers {
        Containers {
            host: Namespaces {
                pid: 1,
                mnt: 2,
                net: 3,
            },
            ..Containers::detached()
        }
    }

    #[test]
    fn one_slot_per_container_cached_by_cgroup_and_named_later() {
        let mut c = host();
        let ns = Namespaces {
            pid: 10,
            mnt: 11,
            net: 3,
        };
        let path = names(&format!("/machine.slice/libpod-{ID}.scope"));
        let a = c.of_exec(100, 7, &path, ns);
        // Another cgroup of the same container (`--cgroups=split`): the same slot.
        let split = names(&format!("/machine.slice/libpod-{ID}.scope/container"));
        let b = c.of_exec(101, 8, &split, ns);
        let (sa, sb) = (a.container.unwrap(), b.container.unwrap());
        assert!(Arc::ptr_eq(&sa, &sb));
        assert_eq!(a.namespaces, Some(ns));
        assert_eq!((&*sa.current().id, &*sa.current().runtime), (ID, "podman"));
        // Cached by cgroup id: the names are not parsed again.
        let again = c.of_exec(102, 7, b"", ns).container.unwrap();
        assert!(Arc::ptr_eq(&again, &sa));
        // The API's answer reaches every process of the container.
        sa.name(Container {
            name: "web".into(),
            image: "localhost/tunnel:1".into(),
            ..sa.base().clone()
        });
        assert_eq!(&*sb.current().name, "web");
        assert_eq!(&*sb.current().id, ID);
    }

    #[test]
    fn host_processes_and_unshared_ones() {
        let mut c = host();
        let host_ns = Namespaces {
            pid: 1,
            mnt: 2,
            net: 3,
        };
        let p = c.of_exec(100, 1, b"", host_ns);
        assert!(p.container.is_none() && p.namespaces.is_none());
        let p = c.of_exec(
            100,
            9,
            &names("/user.slice/user-0.slice/session-1.scope"),
            host_ns,
        );
        assert!(p.container.is_none() && p.namespaces.is_none());
        // Unknown namespaces (a kernel without the offsets) are not "own".
        let p = c.of_exec(100, 1, b"", Namespaces::default());
        assert!(p.namespaces.is_none());
        // `unshare --mount --net`: marked, no container.
        let unshared = Namespaces {
            pid: 1,
            mnt: 20,
            net: 30,
        };
        let p = c.of_exec(100, 1, b"", unshared);
        assert!(p.container.is_none());
        assert_eq!(p.namespaces, Some(unshared));
    }

    #[test]
    fn proc_entries_use_their_cgroup_file() {
        let mut c = host();
        let e = procfs::ProcEntry {
            cgroup: format!("4:memory:/docker/{ID}\n0::/\n"),
            namespaces: Namespaces {
                pid: 5,
                mnt: 6,
                net: 7,
            },
            ..Default::default()
        };
        let p = c.of_proc(&e);
        assert_eq!(&*p.container.unwrap().current().runtime, "docker");
        assert!(p.namespaces.is_some());
    }
}
