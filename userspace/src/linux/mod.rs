//! The Linux sensor: loads the eBPF programs, reads their records, enriches them into engine
//! events and prints what the engine returns.

pub mod btf_offsets;
pub mod cgroup;
pub mod clock;
pub mod decode;
pub mod enrich;
pub mod identify;
pub mod loader;
pub mod preflight;
pub mod proc_table;
pub mod procfs;
pub mod sensor;
pub mod users;
