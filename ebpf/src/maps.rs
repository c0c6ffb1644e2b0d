//! Maps shared by the programs.

use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
};
use tunnelwatch_common::{
    DnsRecord, ExecRecord, FlightRecord, RECORD_VERSION, RecordHeader, RecordKind, TaskInfo,
    limits::{FLOW_WAKE_COALESCE_NS, WAKE_COALESCE_NS},
    stats,
};

/// Every record for user space. User space sets the size (`--ring-buffer-size`) before load.
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// Fork and exit records. They only keep user space's process table up to date, so they never
/// wake user space themselves (a wake-up is an irq_work, a self-IPI: in a VM, an exit to the
/// hypervisor, several µs): user space drains this ring before each batch of `EVENTS` (a
/// child's fork record is always committed before its exec or packets) and once a second. A
/// ring filling up wakes user space anyway.
#[map]
pub(crate) static LAZY: RingBuf = RingBuf::with_byte_size(LAZY_BYTES, 0);

/// Size of [`LAZY`]: 64 bytes a record (with the ring's header), 8192 records.
pub(crate) const LAZY_BYTES: u32 = 512 << 10;

/// Per-CPU counters, indexed by `tunnelwatch_common::stats`.
#[map]
pub(crate) static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stats::COUNT, 0);

/// Per-CPU scratch space for an exec record (too large for the 512-byte stack).
#[map]
pub(crate) static EXEC_SCRATCH: PerCpuArray<ExecRecord> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU scratch space for a DNS record.
#[map]
pub(crate) static DNS_SCRATCH: PerCpuArray<DnsRecord> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU scratch space for a first-flight record.
#[map]
pub(crate) static FLIGHT_SCRATCH: PerCpuArray<FlightRecord> = PerCpuArray::with_max_entries(1, 0);

/// Socket cookie -> the process last seen sending on it. Names the receiver of a DNS
/// response (ingress runs in softirq context) and the sender of TCP segments that the
/// kernel transmits outside the process's context.
#[map]
pub(crate) static SOCKET_OWNER: LruHashMap<u64, TaskInfo> = LruHashMap::with_max_entries(16384, 0);

/// Adds one to counter `index`.
#[inline(always)]
pub(crate) fn count(index: u32) {
    if let Some(p) = STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU while the program runs.
        unsafe { *p += 1 };
    }
}

/// Boot-time nanoseconds of the last record that woke user space, shared by all CPUs (a
/// racy read-then-write at worst wakes user space twice).
#[map]
static LAST_WAKE: Array<u64> = Array::with_max_entries(1, 0);

/// Flags for a record of the main ring: wake user space only if the last wake-up is at least
/// [`WAKE_COALESCE_NS`] old. A wake-up is an irq_work (a self-IPI; in a VM an exit to the
/// hypervisor): measured at 5.6 µs of the 8.7 µs that `sched_process_exec` cost per exec when
/// every record woke. The records in between are drained by user space's second pass, which it
/// makes `WAKE_COALESCE_NS` after each wake-up. The forced wake-up is needed: after records
/// that did not wake, the ring's own rule (wake when user space has caught up) never fires.
#[inline(always)]
fn wake_flags(coalesce_ns: u64) -> u64 {
    // SAFETY: helper without arguments.
    let now = unsafe { aya_ebpf::helpers::bpf_ktime_get_boot_ns() };
    let Some(last) = LAST_WAKE.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: the map's only slot; a concurrent writer only makes the value a little stale.
    unsafe {
        if now.wrapping_sub(*last) < coalesce_ns {
            BPF_RB_NO_WAKEUP
        } else {
            *last = now;
            BPF_RB_FORCE_WAKEUP
        }
    }
}

/// Sends the first `size` bytes at `data` to user space; counts `lost` when the ring is full.
#[inline(always)]
pub(crate) fn submit(data: *const u8, size: usize, lost: u32) {
    output(data, size, lost, wake_flags(WAKE_COALESCE_NS));
}

/// As [`submit`], for flow and first-flight records: they wake user space only when the last
/// wake-up is [`FLOW_WAKE_COALESCE_NS`] old. User space holds flows longer than that for their
/// first flight anyway, and drains the ring every `FLOW_WAKE_COALESCE_NS` after a wake-up
/// until it finds it empty, so none waits longer than that. At 5,000 connects/s, waking as
/// exec records do cost 0.7 µs per connect (the wake-up's irq_work, amortized).
#[inline(always)]
pub(crate) fn submit_flow(data: *const u8, size: usize, lost: u32) {
    output(data, size, lost, wake_flags(FLOW_WAKE_COALESCE_NS));
}

#[inline(always)]
fn output(data: *const u8, size: usize, lost: u32, flags: u64) {
    // SAFETY: `data` points into a scratch map value at least `size` bytes long; the caller
    // bounds `size` so that the verifier can prove it.
    let rc = unsafe {
        aya_ebpf::helpers::bpf_ringbuf_output(
            &raw const EVENTS as *mut core::ffi::c_void,
            data as *mut core::ffi::c_void,
            size as u64,
            flags,
        )
    };
    if rc != 0 {
        count(lost);
    }
}

/// The header of a fixed-size record of type `T`, stamped now.
#[inline(always)]
pub(crate) fn header<T>(kind: RecordKind) -> RecordHeader {
    RecordHeader {
        kind: kind as u8,
        version: RECORD_VERSION,
        _pad: 0,
        size: core::mem::size_of::<T>() as u32,
        // SAFETY: helper without arguments.
        boot_ns: unsafe { aya_ebpf::helpers::bpf_ktime_get_boot_ns() },
    }
}

/// `bpf_ringbuf_output` flags and `bpf_ringbuf_query` selectors.
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

/// Sends a fixed-size record to [`LAZY`] without waking user space, unless the ring is more
/// than half full; counts `lost` when it is full.
#[inline(always)]
pub(crate) fn send_lazy<T: 'static>(rec: &T, lost: u32) {
    let flags = if LAZY.query(BPF_RB_AVAIL_DATA) > (LAZY_BYTES / 2) as u64 {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    if LAZY.output::<T>(rec, flags).is_err() {
        count(lost);
    }
}
