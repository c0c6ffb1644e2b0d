//! End-to-end tests: the real `tunnelwatch` binary on the real kernel. Each test starts its own
//! sensor (several run at once, which also proves that sensors coexist), runs real processes
//! and sends real DNS traffic to a responder on 127.0.0.1 / ::1, and checks the exact JSON lines
//! the sensor prints. Nothing leaves loopback.
//!
//! They need root (they load eBPF programs). Not root: they fail and say why, unless
//! TUNNELWATCH_SKIP_E2E=1 is set, which skips them loudly.

//!
//! Linux only (eBPF, /proc, Unix sockets and signals): on other targets this crate is empty,
//! so that `cargo test` builds everywhere.
#![cfg(target_os = "linux")]

mod harness;

mod connections;
mod container;
mod dns;
mod dns_evasion;
mod evasion;
mod exec;
mod identify;
mod in_container;
mod lifecycle;
mod rules;
mod tamper;
mod tunnels;
