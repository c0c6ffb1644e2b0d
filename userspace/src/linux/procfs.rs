//! What `/proc` says about a process: used to seed the process table at start and to fill in
//! a process the kernel side has not reported (it started before the sensor).
//!
//! Uses: `decode` (argv splitting).

use std::{fs, path::Path};

use tunnelwatch_engine::event::Namespaces;

/// A process as read from `/proc/PID`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcEntry {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    /// Target of `/proc/PID/exe` (empty for kernel threads or when not readable).
    pub path: String,
    /// Arguments from `/proc/PID/cmdline`.
    pub argv: Vec<String>,
    pub comm: String,
    /// `/proc/PID/cgroup`: the v2 path and, on hybrid hosts, the v1 controllers' paths.
    pub cgroup: String,
    /// Inode numbers of its pid, mount and network namespaces (0: unreadable).
    pub namespaces: Namespaces,
}

/// Reads `/proc/PID`. `None` when the process is gone.
pub fn read(pid: u32) -> Option<ProcEntry> {
    read_at(Path::new("/proc"), pid)
}

pub fn read_at(proc_root: &Path, pid: u32) -> Option<ProcEntry> {
    let dir = proc_root.join(pid.to_string());
    let status = fs::read_to_string(dir.join("status")).ok()?;
    let mut entry = ProcEntry {
        pid,
        ..Default::default()
    };
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("PPid:") {
            entry.ppid = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Uid:") {
            entry.uid = v
                .split_whitespace()
                .next()
                .and_then(|u| u.parse().ok())
                .unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Name:") {
            entry.comm = v.trim().to_string();
        }
    }
    entry.path = fs::read_link(dir.join("exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Ok(cmdline) = fs::read(dir.join("cmdline")) {
        entry.argv = crate::linux::decode::argv(&cmdline);
    }
    entry.cgroup = fs::read_to_string(dir.join("cgroup")).unwrap_or_default();
    entry.namespaces = namespaces_at(&dir);
    Some(entry)
}

/// The namespace ids of the process whose `/proc` directory is `dir` (0 where unreadable).
pub fn namespaces_at(dir: &Path) -> Namespaces {
    // `pid:[4026531836]`
    let id = |name: &str| {
        fs::read_link(dir.join("ns").join(name))
            .ok()
            .and_then(|l| {
                let l = l.to_string_lossy().into_owned();
                l.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
            })
            .unwrap_or(0)
    };
    Namespaces {
        pid: id("pid"),
        mnt: id("mnt"),
        net: id("net"),
    }
}

/// Every process id under `/proc`.
pub fn pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_itself() {
        let me = std::process::id();
        let e = read(me).expect("own /proc entry");
        assert_eq!(e.pid, me);
        assert_eq!(e.ppid, nix::unistd::getppid().as_raw() as u32);
        assert_eq!(e.uid, nix::unistd::getuid().as_raw());
        assert_eq!(&*e.path, std::env::current_exe().unwrap().to_string_lossy());
        assert!(!e.argv.is_empty());
        assert!(e.cgroup.contains("0::/"), "{}", e.cgroup);
        assert!(e.namespaces.pid != 0 && e.namespaces.mnt != 0 && e.namespaces.net != 0);
        assert!(pids().contains(&me));
        assert!(read(u32::MAX - 1).is_none());
    }
}
