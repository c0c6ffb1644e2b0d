//! The Linux sensor: loads the eBPF programs, reads their records, enriches them into engine
//! events and prints what the engine returns. Only `settings` (pure parsing of the sensor's
//! own configuration keys) is compiled on every platform: one configuration file serves both
//! sensors.
//!
//! The data flows one way: `loader` attaches, `sensor` reads the rings, `decode` parses records,
//! `enrich` (with `proc_table`, `procfs`, `users`, `identify`, `exec_identity`, `clock`,
//! `dns_stream` for DNS over TCP, and `connections` with `flows` for connections) makes engine
//! events, the engine's step writes lines to `output`. Each file says what it uses; none uses
//! `sensor`.

#[cfg(target_os = "linux")]
pub mod btf_offsets;
#[cfg(target_os = "linux")]
pub mod cgroup;
#[cfg(target_os = "linux")]
pub mod clock;
#[cfg(target_os = "linux")]
pub mod connections;
#[cfg(target_os = "linux")]
pub mod container_path;
#[cfg(target_os = "linux")]
pub mod container_slot;
#[cfg(target_os = "linux")]
pub mod containers;
#[cfg(target_os = "linux")]
pub mod decode;
#[cfg(target_os = "linux")]
pub mod dns_stream;
#[cfg(target_os = "linux")]
pub mod enrich;
#[cfg(target_os = "linux")]
pub mod exec_identity;
#[cfg(target_os = "linux")]
pub mod flows;
#[cfg(target_os = "linux")]
pub mod identify;
#[cfg(target_os = "linux")]
pub mod loader;
#[cfg(target_os = "linux")]
pub mod preflight;
#[cfg(target_os = "linux")]
pub mod proc_table;
#[cfg(target_os = "linux")]
pub mod procfs;
#[cfg(target_os = "linux")]
pub mod runtime_api;
#[cfg(target_os = "linux")]
pub mod sensor;
pub mod settings;
#[cfg(target_os = "linux")]
pub mod users;
