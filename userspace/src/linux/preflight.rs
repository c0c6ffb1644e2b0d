//! Checks before loading, each with an error that says what is missing and how to fix it.
//!
//! Uses: `btf_offsets`, `cgroup`.

use std::path::PathBuf;

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
    let cgroup_root = cgroup::v2_root()?;
    raise_memlock_limit();
    Ok(Host { btf, cgroup_root })
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; lift it (harmless on later ones).
fn raise_memlock_limit() {
    use nix::sys::resource::{Resource, setrlimit};
    let inf = nix::sys::resource::RLIM_INFINITY;
    if let Err(e) = setrlimit(Resource::RLIMIT_MEMLOCK, inf, inf) {
        log::debug!("cannot raise RLIMIT_MEMLOCK: {e}");
    }
}
