//! Reads of kernel memory at offsets from the BTF table.
//!
//! They are branch-free on purpose: a failed read yields zero (the helper clears the
//! destination) instead of an `Err` path, which keeps the verifier's state count low in the
//! loops that walk kernel structures.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel;

/// Reads a `T` at `base + off`; zero when the read faults (or `base` is null).
#[inline(always)]
pub(crate) fn at<T: Copy + Default>(base: *const u8, off: u32) -> T {
    let mut v = T::default();
    // SAFETY: bpf_probe_read_kernel copes with any source address; a bad one fails the read
    // and zeroes `v`. The destination is a local of exactly `size_of::<T>()` bytes.
    unsafe {
        bpf_probe_read_kernel(
            (&raw mut v).cast(),
            core::mem::size_of::<T>() as u32,
            base.wrapping_add(off as usize).cast(),
        );
    }
    v
}

/// Reads a pointer at `base + off` (null when the read faults).
#[inline(always)]
pub(crate) fn ptr(base: *const u8, off: u32) -> *const u8 {
    at::<u64>(base, off) as *const u8
}
