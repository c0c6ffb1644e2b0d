//! tunnelwatch's engine. It knows no operating system: the Linux sensor (`tunnelwatch`
//! crate, `userspace/src/linux`), the Windows sensor (`etw/`) and `replay` all hand it the same
//! [`event::Event`]s and print what it returns.

pub mod alert;
pub mod allowlist;
pub mod builtin;
mod condition;
pub mod config;
mod detection;
pub mod dns;
pub mod emit;
pub mod engine;
pub mod error;
pub mod event;
pub mod field;
pub mod filter;
pub mod line;
mod matcher;
mod modifier;
mod pattern;
pub mod replay;
pub mod rule;
pub mod rule_tests;
pub mod ruleset;
pub mod stats;
pub mod step;
pub mod template;
pub mod test_case;
mod yaml;
