//! `sched_process_fork`: a new process (not a new thread). User space copies the parent's
//! entry in its process table, so a child that never execs is still named.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use tunnelwatch_common::{ForkRecord, RecordKind, stats};

use crate::{maps, task};

#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    // TP_PROTO(struct task_struct *parent, struct task_struct *child)
    let parent: *const u8 = ctx.arg(0);
    let child: *const u8 = ctx.arg(1);
    let child_tgid = task::tgid(child);
    if child_tgid != task::pid(child) {
        // A thread: same process.
        return 0;
    }
    maps::count(stats::FORK_SEEN);
    let rec = ForkRecord {
        header: maps::header::<ForkRecord>(RecordKind::Fork),
        parent_tgid: task::tgid(parent),
        child_tgid,
        parent_start_ns: task::group_start_ns(parent),
        child_start_ns: task::group_start_ns(child),
    };
    maps::send_lazy(&rec, stats::FORK_LOST);
    0
}
