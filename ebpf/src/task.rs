//! Reading a task's identity (`struct task_struct`) through the BTF offset table.

use aya_ebpf::helpers::bpf_probe_read_kernel_buf;
use tunnelwatch_common::{TaskInfo, offsets::ABSENT};

use crate::{globals::off, kread};

/// The task that is running now.
#[inline(always)]
pub(crate) fn current() -> *const u8 {
    // SAFETY: a helper without arguments.
    unsafe { aya_ebpf::helpers::bpf_get_current_task() as *const u8 }
}

/// Process id (thread group id) of `task`.
#[inline(always)]
pub(crate) fn tgid(task: *const u8) -> u32 {
    kread::at::<u32>(task, off!(task_tgid))
}

/// Thread id of `task`.
#[inline(always)]
pub(crate) fn pid(task: *const u8) -> u32 {
    kread::at::<u32>(task, off!(task_pid))
}

/// Boot-time start of the thread group leader of `task`: with the tgid, a process identity.
#[inline(always)]
pub(crate) fn group_start_ns(task: *const u8) -> u64 {
    let leader = kread::ptr(task, off!(task_group_leader));
    kread::at::<u64>(leader, off!(task_start_boottime))
}

/// Copies `task->comm` into `out`.
#[inline(always)]
pub(crate) fn comm(task: *const u8, out: &mut [u8; 16]) {
    if task.is_null() {
        return;
    }
    // SAFETY: probe read of 16 bytes into a 16-byte buffer.
    let _ = unsafe { bpf_probe_read_kernel_buf(task.wrapping_add(off!(task_comm) as usize), out) };
}

/// Fills `info` from `task`. `cgroup_id` is the caller's (only the current task's is cheap).
#[inline(always)]
pub(crate) fn fill(task: *const u8, cgroup_id: u64, info: &mut TaskInfo) {
    info.tgid = tgid(task);
    info.pid = pid(task);
    let parent = kread::ptr(task, off!(task_real_parent));
    info.ppid = tgid(parent);
    let cred = kread::ptr(task, off!(task_real_cred));
    info.uid = kread::at::<u32>(cred, off!(cred_uid));
    info.gid = kread::at::<u32>(cred, off!(cred_gid));
    info.euid = kread::at::<u32>(cred, off!(cred_euid));
    let loginuid_off = off!(task_loginuid);
    info.loginuid = if loginuid_off == ABSENT {
        u32::MAX
    } else {
        kread::at::<u32>(task, loginuid_off)
    };
    info.start_ns = group_start_ns(task);
    info.cgroup_id = cgroup_id;
    comm(task, &mut info.comm);
}

/// Fills the fields of `info` that the flow records carry for the current task `task`, whose
/// process id is `tgid`: comm, real uid and gid, and cgroup (the rest stays 0: user space has
/// it from its process table). Fewer reads than [`fill`]: each helper call counts in a
/// program that runs on every connect.
#[inline(always)]
pub(crate) fn fill_lite(task: *const u8, tgid: u32, cgroup_id: u64, info: &mut TaskInfo) {
    info.tgid = tgid;
    // SAFETY: a helper without arguments.
    let ids = unsafe { aya_ebpf::helpers::generated::bpf_get_current_uid_gid() };
    info.uid = ids as u32;
    info.gid = (ids >> 32) as u32;
    info.loginuid = u32::MAX;
    info.cgroup_id = cgroup_id;
    comm(task, &mut info.comm);
}

/// Inode numbers of `task`'s pid, mount and network namespaces (0 where the kernel lacks
/// what leads to one). The pid namespace is the task's own (`thread_pid`'s deepest level),
/// not `nsproxy->pid_ns_for_children`, which `unshare(CLONE_NEWPID)` changes for children
/// only.
#[inline(always)]
pub(crate) fn namespaces(task: *const u8) -> (u32, u32, u32) {
    let mut ids = (0, 0, 0);
    if off!(task_nsproxy) != ABSENT
        && off!(nsproxy_mnt_ns) != ABSENT
        && off!(nsproxy_net_ns) != ABSENT
    {
        let nsproxy = kread::ptr(task, off!(task_nsproxy));
        if off!(mnt_ns_inum) != ABSENT {
            let mnt = kread::ptr(nsproxy, off!(nsproxy_mnt_ns));
            ids.1 = kread::at::<u32>(mnt, off!(mnt_ns_inum));
        }
        if off!(net_ns_inum) != ABSENT {
            let net = kread::ptr(nsproxy, off!(nsproxy_net_ns));
            ids.2 = kread::at::<u32>(net, off!(net_ns_inum));
        }
    }
    if off!(task_thread_pid) != ABSENT
        && off!(pid_level) != ABSENT
        && off!(pid_numbers) != ABSENT
        && off!(upid_size) != ABSENT
        && off!(upid_ns) != ABSENT
        && off!(pid_ns_inum) != ABSENT
    {
        let pid = kread::ptr(task, off!(task_thread_pid));
        // Namespaces nest at most 32 deep (MAX_PID_NS_LEVEL).
        let level = kread::at::<u32>(pid, off!(pid_level)) & 31;
        let at = off!(pid_numbers) + level * off!(upid_size) + off!(upid_ns);
        let ns = kread::ptr(pid, at);
        ids.0 = kread::at::<u32>(ns, off!(pid_ns_inum));
    }
    ids
}

/// The real parent of `task`.
#[inline(always)]
pub(crate) fn real_parent(task: *const u8) -> *const u8 {
    kread::ptr(task, off!(task_real_parent))
}
