//! The subcommands that do not watch the host: `replay` and `rules`. They use the same engine
//! and the same output as the sensor, and know no operating system.
//!
//! Uses: the engine only (see each command).

pub mod replay;
pub mod rules;
