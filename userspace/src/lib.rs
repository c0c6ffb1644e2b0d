//! tunnelwatch: the sensor binary's library. The engine is in `tunnelwatch-engine`
//! (`userspace/engine/`); this crate holds the Linux sensor, which feeds it from eBPF.
//!
//! Uses: nothing itself; `main.rs` (the binary) stands on top of its modules.

pub use tunnelwatch_engine as engine;

pub mod commands;
pub mod output;
pub mod rule_source;
pub mod trust;

pub mod linux;
