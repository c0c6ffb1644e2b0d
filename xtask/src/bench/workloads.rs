//! The workloads the bench puts on the machine: each one a [`Workload`] value in its own file
//! (what it is called, its unit, how to run it once), listed in [`ALL`]. The phases run them
//! and never name one, except the goals of the report, which name the workloads they judge.
//!
//! A new workload: a file here with its `Workload` and its
//! run function (and, if it needs a new load generator, a worker in worker/), and one line in
//! [`ALL`]. Nothing else changes: the overhead phase pairs it with every configuration, the
//! kernel-cost phase measures it if `kernel_cost`, the report gives it a row.
//!
//! May use: its own files (workloads/), which use bench/worker, bench/ctx, bench/interrupt.

mod build;
pub mod conn;
mod crate_gen;
pub mod dns;
mod exec;
mod tcp;
mod udp;

use std::{collections::BTreeMap, fmt};

use anyhow::Result;
use serde::Serialize;

use super::ctx::Ctx;

/// One workload.
#[derive(Clone, Copy)]
pub struct Workload {
    /// What `--workloads` takes and results.json is keyed by.
    pub key: &'static str,
    /// What the table says.
    pub name: &'static str,
    /// The unit of [`Sample::value`].
    pub unit: &'static str,
    /// Whether the value is a rate (operations per second, better higher: time per operation
    /// is its inverse) or a duration in seconds (better lower).
    pub rate: bool,
    /// Whether one run takes many seconds: it is repeated only `Plan::slow_reps` times.
    pub slow: bool,
    /// Whether the kernel-cost phase runs it (with bpf_stats on).
    pub kernel_cost: bool,
    /// Runs it once for about `secs` seconds (a slow workload takes what it takes).
    pub run: fn(&Ctx, f64) -> Result<Sample>,
}

impl fmt::Debug for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key)
    }
}

impl PartialEq for Workload {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

/// Every workload, in the table's order.
pub const ALL: [Workload; 9] = [
    exec::EXEC,
    udp::UDP,
    tcp::TCP,
    conn::CONNECT,
    conn::TLS,
    conn::UDP_FLOWS,
    conn::QUIC,
    dns::DNS,
    build::BUILD,
];

/// What one run of a workload measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    /// The workload's metric, in its unit.
    pub value: f64,
    /// Operations done (execs, datagrams sent, MB, queries answered): CPU per operation
    /// divides by it.
    pub ops: f64,
    /// CPU seconds of the workload's processes (their kernel time included).
    pub workload_cpu: f64,
    /// Secondary numbers (sent rate, MB/s, ...).
    pub extra: BTreeMap<&'static str, f64>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_and_names_are_unique() {
        let all = super::ALL;
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert!(a.key != b.key && a.name != b.name, "{a:?} {b:?}");
            }
        }
    }
}
