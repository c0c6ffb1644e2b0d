//! Everything one bench run measured, typed: the machine and the run's circumstances, then each
//! phase's results. The report (table and JSON) is drawn from this and nothing else.
//!
//! May use: bench/phases, bench/host, bench/load, bench/ctx, bench/configs.

use std::collections::BTreeMap;

use super::{
    configs::Config,
    ctx::Startup,
    host::Machine,
    load::OtherLoad,
    phases::{
        conn_sweep::ConnSweep, idle::Idle, kernel_cost::KernelCost, latency::Latency,
        overhead::WorkloadPairs, sweep::Sweep,
    },
};

pub struct Results {
    pub date: String,
    pub machine: Machine,
    pub command: String,
    /// The sensor binary measured.
    pub sensor: String,
    pub quick: bool,
    /// The plan, as Debug prints it.
    pub plan: String,
    pub load_before: String,
    pub load_after: String,
    /// Other processes' CPU use, sampled during the run.
    pub others: Vec<OtherLoad>,
    pub wall_secs: f64,
    /// Configurations that could not run here (or were not selected), and why.
    pub unavailable: BTreeMap<Config, String>,
    /// Whether bpftrace's kprobes work here.
    pub kprobes: String,
    pub idle: Idle,
    /// The overhead phase, in the plan's order of workloads (empty when not run).
    pub overhead: Vec<WorkloadPairs>,
    /// The other phases (None when not run).
    pub kernel: Option<KernelCost>,
    pub sweep: Option<Sweep>,
    pub conn_sweep: Option<ConnSweep>,
    pub latency: Option<Latency>,
    pub startups: Vec<Startup>,
}
