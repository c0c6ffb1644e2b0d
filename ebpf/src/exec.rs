//! `sched_process_exec`: one record per successful exec of any kind (execve, execveat,
//! fexecve, scripts, binfmt_misc). At this point `current` is the new program: its argument
//! area is resident in its own mm, so argv is read from there and cannot be paged out or
//! rewritten by the caller.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user},
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use tunnelwatch_common::{
    ExecRecord, RECORD_VERSION, RecordKind,
    limits::{ARGS_MAX, EXEC_DATA_SIZE, FILENAME_MAX},
    records::exec_flags,
    stats,
};

use aya_log_ebpf::{debug, error};

use crate::{bounded::bounded, cgroup_path, exe_path, globals::off, kread, maps, task};

/// Page size of every architecture this runs on (x86_64, aarch64 with 4K pages).
const PAGE_SIZE: usize = 4096;
/// The bits of a ctime's nanoseconds that hold nanoseconds (below 2^30).
const CTIME_NSEC_MASK: u32 = (1 << 30) - 1;

#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    // TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
    let task: *const u8 = ctx.arg(0);
    let bprm: *const u8 = ctx.arg(2);
    handle(&ctx, task, bprm);
    0
}

#[inline(always)]
fn handle(ctx: &RawTracePointContext, task: *const u8, bprm: *const u8) {
    maps::count(stats::EXEC_SEEN);
    let Some(rec) = maps::EXEC_SCRATCH.get_ptr_mut(0) else {
        maps::count(stats::SCRATCH_MISSING);
        error!(ctx, "exec: per-CPU scratch buffer missing");
        return;
    };
    // SAFETY: the per-CPU scratch value is ours for the duration of this program.
    let rec: &mut ExecRecord = unsafe { &mut *rec };

    rec.header.kind = RecordKind::Exec as u8;
    rec.header.version = RECORD_VERSION;
    // SAFETY: helpers without pointer arguments.
    rec.header.boot_ns = unsafe { bpf_ktime_get_boot_ns() };
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    task::fill(task, cgroup_id, &mut rec.task);
    let parent = task::real_parent(task);
    task::comm(parent, &mut rec.parent_comm);
    rec.parent_start_ns = task::group_start_ns(parent);
    rec.flags = 0;

    let data = rec.data.as_mut_ptr();
    let mm = kread::ptr(task, off!(task_mm));

    // Arguments.
    let arg_start = kread::at::<u64>(mm, off!(mm_arg_start));
    let arg_end = kread::at::<u64>(mm, off!(mm_arg_end));
    let total = arg_end.saturating_sub(arg_start);
    rec.args_total = if total > u32::MAX as u64 {
        u32::MAX
    } else {
        total as u32
    };
    let mut want = total as usize;
    if want > ARGS_MAX {
        want = ARGS_MAX;
        rec.flags |= exec_flags::ARGS_TRUNCATED;
        maps::count(stats::ARGS_TRUNCATED);
    }
    let (args_len, complete) = read_args(data, arg_start, want);
    if !complete {
        rec.flags |= exec_flags::ARGS_FAULT;
        maps::count(stats::ARGS_FAULT);
        debug!(
            ctx,
            "exec: pid {}: argument area partly unreadable ({} of {} bytes)",
            rec.task.tgid,
            args_len,
            want
        );
    }
    rec.args_len = args_len as u32;

    // Filename given to exec (relative, a symlink, /dev/fd/N, or a script's path).
    let filename = kread::ptr(bprm, off!(binprm_filename));
    let pos = args_len & (EXEC_DATA_SIZE - 1);
    // SAFETY: `pos < EXEC_DATA_SIZE`; the data area has FILENAME_MAX bytes of slack.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            data.wrapping_add(pos).cast(),
            FILENAME_MAX as u32,
            filename.cast(),
        )
    };
    let filename_len = if n > 0 { n as u32 } else { 0 };
    if filename_len as usize == FILENAME_MAX {
        rec.flags |= exec_flags::FILENAME_TRUNCATED;
    }
    rec.filename_len = filename_len;

    // Executable: identity and path.
    let exe = kread::ptr(mm, off!(mm_exe_file));
    if exe.is_null() {
        rec.flags |= exec_flags::NO_EXE;
    }
    let inode = kread::ptr(exe, off!(file_f_inode));
    rec.exe_ino = kread::at::<u64>(inode, off!(inode_i_ino));
    rec.exe_mtime = kread::at::<u64>(inode, off!(inode_i_mtime_sec));
    rec.exe_ctime = kread::at::<u64>(inode, off!(inode_i_ctime_sec));
    // 6.13+ keeps a flag (I_CTIME_QUERIED) in bit 31 of the nanoseconds.
    rec.exe_ctime_nsec = kread::at::<u32>(inode, off!(inode_i_ctime_nsec)) & CTIME_NSEC_MASK;
    rec.exe_size = kread::at::<u64>(inode, off!(inode_i_size));
    let sb = kread::ptr(inode, off!(inode_i_sb));
    rec.exe_dev = kread::at::<u32>(sb, off!(super_block_s_dev));
    let walk = exe_path::walk(exe, data, args_len as u32 + filename_len);
    if walk.truncated {
        rec.flags |= exec_flags::PATH_TRUNCATED;
        maps::count(stats::PATH_TRUNCATED);
    }
    rec.path_len = walk.len;

    // Where it runs: namespaces and the cgroup's names (a container's id is among them).
    (rec.pid_ns, rec.mnt_ns, rec.net_ns) = task::namespaces(task);
    let cgroup = cgroup_path::walk(task, data, args_len as u32 + filename_len + walk.len);
    if cgroup.truncated {
        rec.flags |= exec_flags::CGROUP_TRUNCATED;
    }
    rec.cgroup_len = cgroup.len;

    let used = (args_len as u32 + filename_len + walk.len + cgroup.len) as usize;
    let size = ExecRecord::DATA_OFFSET + (used & (EXEC_DATA_SIZE - 1));
    rec.header.size = size as u32;
    maps::submit((rec as *const ExecRecord).cast(), size, stats::EXEC_LOST);
}

/// Copies `want` (at most `ARGS_MAX`) bytes of the argument area at user address `src` into
/// `data`. Returns how many bytes were read: all of them or, in the rare case that part of the
/// area cannot be read, what lies on its first page; and whether the first, whole read worked.
/// The flag, not `len < want`, tells the caller: the 5.10 and 6.1 verifiers cannot see that
/// `want (a constant) > first_page (1..=4096)` always holds, walk the dead branch with
/// impossible bounds, and then refuse `data + len` as a scalar (6.12 on prune that branch).
#[inline(always)]
fn read_args(data: *mut u8, src: u64, want: usize) -> (usize, bool) {
    if want == 0 || want > ARGS_MAX {
        return (0, want == 0);
    }
    // 1 <= want <= ARGS_MAX, in a form the verifier can follow.
    let want = bounded::<ARGS_MAX>(want);
    // SAFETY: `0 < want <= ARGS_MAX <= EXEC_DATA_SIZE`; a fault only fails the read.
    let rc = unsafe { bpf_probe_read_user(data.cast(), want as u32, src as *const _) };
    if rc == 0 {
        return (want, true);
    }
    let mut first_page = PAGE_SIZE - (src as usize & (PAGE_SIZE - 1));
    if first_page > want {
        first_page = want;
    }
    if first_page == 0 {
        return (0, false);
    }
    let first_page = bounded::<PAGE_SIZE>(first_page);
    // SAFETY: `0 < first_page <= PAGE_SIZE <= EXEC_DATA_SIZE`.
    let rc = unsafe { bpf_probe_read_user(data.cast(), first_page as u32, src as *const _) };
    if rc == 0 {
        (first_page, false)
    } else {
        (0, false)
    }
}
