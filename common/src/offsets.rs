//! Kernel structure offsets, read from BTF by user space at load time and handed to the
//! eBPF programs as a read-only global. Rust eBPF has no `preserve_access_index`, so the
//! programs never hard-code a field offset: every read of a kernel structure goes through
//! this table.

/// Marks a field that this kernel does not have (for example `loginuid` without
/// `CONFIG_AUDIT`). The kernel side then leaves the value at its default.
pub const ABSENT: u32 = u32::MAX;

/// Byte offsets of the kernel fields the programs read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_comm: u32,
    pub task_mm: u32,
    pub task_real_cred: u32,
    /// `start_boottime` (5.5+) or `real_start_time` (older).
    pub task_start_boottime: u32,
    pub task_signal: u32,
    pub task_loginuid: u32,
    pub task_exit_code: u32,
    pub task_group_leader: u32,

    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub mm_exe_file: u32,

    pub file_f_path: u32,
    pub file_f_inode: u32,
    pub path_mnt: u32,
    pub path_dentry: u32,

    pub dentry_d_parent: u32,
    /// `dentry.d_name` plus `qstr.name`: the pointer to the component's bytes.
    pub dentry_d_name_name: u32,

    pub vfsmount_mnt_root: u32,
    /// Offset of the `struct vfsmount mnt` embedded in `struct mount`.
    pub mount_mnt: u32,
    pub mount_mnt_parent: u32,
    pub mount_mnt_mountpoint: u32,

    pub cred_uid: u32,
    pub cred_gid: u32,
    pub cred_euid: u32,

    pub inode_i_ino: u32,
    pub inode_i_sb: u32,
    /// Seconds of the inode's mtime: `i_mtime_sec` (6.7+), `__i_mtime` (6.6) or `i_mtime`
    /// (older), a `timespec64` whose first field is the seconds.
    pub inode_i_mtime_sec: u32,
    /// Seconds of the inode's ctime: `i_ctime_sec` (6.11+), `__i_ctime` (6.6 to 6.10) or
    /// `i_ctime` (older).
    pub inode_i_ctime_sec: u32,
    /// Nanoseconds of the ctime: `i_ctime_nsec` (6.11+), else the `tv_nsec` of the
    /// `timespec64` above (8 bytes after its seconds).
    pub inode_i_ctime_nsec: u32,
    /// `i_size`, the file's size in bytes.
    pub inode_i_size: u32,
    pub super_block_s_dev: u32,

    /// `signal_struct.live` (an `atomic_t`): 0 once the whole thread group is exiting.
    pub signal_live: u32,

    pub binprm_filename: u32,

    /// Namespaces: `task_struct.nsproxy`, its `mnt_ns` and `net_ns`, and the `ns.inum` of a
    /// `mnt_namespace` and a `net`; the task's own pid namespace through `thread_pid`
    /// (`pid.numbers[pid.level].ns`) and a `pid_namespace`'s `ns.inum`. [`ABSENT`] when the
    /// kernel lacks one: the namespace is then sent as 0.
    pub task_nsproxy: u32,
    pub nsproxy_mnt_ns: u32,
    pub nsproxy_net_ns: u32,
    pub mnt_ns_inum: u32,
    pub net_ns_inum: u32,
    pub task_thread_pid: u32,
    pub pid_level: u32,
    pub pid_numbers: u32,
    /// Size of a `struct upid` and the offset of its `ns`.
    pub upid_size: u32,
    pub upid_ns: u32,
    pub pid_ns_inum: u32,

    /// The task's cgroup in the default hierarchy: `task_struct.cgroups` (a `css_set`), its
    /// `dfl_cgrp`, the cgroup's `kn` (a `kernfs_node`) and the node's `name` and parent
    /// (`__parent` since 6.15, `parent` before). [`ABSENT`] when the kernel lacks one: no
    /// names are sent.
    pub task_cgroups: u32,
    pub css_set_dfl_cgrp: u32,
    pub cgroup_kn: u32,
    pub kernfs_node_name: u32,
    pub kernfs_node_parent: u32,
}

#[cfg(feature = "user")]
// SAFETY: plain old data, `#[repr(C)]`, only `u32` fields and no padding.
unsafe impl aya::Pod for KernelOffsets {}
