//! Lengths the verifier can prove non-zero and bounded.
//!
//! Helpers such as `bpf_skb_load_bytes` and `bpf_probe_read_user` want a length the verifier
//! knows to lie in `1..=MAX`. Checks in the source are not enough: LLVM merges or drops them
//! (it knows the value is already in range), and the verifier then sees an unbounded or
//! possibly-zero register. This hides the value from LLVM and re-derives the bound with
//! arithmetic the verifier tracks.

/// Returns `n` unchanged for `1 <= n <= MAX` (the caller guarantees it), in a register the
/// verifier knows to be in `1..=MAX`. `MAX` must be a power of two.
#[inline(always)]
pub(crate) fn bounded<const MAX: usize>(n: usize) -> usize {
    let n = core::hint::black_box(n);
    ((n.wrapping_sub(1)) & (MAX - 1)) + 1
}
