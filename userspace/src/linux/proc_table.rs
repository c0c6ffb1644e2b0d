//! The process table: pid -> what the process is. Fed by exec, fork and exit records and
//! seeded from `/proc` at start, so that a DNS packet from pid 4242 names its process and
//! parent even after the process has gone. Entries of exited processes stay for a grace
//! period (records of a process can still be queued behind its exit); then they go, so the
//! table is bounded by the live processes.
//!
//! Uses: `procfs`, `containers` (where a process read from `/proc` runs).

use std::{collections::VecDeque, sync::Arc};

use crate::linux::{
    containers::{Containers, Place},
    procfs,
};

/// How long an exited process stays known, in boot-time nanoseconds.
pub const EXIT_GRACE_NS: u64 = 10_000_000_000;

/// What the table knows of a process. Strings are shared: a fork copies the parent's entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    /// Executable path ("" when unknown).
    pub path: Arc<str>,
    /// Command line, arguments joined by spaces.
    pub command_line: Arc<str>,
    /// Kernel task name (at most 15 bytes).
    pub comm: Arc<str>,
    /// The image name (see [`image_name`]), kept shared for the events of the process.
    pub name: Arc<str>,
    /// Boot-time start of the process (0 when seeded from /proc).
    pub start_ns: u64,
    pub args_truncated: bool,
    /// What the executable really is, when identified by content (`identify`).
    pub original_file_name: Option<Arc<str>>,
    /// Its container and namespaces (a fork inherits them with the rest).
    pub place: Place,
}

/// The image name: the last component of `path`, or `comm` when the path is unknown.
pub fn image_name(path: &Arc<str>, comm: &Arc<str>) -> Arc<str> {
    match path.rsplit_once('/') {
        Some((_, name)) if !name.is_empty() => name.into(),
        _ if !path.is_empty() => path.clone(),
        _ => comm.clone(),
    }
}

impl ProcInfo {
    /// The image name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The entry of a process read from `/proc`, running in `place`.
    pub fn from_proc(e: procfs::ProcEntry, place: Place) -> Self {
        let path: Arc<str> = e.path.into();
        let comm: Arc<str> = e.comm.into();
        ProcInfo {
            pid: e.pid,
            ppid: e.ppid,
            uid: e.uid,
            name: image_name(&path, &comm),
            path,
            command_line: if e.argv.is_empty() {
                comm.clone()
            } else {
                e.argv.join(" ").into()
            },
            comm,
            start_ns: 0,
            args_truncated: false,
            original_file_name: None,
            place,
        }
    }
}

#[derive(Default)]
pub struct ProcTable {
    procs: foldhash::HashMap<u32, ProcInfo>,
    /// (boot ns of exit, pid, start_ns) in exit order.
    exited: VecDeque<(u64, u32, u64)>,
    /// Whether misses may be filled from /proc (off in tests of the table itself).
    use_procfs: bool,
    /// Where processes read from /proc run.
    containers: Containers,
}

impl ProcTable {
    /// An empty table that fills misses from `/proc`, placing processes with `containers`.
    pub fn new(containers: Containers) -> Self {
        ProcTable {
            use_procfs: true,
            containers,
            ..Default::default()
        }
    }

    /// An empty table that never reads `/proc`.
    pub fn detached() -> Self {
        ProcTable {
            containers: Containers::detached(),
            ..Default::default()
        }
    }

    /// The resolver of containers (the enricher places exec'd processes with it).
    pub fn containers(&mut self) -> &mut Containers {
        &mut self.containers
    }

    /// The resolver of containers.
    pub fn containers_ref(&self) -> &Containers {
        &self.containers
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// Adds every process in `/proc` not already known.
    pub fn seed_from_proc(&mut self) {
        for pid in procfs::pids() {
            if self.procs.contains_key(&pid) {
                continue;
            }
            if let Some(e) = procfs::read(pid) {
                let place = self.containers.of_proc(&e);
                self.procs.insert(pid, ProcInfo::from_proc(e, place));
            }
        }
    }

    /// A process executed a new program.
    pub fn exec(&mut self, info: ProcInfo) {
        self.procs.insert(info.pid, info);
    }

    /// `child` was forked from `parent`: it runs the parent's program until it execs.
    pub fn fork(&mut self, parent: u32, child: u32, child_start_ns: u64) {
        let info = match self.lookup(parent) {
            Some(p) => ProcInfo {
                pid: child,
                ppid: parent,
                start_ns: child_start_ns,
                ..p.clone()
            },
            None => ProcInfo {
                pid: child,
                ppid: parent,
                start_ns: child_start_ns,
                ..Default::default()
            },
        };
        self.procs.insert(child, info);
    }

    /// The process `pid` (started at `start_ns`) ended at `now_ns`.
    pub fn exit(&mut self, pid: u32, start_ns: u64, now_ns: u64) {
        self.exited.push_back((now_ns, pid, start_ns));
    }

    /// Forgets processes that exited more than [`EXIT_GRACE_NS`] before `now_ns`.
    pub fn sweep(&mut self, now_ns: u64) {
        while let Some(&(at, pid, start)) = self.exited.front() {
            if now_ns.saturating_sub(at) < EXIT_GRACE_NS {
                break;
            }
            self.exited.pop_front();
            // Only if the pid was not reused since (a new exec/fork changed start_ns).
            if self
                .procs
                .get(&pid)
                .is_some_and(|p| p.start_ns == start || p.start_ns == 0)
            {
                self.procs.remove(&pid);
            }
        }
    }

    /// The process `pid`, from the table or else from `/proc`.
    pub fn lookup(&mut self, pid: u32) -> Option<&ProcInfo> {
        if pid == 0 {
            return None;
        }
        if !self.procs.contains_key(&pid) {
            if !self.use_procfs {
                return None;
            }
            let e = procfs::read(pid)?;
            let place = self.containers.of_proc(&e);
            self.procs.insert(pid, ProcInfo::from_proc(e, place));
        }
        self.procs.get(&pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: u32, ppid: u32, path: &str, start: u64) -> ProcInfo {
        let path: Arc<str> = path.into();
        let comm: Arc<str> = "c".into();
        ProcInfo {
            pid,
            ppid,
            uid: 1000,
            name: image_name(&path, &comm),
            command_line: path.clone(),
            path,
            comm,
            start_ns: start,
            args_truncated: false,
            original_file_name: None,
            place: Place::default(),
        }
    }

    #[test]
    fn fork_inherits_then_exec_replaces() {
        let mut t = ProcTable::detached();
        t.exec(info(10, 1, "/usr/bin/bash", 5));
        t.fork(10, 11, 7);
        let child = t.lookup(11).unwrap();
        assert_eq!(
            (child.ppid, &*child.path, child.start_ns),
            (10, "/usr/bin/bash", 7)
        );
        t.exec(info(11, 10, "/tmp/ngrok", 7));
        assert_eq!(t.lookup(11).unwrap().name(), "ngrok");
        assert_eq!(t.lookup(10).unwrap().name(), "bash");
    }

    #[test]
    fn exit_keeps_entry_for_grace_then_forgets() {
        let mut t = ProcTable::detached();
        t.exec(info(10, 1, "/bin/a", 5));
        t.exit(10, 5, 100);
        t.sweep(100 + EXIT_GRACE_NS - 1);
        assert!(t.lookup(10).is_some());
        t.sweep(100 + EXIT_GRACE_NS);
        assert!(t.lookup(10).is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn reused_pid_survives_old_exit() {
        let mut t = ProcTable::detached();
        t.exec(info(10, 1, "/bin/a", 5));
        t.exit(10, 5, 100);
        t.fork(1, 10, 200); // pid reused by a new process
        t.sweep(100 + EXIT_GRACE_NS);
        assert_eq!(t.lookup(10).unwrap().start_ns, 200);
    }

    #[test]
    fn names() {
        assert_eq!(info(1, 0, "/usr/bin/bash", 0).name(), "bash");
        assert_eq!(&*image_name(&"/usr/bin/bash".into(), &"b".into()), "bash");
        assert_eq!(
            &*image_name(&"".into(), &"kworker/0:1".into()),
            "kworker/0:1"
        );
        assert_eq!(&*image_name(&"memfd:x".into(), &"c".into()), "memfd:x");
    }

    #[test]
    fn misses_fall_back_to_proc() {
        let mut t = ProcTable::new(Containers::detached());
        let me = std::process::id();
        assert_eq!(t.lookup(me).unwrap().pid, me);
        t.seed_from_proc();
        assert!(t.len() > 1);
    }
}
