//! Read-only globals that user space fills in before load (`EbpfLoader::override_global`).
//! The verifier sees them as constants of a frozen map.

use tunnelwatch_common::{KernelOffsets, SensorConfig};

#[unsafe(no_mangle)]
pub(crate) static OFFSETS: KernelOffsets = KernelOffsets {
    task_pid: 0,
    task_tgid: 0,
    task_real_parent: 0,
    task_comm: 0,
    task_mm: 0,
    task_real_cred: 0,
    task_start_boottime: 0,
    task_signal: 0,
    task_loginuid: 0,
    task_exit_code: 0,
    task_group_leader: 0,
    mm_arg_start: 0,
    mm_arg_end: 0,
    mm_exe_file: 0,
    file_f_path: 0,
    file_f_inode: 0,
    path_mnt: 0,
    path_dentry: 0,
    dentry_d_parent: 0,
    dentry_d_name_name: 0,
    vfsmount_mnt_root: 0,
    mount_mnt: 0,
    mount_mnt_parent: 0,
    mount_mnt_mountpoint: 0,
    cred_uid: 0,
    cred_gid: 0,
    cred_euid: 0,
    inode_i_ino: 0,
    inode_i_sb: 0,
    inode_i_mtime_sec: 0,
    inode_i_ctime_sec: 0,
    inode_i_ctime_nsec: 0,
    inode_i_size: 0,
    super_block_s_dev: 0,
    signal_live: 0,
    binprm_filename: 0,
    task_nsproxy: 0,
    nsproxy_mnt_ns: 0,
    nsproxy_net_ns: 0,
    mnt_ns_inum: 0,
    net_ns_inum: 0,
    task_thread_pid: 0,
    pid_level: 0,
    pid_numbers: 0,
    upid_size: 0,
    upid_ns: 0,
    pid_ns_inum: 0,
    task_cgroups: 0,
    css_set_dfl_cgrp: 0,
    cgroup_kn: 0,
    kernfs_node_name: 0,
    kernfs_node_parent: 0,
};

#[unsafe(no_mangle)]
static CONFIG: SensorConfig = SensorConfig {
    self_tgid: 0,
    dns_port_count: 0,
    dns_ports: [0; tunnelwatch_common::limits::DNS_PORTS_MAX],
};

/// Reads one field of [`KernelOffsets`] without letting the compiler fold the zero default.
macro_rules! off {
    ($field:ident) => {{
        // A plain read of a static; volatile so that the loader's value is used.
        #[allow(unused_unsafe)]
        let v = unsafe { core::ptr::read_volatile(&raw const $crate::globals::OFFSETS.$field) };
        v
    }};
}
pub(crate) use off;

#[inline(always)]
pub(crate) fn self_tgid() -> u32 {
    // SAFETY: plain read of a static.
    unsafe { core::ptr::read_volatile(&raw const CONFIG.self_tgid) }
}

/// Whether `port` (host order) is one of the configured DNS ports.
#[inline(always)]
pub(crate) fn is_dns_port(port: u16) -> bool {
    // SAFETY: plain reads of a static.
    let count = unsafe { core::ptr::read_volatile(&raw const CONFIG.dns_port_count) };
    let mut i = 0;
    while i < tunnelwatch_common::limits::DNS_PORTS_MAX {
        if i as u32 >= count {
            return false;
        }
        let p = unsafe { core::ptr::read_volatile(&raw const CONFIG.dns_ports[i]) };
        if p == port {
            return true;
        }
        i += 1;
    }
    false
}
