//! The machine the bench runs on: its facts for the report (CPU, kernel, memory, load, date),
//! what it must have or wait for (auditd and bpftrace installed, a quiet load), what could
//! disturb the figures (another tunnelwatch's programs, kprobes), and the settings the bench
//! changes for a while and restores when the guard is dropped (tracefs mounted,
//! kernel.bpf_stats_enabled, its scratch directory).
//!
//! May use: shell, packages, bench/bpf, bench/interrupt, serde, humantime.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::{bpf, interrupt::sleep};
use crate::{packages, shell::capture};

/// What the report says of the machine.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub memory_mib: u64,
    pub hostname: String,
}

pub fn machine() -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let mem_kib = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .and_then(|k| k.parse::<u64>().ok())
        .unwrap_or(0);
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu,
        kernel: capture("uname", &["-r"]).unwrap_or_default().trim().into(),
        memory_mib: mem_kib / 1024,
        hostname: capture("hostname", &[]).unwrap_or_default().trim().into(),
    }
}

/// Now, UTC, to the second (`2026-11-23T06:16:00Z`).
pub fn date() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// The three load averages, as /proc/loadavg has them.
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits until the 1-minute load average is below `max` (at most 30 minutes).
pub fn wait_for_load(max: f64) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(1800);
    loop {
        let now: f64 = loadavg()
            .split_whitespace()
            .next()
            .and_then(|l| l.parse().ok())
            .unwrap_or(0.0);
        if now < max {
            return Ok(());
        }
        if Instant::now() > until {
            eprintln!("bench: load average still {now} after 30 minutes; going on");
            return Ok(());
        }
        eprintln!("bench: load average {now} >= {max}; waiting");
        sleep(Duration::from_secs(30))?;
    }
}

/// Installs auditd and bpftrace from Debian when missing; a failure only makes them n/a.
pub fn install_comparators() {
    if let Err(e) = packages::install(&["auditd", "bpftrace"]) {
        eprintln!("bench: warning: cannot install auditd and bpftrace ({e:#}); they will be n/a");
    }
}

/// BPF programs of other tunnelwatch sensors (dns_egress/dns_ingress on the cgroup root).
pub fn foreign_tunnelwatch_programs() -> usize {
    bpf::programs()
        .iter()
        .filter(|p| matches!(p.name.as_str(), "dns_egress" | "dns_ingress"))
        .count()
}

/// Whether kprobe-based bpftrace probes could run here (the one-liner uses tracepoints only).
pub fn kprobe_note() -> String {
    let out = Command::new("timeout")
        .args(["20", "bpftrace", "-e", "kprobe:vfs_read { exit(); }"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let config = Command::new("sh")
        .args([
            "-c",
            "zcat /proc/config.gz 2>/dev/null | grep -E '^(# )?CONFIG_KPROBES[= ]'",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    match out {
        Ok(o) if o.status.success() => format!("kprobes work ({config})"),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let err = err
                .lines()
                .filter(|l| !l.contains("RLIMIT_MEMLOCK"))
                .collect::<Vec<_>>()
                .join(" ");
            format!(
                "kprobes unavailable ({config}): bpftrace says: {}",
                err.trim()
            )
        }
        Err(e) => format!("cannot run bpftrace: {e}"),
    }
}

/// A directory, removed when dropped.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    /// Creates it afresh.
    pub fn create(path: PathBuf) -> Result<ScratchDir> {
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Mounts tracefs at /sys/kernel/tracing when it is not there (bpftrace's tracepoints need
/// it), and unmounts it when dropped.
pub struct TracefsGuard(bool);

impl TracefsGuard {
    pub fn mount() -> TracefsGuard {
        if Path::new("/sys/kernel/tracing/events").exists() {
            return TracefsGuard(false);
        }
        let ok = Command::new("mount")
            .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            eprintln!("bench: mounted tracefs on /sys/kernel/tracing (unmounted at the end)");
        }
        TracefsGuard(ok)
    }
}

impl Drop for TracefsGuard {
    fn drop(&mut self) {
        if self.0 {
            let _ = Command::new("umount").arg("/sys/kernel/tracing").status();
        }
    }
}

/// Sets kernel.bpf_stats_enabled and restores the old value when dropped.
pub struct BpfStatsGuard(String);

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStatsGuard {
    pub fn enable() -> Result<BpfStatsGuard> {
        let old =
            fs::read_to_string(BPF_STATS).with_context(|| format!("cannot read {BPF_STATS}"))?;
        fs::write(BPF_STATS, "1").with_context(|| format!("cannot write {BPF_STATS}"))?;
        Ok(BpfStatsGuard(old.trim().to_string()))
    }
}

impl Drop for BpfStatsGuard {
    fn drop(&mut self) {
        let _ = fs::write(BPF_STATS, &self.0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn facts() {
        let d = super::date();
        assert!(
            d.len() == 20 && d.ends_with('Z') && d.as_bytes()[10] == b'T',
            "{d}"
        );
        assert_eq!(super::loadavg().split_whitespace().count(), 3);
        let m = super::machine();
        assert!(m.nproc >= 1 && m.memory_mib > 0 && !m.kernel.is_empty());
    }
}
