//! The kernel/user ABI of tunnelwatch.
//!
//! Everything here is `#[repr(C)]`, `no_std` and compiled by both sides: the eBPF programs
//! (`ebpf/`) write these records into the ring buffer, user space (`userspace/`) decodes them.
//! A record starts with a [`RecordHeader`] whose `kind` and `version` tell the decoder what
//! follows; a change of layout bumps [`RECORD_VERSION`].
#![no_std]

pub mod limits;
pub mod offsets;
pub mod records;
pub mod stats;

pub use offsets::KernelOffsets;
pub use records::*;
