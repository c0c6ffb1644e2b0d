//! tunnelwatch's Windows sensor: ETW events normalised to the shared engine's events.
//!
//! ```text
//! kernel session   "tunnelwatch-kernel": Process Start/DCStart/End (command line, user SID)  ─┐
//! user session     "tunnelwatch": Microsoft-Windows-Kernel-Process 1/2 (image path),          ├─ callbacks copy the
//!                                 Microsoft-Windows-DNS-Client 3006/3008,                     │  properties (schema.rs)
//!                                 Microsoft-Windows-Kernel-Network 12/28/42/58 (connects)     ─┘
//!   ─> bounded channel (drops counted) ─> enrich (process table, paths, SIDs, PE version,
//!      names of addresses from DNS answers, UDP flows)
//!   ─> engine (shared rules, allowlist) ─> emitter (shared JSON lines) ─> stdout
//! ```
//!
//! Everything from the copied properties on is OS-neutral and tested on Linux: [`fields`],
//! [`schema`], [`paths`], [`sid`], [`pe_version`], [`dns_results`], [`process_map`],
//! [`dns_map`], [`net_map`], [`udp_flows`], [`connections`], [`process_table`], [`enrich`],
//! [`pipeline`], [`stats`]. The ETW sessions,
//! Win32 look-ups, elevation check, single-instance mutex, console and service plumbing are
//! Windows-only: `consumer`, `elevation`, `instance`, `live_process`, `sensor`, `service`.
//!
//! `.etl` traces are read on any OS ([`etl`], [`lz77`]), their kernel Process events decoded
//! by the same [`process_v4`] decoder the live sensor uses, and mapped by the same enricher
//! ([`replay`]): `tunnelwatch replay FILE.etl`.

pub mod connections;
pub mod dns_map;
pub mod dns_results;
pub mod enrich;
pub mod etl;
pub mod etl_writer;
pub mod fields;
pub mod host;
pub mod loss_counters;
pub mod lz77;
pub mod manifest_payload;
pub mod net_map;
pub mod paths;
pub mod pe_version;
pub mod pipeline;
pub mod process_map;
pub mod process_table;
pub mod process_v4;
pub mod replay;
pub mod schema;
pub mod sid;
pub mod stats;
pub mod udp_flows;

#[cfg(windows)]
pub mod consumer;
#[cfg(windows)]
pub mod elevation;
#[cfg(windows)]
pub mod instance;
#[cfg(windows)]
pub mod live_process;
#[cfg(windows)]
pub mod sensor;
#[cfg(windows)]
pub mod service;
