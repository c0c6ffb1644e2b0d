//! pid -> what is known of the process, so that a DNS query names its process and a new
//! process names its parent. Fed by the kernel's Start and DCStart (command line, user),
//! Microsoft-Windows-Kernel-Process's ProcessStart (the image's full path) and the stops of
//! both. An exited process is kept a while ([`EXITED_GRACE`]), for the DNS events and children
//! that are reported after it is gone.

use std::collections::HashMap;

use tunnelwatch_engine::event::Process;

use crate::fields::FILETIME_SECOND;

/// Where a process's image path came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathSource {
    /// Microsoft-Windows-Kernel-Process's `ImageName` (the kernel's own record).
    Etw,
    /// `QueryFullProcessImageNameW` on the live process.
    Live,
    /// The first word of the command line (an absolute path naming the same image).
    CommandLine,
    /// Not known: only the image's file name is.
    Unknown,
}

/// One process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    /// pid, name, path, command line, user; `original_file_name` is left empty here.
    pub process: Process,
    pub ppid: u32,
    /// FILETIME of its start event (for DCStart: of the rundown, i.e. the sensor's start).
    pub started: i64,
    /// FILETIME of its stop event.
    pub exited: Option<i64>,
    pub path_source: PathSource,
    /// Whether the kernel's Start or DCStart was seen (else only Kernel-Process's start: no
    /// command line, no user yet).
    pub from_kernel: bool,
}

/// How long an exited process stays known: 30 s.
pub const EXITED_GRACE: i64 = 30 * FILETIME_SECOND;
/// Two start events of one pid this close together describe one process: 5 s.
pub const SAME_PROCESS: i64 = 5 * FILETIME_SECOND;
/// Most processes kept; past it, exited ones are dropped first, then the oldest.
const MAX_PROCESSES: usize = 1 << 16;

/// Processes by pid.
#[derive(Debug, Default)]
pub struct ProcessTable {
    procs: HashMap<u32, ProcInfo>,
}

impl ProcessTable {
    pub fn new() -> ProcessTable {
        ProcessTable::default()
    }

    pub fn get(&self, pid: u32) -> Option<&ProcInfo> {
        self.procs.get(&pid)
    }

    pub fn get_mut(&mut self, pid: u32) -> Option<&mut ProcInfo> {
        self.procs.get_mut(&pid)
    }

    /// Records `info`, replacing whatever had its pid (pids are reused).
    pub fn insert(&mut self, info: ProcInfo) {
        if self.procs.len() >= MAX_PROCESSES && !self.procs.contains_key(&info.process.pid) {
            self.make_room();
        }
        self.procs.insert(info.process.pid, info);
    }

    /// Marks `pid` exited at `time`, unless the known process started after that (a stop of an
    /// earlier process with the same pid, reported late).
    pub fn exited(&mut self, pid: u32, time: i64) {
        if let Some(p) = self.procs.get_mut(&pid)
            && p.started <= time
            && p.exited.is_none()
        {
            p.exited = Some(time);
        }
    }

    /// The parent of a process that started at `child_started` with parent id `ppid`: the
    /// known process `ppid`, unless it started after the child did (then `ppid` was reused).
    pub fn parent(&self, ppid: u32, child_started: i64) -> Option<&ProcInfo> {
        self.procs
            .get(&ppid)
            .filter(|p| p.started <= child_started.saturating_add(FILETIME_SECOND))
    }

    /// Forgets processes that exited more than [`EXITED_GRACE`] before `now`.
    pub fn expire(&mut self, now: i64) {
        self.procs.retain(|_, p| {
            p.exited
                .is_none_or(|t| now.saturating_sub(t) <= EXITED_GRACE)
        });
    }

    fn make_room(&mut self) {
        let victim = self
            .procs
            .values()
            .min_by_key(|p| (p.exited.is_none(), p.exited.unwrap_or(p.started)))
            .map(|p| p.process.pid);
        if let Some(pid) = victim {
            self.procs.remove(&pid);
        }
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: u32, ppid: u32, started: i64) -> ProcInfo {
        ProcInfo {
            process: Process {
                pid,
                name: format!("p{pid}.exe").into(),
                ..Process::default()
            },
            ppid,
            started,
            exited: None,
            path_source: PathSource::Unknown,
            from_kernel: true,
        }
    }

    #[test]
    fn exited_processes_are_kept_for_the_grace_period() {
        let mut t = ProcessTable::new();
        t.insert(info(10, 4, 100));
        t.insert(info(11, 10, 200));
        t.exited(10, 1_000);
        t.expire(1_000 + EXITED_GRACE);
        assert!(t.get(10).is_some(), "still within the grace period");
        t.expire(1_001 + EXITED_GRACE);
        assert!(t.get(10).is_none());
        assert!(t.get(11).is_some(), "running processes stay");
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_late_stop_of_an_earlier_process_does_not_end_its_successor() {
        let mut t = ProcessTable::new();
        t.insert(info(10, 4, 5_000));
        t.exited(10, 4_000);
        assert_eq!(t.get(10).unwrap().exited, None);
        t.exited(10, 6_000);
        t.exited(10, 7_000);
        assert_eq!(t.get(10).unwrap().exited, Some(6_000));
    }

    #[test]
    fn a_parent_must_have_started_before_its_child() {
        let mut t = ProcessTable::new();
        t.insert(info(10, 4, 100));
        assert_eq!(t.parent(10, 500).unwrap().process.pid, 10);
        // pid 10 reused by a process younger than the child: not its parent.
        t.insert(info(10, 4, 900 + 2 * FILETIME_SECOND));
        assert!(t.parent(10, 500).is_none());
        assert!(t.parent(99, 500).is_none());
    }

    #[test]
    fn the_table_is_bounded_and_drops_exited_processes_first() {
        let mut t = ProcessTable::new();
        for pid in 0..MAX_PROCESSES as u32 {
            t.insert(info(pid, 0, i64::from(pid)));
        }
        t.exited(500, 10_000_000);
        t.insert(info(1 << 20, 0, 1));
        assert_eq!(t.len(), MAX_PROCESSES);
        assert!(t.get(500).is_none(), "the exited one made room");
        t.insert(info((1 << 20) + 1, 0, 1));
        assert!(t.get(0).is_none(), "then the oldest");
        assert!(t.get(1).is_some());
    }
}
