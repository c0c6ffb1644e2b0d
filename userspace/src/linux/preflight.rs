//! Checks before loading, each with an error that says what is missing and how to fix it
//! (exit code 3): root, the capabilities that load and attach the programs, the kernel's BTF,
//! the host's PID namespace (in a container: `/proc` must show the host's processes, and the
//! kernel's process ids must be the ones user space sees) and the host's cgroup v2 root.
//! Capabilities that only some identifications need are warned about.
//!
//! Uses: `btf_offsets`, `cgroup`.

use std::{os::unix::fs::MetadataExt as _, path::PathBuf};

use anyhow::{Result, bail};

use crate::linux::{btf_offsets::VMLINUX_BTF, cgroup};

/// What the sensor needs from the host.
pub struct Host {
    pub btf: PathBuf,
    pub cgroup_root: PathBuf,
}

pub fn check() -> Result<Host> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "tunnelwatch must run as root (it loads eBPF programs and attaches them to the root cgroup)"
        );
    }
    capabilities()?;
    let btf = PathBuf::from(VMLINUX_BTF);
    if !btf.exists() {
        bail!(
            "this kernel exposes no BTF at {VMLINUX_BTF}: tunnelwatch reads kernel structure offsets \
             from it (build the kernel with CONFIG_DEBUG_INFO_BTF=y; every distribution kernel from 5.10 on has it)"
        );
    }
    host_pid_namespace()?;
    let cgroup_root = cgroup::v2_root()?;
    raise_memlock_limit();
    Ok(Host { btf, cgroup_root })
}

/// Capability numbers (include/uapi/linux/capability.h).
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Fails when the effective capabilities cannot load and attach the programs (CAP_BPF and
/// CAP_PERFMON, which CAP_SYS_ADMIN implies, load them; CAP_NET_ADMIN, or CAP_SYS_ADMIN,
/// loads and attaches the cgroup_skb ones); warns when those that read other users' processes
/// and files are missing.
fn capabilities() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| anyhow::anyhow!("cannot read /proc/self/status: {e}"))?;
    let Some(effective) = effective_capabilities(&status) else {
        bail!("/proc/self/status has no CapEff line");
    };
    let missing = missing_capabilities(effective);
    if !missing.is_empty() {
        bail!(
            "tunnelwatch runs without {}: it loads eBPF programs (CAP_BPF, CAP_PERFMON) and \
             attaches them to the root cgroup (CAP_NET_ADMIN). Grant them (systemd \
             CapabilityBoundingSet=, podman or docker --cap-add, Kubernetes \
             securityContext.capabilities.add: deploy/ lists what the sensor needs)",
            missing.join(", ")
        );
    }
    let has = |cap: u32| effective & (1 << cap) != 0;
    if !has(CAP_SYS_PTRACE) {
        log::warn!(
            "without CAP_SYS_PTRACE, /proc/PID/exe of other users' processes cannot be read: \
             programs run from memory (memfd) by them are not identified"
        );
    }
    if !has(CAP_DAC_READ_SEARCH) {
        log::warn!(
            "without CAP_DAC_READ_SEARCH, executables that root may not read are not identified"
        );
    }
    Ok(())
}

/// The `CapEff` mask of /proc/self/status text.
fn effective_capabilities(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// What loading and attaching need that `effective` lacks.
fn missing_capabilities(effective: u64) -> Vec<&'static str> {
    let has = |cap: u32| effective & (1 << cap) != 0;
    let admin = has(CAP_SYS_ADMIN);
    [
        (CAP_BPF, "CAP_BPF"),
        (CAP_PERFMON, "CAP_PERFMON"),
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
    ]
    .into_iter()
    .filter(|&(cap, _)| !has(cap) && !admin)
    .map(|(_, name)| name)
    .collect()
}

/// Whether a kernel of this release (`uname -r`) charges BPF maps to RLIMIT_MEMLOCK (before
/// 5.11, which moved them to memory cgroup accounting).
fn charges_memlock(release: &str) -> bool {
    let mut parts = release
        .split(['.', '-', '+'])
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) < (5, 11),
        _ => false,
    }
}

/// The inode of the initial PID namespace (`PROC_PID_INIT_INO`, include/linux/proc_ns.h): the
/// same on every kernel.
const INIT_PID_NAMESPACE_INODE: u64 = 0xEFFF_FFFC;

/// Fails unless this process runs in the host's (initial) PID namespace.
fn host_pid_namespace() -> Result<()> {
    let inode = std::fs::metadata("/proc/self/ns/pid")
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read /proc/self/ns/pid ({e}): tunnelwatch needs the host's /proc \
                 (mount procfs at /proc)"
            )
        })?
        .ino();
    if inode != INIT_PID_NAMESPACE_INODE {
        bail!(
            "this process runs in a private PID namespace (a container's): /proc shows that \
             namespace's processes only and the kernel reports process ids of the host's, so \
             alerts could not name their processes. Run with the host's PID namespace (podman \
             or docker `--pid=host`, Kubernetes `hostPID: true`)"
        );
    }
    Ok(())
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; lift it (harmless on later ones).
/// Without CAP_SYS_RESOURCE a low limit stays, and such a kernel then refuses the maps: said
/// as a warning on those kernels.
fn raise_memlock_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let inf = nix::sys::resource::RLIM_INFINITY;
    if let Err(e) = setrlimit(Resource::RLIMIT_MEMLOCK, inf, inf) {
        let (soft, _) = getrlimit(Resource::RLIMIT_MEMLOCK).unwrap_or((inf, inf));
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        if soft != inf && charges_memlock(&release) {
            log::warn!(
                "cannot lift RLIMIT_MEMLOCK ({} KiB): {e}; kernels before 5.11 charge BPF maps \
                 to it and refuse them (Operation not permitted): grant CAP_SYS_RESOURCE or \
                 raise the limit",
                soft / 1024
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_read_from_the_effective_mask() {
        let status = "Name:\ttunnelwatch\nCapPrm:\t000001ffffffffff\nCapEff:\t000000c000001000\n";
        let eff = effective_capabilities(status).unwrap();
        assert_eq!(
            eff,
            (1 << CAP_BPF) | (1 << CAP_PERFMON) | (1 << CAP_NET_ADMIN)
        );
        assert!(missing_capabilities(eff).is_empty());
        assert_eq!(
            missing_capabilities(1 << CAP_BPF),
            ["CAP_PERFMON", "CAP_NET_ADMIN"]
        );
        // CAP_SYS_ADMIN stands for all three (as the kernel's checks take it).
        assert!(missing_capabilities(1 << CAP_SYS_ADMIN).is_empty());
        assert_eq!(effective_capabilities("CapEff:\tzz\n"), None);
    }

    #[test]
    fn kernels_before_5_11_charge_maps_to_memlock() {
        assert!(charges_memlock("5.10.0-46-cloud-amd64"));
        assert!(!charges_memlock("5.11.0"));
        assert!(!charges_memlock("6.12.118+deb13-cloud-arm64"));
        assert!(!charges_memlock("garbage"));
    }
}
