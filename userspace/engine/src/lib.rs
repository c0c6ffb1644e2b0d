//! tunnelwatch's engine. It knows no operating system: the Linux sensor (`tunnelwatch`
//! crate, `userspace/src/linux`), the Windows sensor (`etw/`) and `replay` all hand it the same
//! [`event::Event`]s and print what it returns.

pub mod event;
pub mod dns;
