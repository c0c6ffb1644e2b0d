//! `sched_process_exit`: reported once per process, when its last thread exits, so that user
//! space can retire the process-table entry.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use tunnelwatch_common::{ExitRecord, RecordKind, stats};

use crate::{globals::off, kread, maps, task};

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    // TP_PROTO(struct task_struct *p) (6.x adds `bool group_dead`; not relied on).
    let t: *const u8 = ctx.arg(0);
    // signal->live has been decremented before this tracepoint: 0 means the group is dead.
    let signal = kread::ptr(t, off!(task_signal));
    let live = kread::at::<i32>(signal, off!(signal_live));
    if live != 0 {
        return 0;
    }
    maps::count(stats::EXIT_SEEN);
    let rec = ExitRecord {
        header: maps::header::<ExitRecord>(RecordKind::Exit),
        tgid: task::tgid(t),
        exit_code: kread::at::<u32>(t, off!(task_exit_code)),
        start_ns: task::group_start_ns(t),
    };
    maps::send_lazy(&rec, stats::EXIT_LOST);
    0
}
