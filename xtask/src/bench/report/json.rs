//! `target/bench/results.json`: the run's results as one document, every number the table
//! shows and the samples behind it (each pair of the overhead phase with its two values and its
//! slowdown), serialised from typed structs.
//!
//! May use: bench/results, bench/phases, bench/configs, bench/workloads, bench/stats,
//! bench/host, bench/load, bench/ctx, report/summary, report/goals, serde.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{goals::Goal, summary::WorkloadSummary};
use crate::bench::{
    configs::Config,
    ctx::Startup,
    host::Machine,
    load::OtherLoad,
    phases::{
        conn_sweep::ConnSweep,
        idle::Idle,
        kernel_cost::KernelCost,
        latency::Latency,
        overhead::{Pair, ToolSample},
        sweep::Sweep,
    },
    results::Results,
    stats::Spread,
};

const SLOWDOWN_DEFINITION: &str = "per alternating pair (a bare run and a run with the tool, back to back, which first alternating from one repetition to the next, configurations taking turns): (time per operation with the tool) / (time per operation bare) - 1; slowdown is the spread of the pairs (median, min, max)";

#[derive(Serialize)]
struct Document<'a> {
    date: &'a str,
    machine: &'a Machine,
    command: &'a str,
    sensor: &'a str,
    quick: bool,
    plan: &'a str,
    load_average: LoadAverage<'a>,
    other_processes_cpu_percent: &'a [OtherLoad],
    wall_secs: f64,
    unavailable: BTreeMap<&'static str, &'a str>,
    kprobes: &'a str,
    slowdown_definition: &'static str,
    workloads: BTreeMap<&'static str, Workload<'a>>,
    kernel_cost: &'a Option<KernelCost>,
    dns_zero_loss: &'a Option<Sweep>,
    connection_zero_loss: &'a Option<ConnSweep>,
    latency: &'a Option<Latency>,
    memory: Memory<'a>,
    startup_ms: &'a [Startup],
    goals: &'a [Goal],
}

#[derive(Serialize)]
struct LoadAverage<'a> {
    before: &'a str,
    after: &'a str,
}

#[derive(Serialize)]
struct Workload<'a> {
    name: &'static str,
    unit: &'static str,
    /// The empty hooks' slowdown: the floor beside tunnelwatch's.
    floor: Option<Spread>,
    /// tunnelwatch's median slowdown minus the floor's, percentage points.
    tunnelwatch_above_floor_pp: Option<f64>,
    configs: BTreeMap<&'static str, ConfigEntry<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ConfigEntry<'a> {
    Unavailable { na: &'a str },
    Failed { failed: String },
    Measured(Box<Measured<'a>>),
}

#[derive(Serialize)]
struct Measured<'a> {
    value: Spread,
    samples: &'a [f64],
    slowdown: Option<Spread>,
    slowdown_samples: &'a [f64],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pairs: Vec<PairEntry>,
    cpu_us_per_op: Option<Spread>,
    cpu_increase: Option<Spread>,
    cpu_increase_samples: &'a [f64],
    extra: BTreeMap<&'static str, Spread>,
    tool: Vec<&'a ToolSample>,
    error: Option<&'a str>,
}

/// One pair, as it ran.
#[derive(Serialize)]
struct PairEntry {
    /// The repetition, from 1.
    rep: usize,
    /// Which ran first: "bare" or the configuration.
    first: &'static str,
    /// The two values (None: that run failed).
    bare: Option<f64>,
    with: Option<f64>,
    slowdown: Option<f64>,
    cpu_increase: Option<f64>,
}

#[derive(Serialize)]
struct Memory<'a> {
    idle: &'a Idle,
    /// The sensor's highest VmRSS and VmHWM in each workload.
    #[serde(flatten)]
    by_workload: BTreeMap<&'static str, RssHwm>,
}

#[derive(Serialize)]
struct RssHwm {
    rss_kib: u64,
    hwm_kib: u64,
}

pub fn document(
    r: &Results,
    summaries: &[WorkloadSummary],
    goals: &[Goal],
) -> serde_json::Result<serde_json::Value> {
    let workloads = summaries
        .iter()
        .map(|s| (s.workload.key, workload(r, s)))
        .collect();
    let by_workload = summaries
        .iter()
        .filter_map(|s| {
            let tw = s.get(Config::Tunnelwatch)?;
            Some((
                s.workload.key,
                RssHwm {
                    rss_kib: tw.rss_max_kib?,
                    hwm_kib: tw.hwm_max_kib?,
                },
            ))
        })
        .collect();
    serde_json::to_value(Document {
        date: &r.date,
        machine: &r.machine,
        command: &r.command,
        sensor: &r.sensor,
        quick: r.quick,
        plan: &r.plan,
        load_average: LoadAverage {
            before: &r.load_before,
            after: &r.load_after,
        },
        other_processes_cpu_percent: &r.others,
        wall_secs: r.wall_secs,
        unavailable: r
            .unavailable
            .iter()
            .map(|(c, why)| (c.name(), why.as_str()))
            .collect(),
        kprobes: &r.kprobes,
        slowdown_definition: SLOWDOWN_DEFINITION,
        workloads,
        kernel_cost: &r.kernel,
        dns_zero_loss: &r.sweep,
        connection_zero_loss: &r.conn_sweep,
        latency: &r.latency,
        memory: Memory {
            idle: &r.idle,
            by_workload,
        },
        startup_ms: &r.startups,
        goals,
    })
}

fn workload<'a>(r: &'a Results, s: &'a WorkloadSummary) -> Workload<'a> {
    let mut configs = BTreeMap::new();
    for (c, why) in &r.unavailable {
        configs.insert(c.name(), ConfigEntry::Unavailable { na: why });
    }
    for cs in &s.configs {
        let entry = match cs.value {
            None => ConfigEntry::Failed {
                failed: cs.error.clone().unwrap_or_default(),
            },
            Some(value) => ConfigEntry::Measured(Box::new(Measured {
                value,
                samples: &cs.samples,
                slowdown: cs.slowdown,
                slowdown_samples: &cs.slowdown_samples,
                pairs: cs
                    .pairs
                    .iter()
                    .map(|p| pair(&s.workload, cs.config, p))
                    .collect(),
                cpu_us_per_op: cs.cpu_per_op,
                cpu_increase: cs.cpu_increase,
                cpu_increase_samples: &cs.cpu_increase_samples,
                extra: cs
                    .extra
                    .iter()
                    .filter_map(|(k, v)| Some((*k, Spread::of(v)?)))
                    .collect(),
                tool: cs.runs.iter().map(|r| &r.tool).collect(),
                error: cs.error.as_deref(),
            })),
        };
        configs.insert(cs.config.name(), entry);
    }
    Workload {
        name: s.workload.name,
        unit: s.workload.unit,
        floor: s.floor(),
        tunnelwatch_above_floor_pp: s.above_floor_pp(),
        configs,
    }
}

fn pair(w: &crate::bench::workloads::Workload, c: Config, p: &Pair) -> PairEntry {
    let value = |r: &Result<crate::bench::phases::overhead::Run, String>| {
        r.as_ref().ok().map(|r| r.sample.value)
    };
    PairEntry {
        rep: p.rep + 1,
        first: if p.bare_first { "bare" } else { c.name() },
        bare: value(&p.bare),
        with: value(&p.with),
        slowdown: p.slowdown(w),
        cpu_increase: p.cpu_increase(),
    }
}
