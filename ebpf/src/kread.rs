//! Reads of kernel memory at offsets from the BTF table.

use aya_ebpf::helpers::bpf_probe_read_kernel;

/// Reads a `T` at `base + off`. Returns `None` when the read faults or `base` is null.
#[inline(always)]
pub(crate) fn at<T: Copy>(base: *const u8, off: u32) -> Option<T> {
    if base.is_null() {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel copes with any address; a bad one only fails the read.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize).cast::<T>()).ok() }
}

/// Reads a pointer at `base + off` (null when the read faults).
#[inline(always)]
pub(crate) fn ptr(base: *const u8, off: u32) -> *const u8 {
    at::<*const u8>(base, off).unwrap_or(core::ptr::null())
}
