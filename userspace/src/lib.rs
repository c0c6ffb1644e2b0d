//! tunnelwatch: the sensor binary's library. The engine is in `tunnelwatch-engine`
//! (`userspace/engine/`); this crate holds the Linux sensor, which feeds it from eBPF.

pub use tunnelwatch_engine as engine;

pub mod commands;
pub mod output;
pub mod rule_source;

pub mod linux;
