//! The tools the bench measures, each an owned value started before a run and stopped after
//! it, whose `Drop` stops what it started (process killed, audit rule deleted, audit settings
//! restored, programs detached), so that an error, a panic or Ctrl-C leaves nothing behind:
//! the tunnelwatch sensor, auditd, bpftrace, and the floor (empty programs on tunnelwatch's
//! hooks).
//!
//! May use: its own files (tools/), which use the bench's lower floors (process, interrupt,
//! clock, bpf) and shell.

pub mod auditd;
pub mod bpftrace;
pub mod floor;
pub mod sensor;
