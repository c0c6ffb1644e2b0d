//! The kernel-cost phase: with `kernel.bpf_stats_enabled=1` (restored after), the kernel's own
//! run_time_ns / run_cnt of each program of tunnelwatch (with the floor's empty programs on the
//! same hooks beside it) and of bpftrace, under each workload marked `kernel_cost`.
//!
//! May use: bench/plan, bench/workloads, bench/configs, bench/tools, bench/bpf, bench/host,
//! bench/ctx, bench/interrupt, serde.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use crate::bench::{
    bpf,
    configs::{Config, Running, SETTLE, ToolReport},
    ctx::Ctx,
    host::BpfStatsGuard,
    interrupt::sleep,
    plan::Plan,
    tools::{floor::Floor, sensor::PROGRAMS},
    workloads::Workload,
};

/// What one program cost in one workload.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ProgramCost {
    pub run_cnt: u64,
    pub run_time_ns: u64,
    pub ns_per_run: f64,
}

/// One workload under one tool: the workload's value and each program's cost.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadCost {
    pub value: f64,
    pub unit: &'static str,
    pub programs: BTreeMap<String, ProgramCost>,
}

/// One tool: its programs' costs by workload key, and what it reported when it stopped.
#[derive(Clone, Debug, Serialize)]
pub struct ToolCost {
    #[serde(flatten)]
    pub workloads: BTreeMap<&'static str, WorkloadCost>,
    pub tool: Option<ToolReport>,
}

/// By tool name (tunnelwatch, bpftrace).
pub type KernelCost = BTreeMap<&'static str, ToolCost>;

/// The ns per run of `programs` together (their run time over their runs) in workload `key`
/// under tunnelwatch; None when not measured or never run.
pub fn cost_ns(k: &KernelCost, key: &str, programs: &[&str]) -> Option<f64> {
    let p = &k
        .get(Config::Tunnelwatch.name())?
        .workloads
        .get(key)?
        .programs;
    let (mut ns, mut cnt) = (0u64, 0u64);
    for name in programs {
        let c = p.get(*name)?;
        ns += c.run_time_ns;
        cnt += c.run_cnt;
    }
    (cnt > 0).then(|| ns as f64 / cnt as f64)
}

/// The run time of `programs` per run of `per` in workload `key` under tunnelwatch (e.g. the
/// exec, fork and exit programs' time per exec).
pub fn cost_per_run_of(k: &KernelCost, key: &str, programs: &[&str], per: &str) -> Option<f64> {
    let p = &k
        .get(Config::Tunnelwatch.name())?
        .workloads
        .get(key)?
        .programs;
    let runs = p.get(per)?.run_cnt;
    let ns: u64 = programs
        .iter()
        .filter_map(|n| p.get(*n))
        .map(|c| c.run_time_ns)
        .sum();
    (runs > 0).then(|| ns as f64 / runs as f64)
}

pub fn run(ctx: &Ctx, plan: &Plan, available: &[Config]) -> Result<KernelCost> {
    eprintln!("bench: kernel cost (kernel.bpf_stats_enabled=1)");
    let _stats = BpfStatsGuard::enable()?;
    let workloads: Vec<Workload> = crate::bench::workloads::ALL
        .into_iter()
        .filter(|w| w.kernel_cost)
        .collect();
    let mut out = KernelCost::new();
    for config in [Config::Tunnelwatch, Config::Bpftrace] {
        if !available.contains(&config) {
            continue;
        }
        let tool = Running::start(ctx, config)?;
        // The statistics' floor: empty programs on the same hooks, beside tunnelwatch's.
        let floor = if config == Config::Tunnelwatch {
            Floor::attach()
                .inspect_err(|e| {
                    eprintln!("bench: cannot attach the empty calibration programs: {e:#}")
                })
                .ok()
        } else {
            None
        };
        let ids: Vec<(String, u32)> = match &tool {
            Running::Tunnelwatch(s) => s
                .program_ids
                .iter()
                .enumerate()
                .map(|(i, &id)| {
                    (
                        PROGRAMS.get(i).map_or_else(|| name(id), |n| n.to_string()),
                        id,
                    )
                })
                .chain(floor.iter().flat_map(|f| f.programs.iter().cloned()))
                .collect(),
            Running::Bpftrace(b) => b.program_ids.iter().map(|&id| (name(id), id)).collect(),
            _ => Vec::new(),
        };
        sleep(SETTLE)?;
        let mut cost = ToolCost {
            workloads: BTreeMap::new(),
            tool: None,
        };
        for w in &workloads {
            let before: Vec<bpf::Program> = ids.iter().map(|(_, id)| stats(*id)).collect();
            let sample = (w.run)(ctx, plan.kernel_secs)?;
            let after: Vec<bpf::Program> = ids.iter().map(|(_, id)| stats(*id)).collect();
            let programs: BTreeMap<String, ProgramCost> = ids
                .iter()
                .zip(before.iter().zip(&after))
                .map(|((name, _), (b, a))| {
                    let ns = a.run_time_ns.saturating_sub(b.run_time_ns);
                    let cnt = a.run_cnt.saturating_sub(b.run_cnt);
                    let ns_per_run = if cnt > 0 {
                        ns as f64 / cnt as f64
                    } else {
                        f64::NAN
                    };
                    (
                        name.clone(),
                        ProgramCost {
                            run_cnt: cnt,
                            run_time_ns: ns,
                            ns_per_run,
                        },
                    )
                })
                .collect();
            eprintln!(
                "bench: kernel cost / {} / {}: {}",
                config.name(),
                w.name,
                programs
                    .iter()
                    .map(|(n, c)| format!("{n} {:.0} ns x {}", c.ns_per_run, c.run_cnt))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            cost.workloads.insert(
                w.key,
                WorkloadCost {
                    value: sample.value,
                    unit: w.unit,
                    programs,
                },
            );
        }
        drop(floor);
        cost.tool = tool.stop()?;
        out.insert(config.name(), cost);
    }
    Ok(out)
}

/// A program's statistics now (zeros when it is gone).
fn stats(id: u32) -> bpf::Program {
    bpf::program(id).unwrap_or_default()
}

/// A program's name as the kernel has it.
fn name(id: u32) -> String {
    bpf::program(id)
        .map(|p| p.name)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("prog {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_per_run_and_per_exec() {
        let prog = |run_cnt, run_time_ns| ProgramCost {
            run_cnt,
            run_time_ns,
            ns_per_run: f64::NAN,
        };
        let exec = WorkloadCost {
            value: 0.0,
            unit: "execs/s",
            programs: [
                ("sched_process_exec".to_string(), prog(100, 700_000)),
                ("sched_process_fork".to_string(), prog(100, 100_000)),
                ("sched_process_exit".to_string(), prog(200, 240_000)),
                ("empty_exec".to_string(), prog(100, 6_000)),
            ]
            .into(),
        };
        let k: KernelCost = [(
            "tunnelwatch",
            ToolCost {
                workloads: [("exec", exec)].into(),
                tool: None,
            },
        )]
        .into();
        assert_eq!(cost_ns(&k, "exec", &["sched_process_exec"]), Some(7000.0));
        assert_eq!(cost_ns(&k, "exec", &["empty_exec"]), Some(60.0));
        assert_eq!(
            cost_ns(&k, "exec", &["sched_process_exec", "empty_exec"]),
            Some(3530.0)
        );
        assert_eq!(cost_ns(&k, "udp", &["dns_egress"]), None);
        let all = [
            "sched_process_exec",
            "sched_process_fork",
            "sched_process_exit",
        ];
        assert_eq!(
            cost_per_run_of(&k, "exec", &all, "sched_process_exec"),
            Some(10_400.0)
        );
    }
}
