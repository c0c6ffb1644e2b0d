//! The overhead phase: what each configuration costs each workload, as alternating pairs.
//!
//! A pair is one bare run and one run with the configuration, back to back, so that slow
//! drifts of the machine (other load, caches, frequency) hit both alike; which of the two runs
//! first alternates from one repetition to the next, so that what one run leaves behind for the
//! next (a tool's stop, a warm page cache) favours neither side; and within a repetition the
//! configurations take turns (each repetition starts with the next one), so that none always
//! runs right after another. A pair's slowdown is its time per operation with the tool over
//! its time per operation bare, minus one; the report gives the median of the pairs and their
//! spread (min .. max).
//!
//! May use: bench/plan, bench/workloads, bench/configs, bench/ctx, bench/process,
//! bench/interrupt, bench/stats, serde.

use std::{collections::BTreeMap, time::Instant};

use anyhow::{Result, bail};
use serde::Serialize;

use crate::bench::{
    configs::{Config, Running, SETTLE, ToolReport},
    ctx::Ctx,
    interrupt::{check_interrupted, sleep},
    plan::Plan,
    process,
    stats::{pair_increase, pair_slowdown},
    workloads::{Sample, Workload},
};

/// One run of a workload, with what its configuration's tool did meanwhile.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    #[serde(flatten)]
    pub sample: Sample,
    pub tool: ToolSample,
}

/// The tool's side of a run: its process's CPU and memory, and what it reported.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ToolSample {
    /// Percent of one CPU over the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hwm_kib: Option<u64>,
    #[serde(flatten)]
    pub report: Option<ToolReport>,
}

impl Run {
    /// CPU µs per operation: the workload's processes plus the tool's own process.
    pub fn cpu_per_op_us(&self) -> f64 {
        let s = &self.sample;
        if s.ops > 0.0 {
            (s.workload_cpu + self.tool.cpu_secs.unwrap_or(0.0)) / s.ops * 1e6
        } else {
            f64::NAN
        }
    }
}

/// One alternating pair: a bare run and a run with the configuration, back to back.
#[derive(Clone, Debug)]
pub struct Pair {
    /// The repetition (0-based).
    pub rep: usize,
    /// Whether the bare run came first.
    pub bare_first: bool,
    pub bare: Result<Run, String>,
    pub with: Result<Run, String>,
}

impl Pair {
    /// Both runs, when both succeeded.
    pub fn runs(&self) -> Option<(&Run, &Run)> {
        Some((self.bare.as_ref().ok()?, self.with.as_ref().ok()?))
    }

    /// Time per operation with the configuration over bare, minus one.
    pub fn slowdown(&self, w: &Workload) -> Option<f64> {
        let (b, x) = self.runs()?;
        pair_slowdown(b.sample.value, x.sample.value, w.rate)
    }

    /// CPU per operation (the workload's and the tool's) with the configuration over bare,
    /// minus one.
    pub fn cpu_increase(&self) -> Option<f64> {
        let (b, x) = self.runs()?;
        pair_increase(b.cpu_per_op_us(), x.cpu_per_op_us())
    }
}

/// The pairs of one workload, by configuration, in the order they ran.
#[derive(Clone, Debug)]
pub struct WorkloadPairs {
    pub workload: Workload,
    pub pairs: BTreeMap<Config, Vec<Pair>>,
}

/// One pair to run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slot {
    pub rep: usize,
    pub workload: Workload,
    pub config: Config,
    pub bare_first: bool,
}

/// The order of the phase: repetition by repetition, workload by workload, a pair for each
/// configuration, the configurations taking turns (repetition `r` of workload `i` starts with
/// configuration `r + i`), bare first in every other pair of a configuration.
pub fn schedule(plan: &Plan, configs: &[Config]) -> Vec<Slot> {
    let n = configs.len();
    let mut slots = Vec::new();
    for rep in 0..plan.reps {
        for (wi, &workload) in plan.workloads.iter().enumerate() {
            if workload.slow && rep >= plan.slow_reps {
                continue;
            }
            for k in 0..n {
                let ci = (rep + wi + k) % n;
                slots.push(Slot {
                    rep,
                    workload,
                    config: configs[ci],
                    bare_first: (rep + ci).is_multiple_of(2),
                });
            }
        }
    }
    slots
}

/// Runs the schedule over `configs` (the available ones, bare excepted). A failed bare or
/// tunnelwatch run ends the bench; another configuration's failure is kept in its pair.
pub fn run(ctx: &Ctx, plan: &Plan, configs: &[Config]) -> Result<Vec<WorkloadPairs>> {
    let mut out: Vec<WorkloadPairs> = plan
        .workloads
        .iter()
        .map(|&workload| WorkloadPairs {
            workload,
            pairs: BTreeMap::new(),
        })
        .collect();
    for slot in schedule(plan, configs) {
        let w = &slot.workload;
        let order = if slot.bare_first {
            [Config::Bare, slot.config]
        } else {
            [slot.config, Config::Bare]
        };
        let mut runs = Vec::with_capacity(2);
        for config in order {
            check_interrupted()?;
            let r = measure(ctx, plan, w, config);
            if let Err(e) = &r {
                check_interrupted()?;
                if matches!(config, Config::Bare | Config::Tunnelwatch) {
                    bail!("{} / {}: {e:#}", w.name, config.name());
                }
            }
            log(plan, &slot, config, &r);
            runs.push(r.map_err(|e| format!("{e:#}")));
        }
        let second = runs.pop().expect("two runs");
        let first = runs.pop().expect("two runs");
        let (bare, with) = if slot.bare_first {
            (first, second)
        } else {
            (second, first)
        };
        let pair = Pair {
            rep: slot.rep,
            bare_first: slot.bare_first,
            bare,
            with,
        };
        if let Some(s) = pair.slowdown(w) {
            eprintln!(
                "bench: [{}/{}] {} / {}: pair {:+.1}%",
                slot.rep + 1,
                plan.reps,
                w.name,
                slot.config.name(),
                s * 100.0
            );
        }
        out.iter_mut()
            .find(|p| p.workload == *w)
            .expect("a planned workload")
            .pairs
            .entry(slot.config)
            .or_default()
            .push(pair);
    }
    Ok(out)
}

fn log(plan: &Plan, slot: &Slot, config: Config, r: &Result<Run>) {
    let (rep, w) = (slot.rep + 1, &slot.workload);
    match r {
        Ok(run) => eprintln!(
            "bench: [{rep}/{}] {} / {}: {:.1} {}{}",
            plan.reps,
            w.name,
            config.name(),
            run.sample.value,
            w.unit,
            match run.tool.report.as_ref().map(ToolReport::lost) {
                Some(l) if l > 0 => format!(" (tool lost {l})"),
                _ => String::new(),
            }
        ),
        Err(e) => eprintln!(
            "bench: [{rep}/{}] {} / {}: failed: {e:#}",
            plan.reps,
            w.name,
            config.name()
        ),
    }
}

/// One run of `w` in `config`: the tool started, settled, the workload run, the tool's CPU
/// and memory read, the tool stopped.
pub fn measure(ctx: &Ctx, plan: &Plan, w: &Workload, config: Config) -> Result<Run> {
    let tool = Running::start(ctx, config)?;
    sleep(SETTLE)?;
    let pid = tool.pid();
    let cpu0 = pid.map(process::cpu_secs);
    let t0 = Instant::now();
    let sample = (w.run)(ctx, plan.secs)?;
    let wall = t0.elapsed().as_secs_f64();
    let mut tool_sample = ToolSample::default();
    if let (Some(pid), Some(cpu0)) = (pid, cpu0) {
        let cpu = process::cpu_secs(pid) - cpu0;
        let (rss, hwm) = process::memory_kib(pid);
        tool_sample.cpu_percent = Some(cpu / wall * 100.0);
        tool_sample.cpu_secs = Some(cpu);
        tool_sample.rss_kib = Some(rss);
        tool_sample.hwm_kib = Some(hwm);
    }
    tool_sample.report = tool.stop()?;
    Ok(Run {
        sample,
        tool: tool_sample,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::workloads::ALL;

    fn plan(reps: usize, slow_reps: usize) -> Plan {
        Plan {
            reps,
            secs: 1.0,
            slow_reps,
            latency_count: 0,
            sweep_rates: vec![],
            conn_rates: vec![],
            sweep_secs: 0.0,
            kernel_secs: 0.0,
            workloads: ALL.to_vec(),
            configs: vec![],
            phases: vec![],
        }
    }

    const FOUR: [Config; 4] = [
        Config::Tunnelwatch,
        Config::Auditd,
        Config::Bpftrace,
        Config::Hooks,
    ];

    #[test]
    fn every_configuration_gets_a_pair_per_repetition_in_both_orders() {
        let p = plan(7, 3);
        let slots = schedule(&p, &FOUR);
        for w in &p.workloads {
            let reps = if w.slow { 3 } else { 7 };
            for c in FOUR {
                let mine: Vec<&Slot> = slots
                    .iter()
                    .filter(|s| s.workload == *w && s.config == c)
                    .collect();
                let got: Vec<usize> = mine.iter().map(|s| s.rep).collect();
                assert_eq!(got, (0..reps).collect::<Vec<_>>(), "{w:?} {c:?}");
                // The order alternates from one repetition to the next.
                for pair in mine.windows(2) {
                    assert_ne!(pair[0].bare_first, pair[1].bare_first, "{w:?} {c:?}");
                }
            }
        }
        assert_eq!(slots.len(), (8 * 7 + 3) * 4);
    }

    #[test]
    fn configurations_take_turns() {
        let slots = schedule(&plan(4, 1), &FOUR);
        // The first configuration of each repetition of the exec storm.
        let first: Vec<Config> = (0..4)
            .map(|rep| {
                slots
                    .iter()
                    .find(|s| s.rep == rep && s.workload.key == "exec")
                    .unwrap()
                    .config
            })
            .collect();
        assert_eq!(first, FOUR);
        // Within one repetition of one workload: each configuration once, and the orders
        // mixed (not all bare first).
        let one: Vec<&Slot> = slots
            .iter()
            .filter(|s| s.rep == 1 && s.workload.key == "udp")
            .collect();
        assert_eq!(one.len(), 4);
        assert!(one.iter().any(|s| s.bare_first) && one.iter().any(|s| !s.bare_first));
        // With one configuration, its pairs still alternate.
        let single = schedule(&plan(3, 1), &[Config::Tunnelwatch]);
        let orders: Vec<bool> = single
            .iter()
            .filter(|s| s.workload.key == "exec")
            .map(|s| s.bare_first)
            .collect();
        assert_eq!(orders, [true, false, true]);
    }

    fn run_of(value: f64, ops: f64, cpu: f64, tool_cpu: Option<f64>) -> Run {
        Run {
            sample: Sample {
                value,
                ops,
                workload_cpu: cpu,
                extra: BTreeMap::new(),
            },
            tool: ToolSample {
                cpu_secs: tool_cpu,
                ..ToolSample::default()
            },
        }
    }

    #[test]
    fn a_pair_compares_its_own_two_runs() {
        let exec = ALL[0];
        let pair = Pair {
            rep: 0,
            bare_first: false,
            bare: Ok(run_of(1000.0, 2000.0, 1.0, None)),
            with: Ok(run_of(950.0, 1900.0, 1.0, Some(0.1))),
        };
        assert!((pair.slowdown(&exec).unwrap() - (1000.0 / 950.0 - 1.0)).abs() < 1e-12);
        // CPU per op: 500 µs bare, (1.0 + 0.1) / 1900 with.
        let inc = pair.cpu_increase().unwrap();
        assert!(
            (inc - (1.1 / 1900.0 * 1e6 / 500.0 - 1.0)).abs() < 1e-9,
            "{inc}"
        );
        let failed = Pair {
            with: Err("bpftrace did not attach".into()),
            ..pair
        };
        assert_eq!(failed.slowdown(&exec), None);
        assert_eq!(failed.cpu_increase(), None);
    }
}
