//! Checks before loading, each with an error that says what is missing and how to fix it
//! (exit code 3): root, the kernel's BTF, the host's PID namespace (in a container: `/proc`
//! must show the host's processes, and the kernel's process ids must be the ones user space
//! sees) and the host's cgroup v2 root.
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
fn raise_memlock_limit() {
    use nix::sys::resource::{Resource, setrlimit};
    let inf = nix::sys::resource::RLIM_INFINITY;
    if let Err(e) = setrlimit(Resource::RLIMIT_MEMLOCK, inf, inf) {
        log::debug!("cannot raise RLIMIT_MEMLOCK: {e}");
    }
}
