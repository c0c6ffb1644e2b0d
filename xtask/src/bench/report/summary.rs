//! The overhead phase summarised, one workload at a time: for each configuration the spread of
//! its runs' values, the median and spread (min .. max) of its pairs' slowdowns and CPU
//! increases, its tool's CPU, memory and losses; for the workload, the floor (the empty hooks'
//! slowdown) and tunnelwatch above it. The table, the goals and results.json all read these.
//!
//! May use: bench/phases (overhead), bench/configs, bench/stats, bench/workloads.

use std::collections::BTreeMap;

use crate::bench::{
    configs::{CONFIGS, Config, ToolReport},
    phases::overhead::{Pair, Run, WorkloadPairs},
    stats::Spread,
    workloads::Workload,
};

/// One configuration of one workload. For bare: every bare run of the workload's pairs, and no
/// slowdown.
pub struct ConfigSummary<'a> {
    pub config: Config,
    /// Its successful runs.
    pub runs: Vec<&'a Run>,
    /// The pairs it ran in (none for bare).
    pub pairs: &'a [Pair],
    /// The values of its runs.
    pub samples: Vec<f64>,
    pub value: Option<Spread>,
    /// Each pair's slowdown, in the order the pairs ran.
    pub slowdown_samples: Vec<f64>,
    pub slowdown: Option<Spread>,
    pub cpu_per_op: Option<Spread>,
    pub cpu_increase_samples: Vec<f64>,
    pub cpu_increase: Option<Spread>,
    /// The tool's own CPU per operation, µs.
    pub tool_us_per_op: Option<Spread>,
    /// The secondary numbers, by name, over its runs.
    pub extra: BTreeMap<&'static str, Vec<f64>>,
    /// The tool's highest CPU (% of one CPU) and memory in any run; its losses summed.
    pub tool_cpu_max: Option<f64>,
    pub rss_max_kib: Option<u64>,
    pub hwm_max_kib: Option<u64>,
    pub lost: Option<u64>,
    /// The first failure of one of its runs.
    pub error: Option<String>,
}

pub struct WorkloadSummary<'a> {
    pub workload: Workload,
    /// Bare first, then the configurations that ran, in [`CONFIGS`] order.
    pub configs: Vec<ConfigSummary<'a>>,
}

impl<'a> WorkloadSummary<'a> {
    pub fn of(w: &'a WorkloadPairs) -> WorkloadSummary<'a> {
        let bare_runs: Vec<&Result<Run, String>> = w
            .pairs
            .values()
            .flat_map(|pairs| pairs.iter().map(|p| &p.bare))
            .collect();
        let mut configs = vec![summarise(&w.workload, Config::Bare, &bare_runs, &[])];
        for c in CONFIGS.into_iter().filter(|&c| c != Config::Bare) {
            if let Some(pairs) = w.pairs.get(&c) {
                let with: Vec<&Result<Run, String>> = pairs.iter().map(|p| &p.with).collect();
                configs.push(summarise(&w.workload, c, &with, pairs));
            }
        }
        WorkloadSummary {
            workload: w.workload,
            configs,
        }
    }

    pub fn get(&self, c: Config) -> Option<&ConfigSummary<'a>> {
        self.configs.iter().find(|s| s.config == c)
    }

    /// The slowdown of `c`'s pairs.
    pub fn slowdown(&self, c: Config) -> Option<Spread> {
        self.get(c)?.slowdown
    }

    /// The floor: what empty programs on tunnelwatch's hooks cost the workload.
    pub fn floor(&self) -> Option<Spread> {
        self.slowdown(Config::Hooks)
    }

    /// tunnelwatch's median slowdown above the floor's, in percentage points.
    pub fn above_floor_pp(&self) -> Option<f64> {
        Some((self.slowdown(Config::Tunnelwatch)?.median - self.floor()?.median) * 100.0)
    }
}

fn summarise<'a>(
    w: &Workload,
    config: Config,
    runs: &[&'a Result<Run, String>],
    pairs: &'a [Pair],
) -> ConfigSummary<'a> {
    let ok: Vec<&Run> = runs.iter().filter_map(|r| r.as_ref().ok()).collect();
    let samples: Vec<f64> = ok.iter().map(|r| r.sample.value).collect();
    let slowdown_samples: Vec<f64> = pairs.iter().filter_map(|p| p.slowdown(w)).collect();
    let cpu_increase_samples: Vec<f64> = pairs.iter().filter_map(Pair::cpu_increase).collect();
    let cpu_per_op: Vec<f64> = ok.iter().map(|r| r.cpu_per_op_us()).collect();
    let tool_op: Vec<f64> = ok
        .iter()
        .filter(|r| r.sample.ops > 0.0)
        .filter_map(|r| Some(r.tool.cpu_secs? / r.sample.ops * 1e6))
        .collect();
    let mut extra: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for r in &ok {
        for (k, v) in &r.sample.extra {
            extra.entry(k).or_default().push(*v);
        }
    }
    let lost: Vec<u64> = ok
        .iter()
        .filter_map(|r| r.tool.report.as_ref().map(ToolReport::lost))
        .collect();
    ConfigSummary {
        config,
        value: Spread::of(&samples),
        samples,
        slowdown: Spread::of(&slowdown_samples),
        slowdown_samples,
        cpu_per_op: Spread::of(&cpu_per_op),
        cpu_increase: Spread::of(&cpu_increase_samples),
        cpu_increase_samples,
        tool_us_per_op: Spread::of(&tool_op),
        extra,
        tool_cpu_max: ok
            .iter()
            .filter_map(|r| r.tool.cpu_percent)
            .reduce(f64::max),
        rss_max_kib: ok.iter().filter_map(|r| r.tool.rss_kib).max(),
        hwm_max_kib: ok.iter().filter_map(|r| r.tool.hwm_kib).max(),
        lost: (!lost.is_empty()).then(|| lost.iter().sum()),
        error: runs.iter().find_map(|r| r.as_ref().err().cloned()),
        runs: ok,
        pairs,
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::bench::{
        phases::overhead::ToolSample,
        workloads::{ALL, Sample},
    };

    pub fn run(value: f64) -> Run {
        Run {
            sample: Sample {
                value,
                ops: value,
                workload_cpu: 1.0,
                extra: [("sent_per_s", value * 2.0)].into(),
            },
            tool: ToolSample::default(),
        }
    }

    pub fn pair(rep: usize, bare: f64, with: f64) -> Pair {
        Pair {
            rep,
            bare_first: rep.is_multiple_of(2),
            bare: Ok(run(bare)),
            with: if with > 0.0 {
                Ok(run(with))
            } else {
                Err("it failed".into())
            },
        }
    }

    /// The exec storm: tunnelwatch 2 % slower in every pair but one disturbed one, the empty
    /// hooks 1 % slower, bpftrace failing once.
    pub fn exec_pairs() -> WorkloadPairs {
        WorkloadPairs {
            workload: ALL[0],
            pairs: [
                (
                    Config::Tunnelwatch,
                    vec![
                        pair(0, 1000.0, 1000.0 / 1.02),
                        pair(1, 600.0, 1100.0 / 1.02),
                        pair(2, 1100.0, 1100.0 / 1.02),
                    ],
                ),
                (
                    Config::Hooks,
                    vec![
                        pair(0, 1000.0, 1000.0 / 1.01),
                        pair(1, 1000.0, 1000.0 / 1.01),
                        pair(2, 1000.0, 1000.0 / 1.01),
                    ],
                ),
                (
                    Config::Bpftrace,
                    vec![pair(0, 1000.0, 900.0), pair(1, 1000.0, 0.0)],
                ),
            ]
            .into(),
        }
    }

    #[test]
    fn medians_of_pairs_with_their_spread_and_the_floor() {
        let w = exec_pairs();
        let s = WorkloadSummary::of(&w);
        let names: Vec<Config> = s.configs.iter().map(|c| c.config).collect();
        assert_eq!(
            names,
            [
                Config::Bare,
                Config::Tunnelwatch,
                Config::Bpftrace,
                Config::Hooks
            ]
        );
        let tw = s.slowdown(Config::Tunnelwatch).unwrap();
        assert_eq!(tw.n, 3);
        assert!((tw.median - 0.02).abs() < 1e-12, "{tw:?}");
        assert!(tw.min < -0.4 && (tw.max - 0.02).abs() < 1e-12, "{tw:?}");
        let floor = s.floor().unwrap();
        assert!((floor.median - 0.01).abs() < 1e-12);
        assert!((s.above_floor_pp().unwrap() - 1.0).abs() < 1e-9);
        // Bare: all 8 bare runs; no slowdown of its own.
        let bare = s.get(Config::Bare).unwrap();
        assert_eq!((bare.samples.len(), bare.slowdown), (8, None));
        // bpftrace: one pair whole, one failed.
        let bt = s.get(Config::Bpftrace).unwrap();
        assert_eq!(bt.slowdown_samples.len(), 1);
        assert!((bt.slowdown_samples[0] - (1000.0 / 900.0 - 1.0)).abs() < 1e-12);
        assert_eq!(bt.error.as_deref(), Some("it failed"));
        assert_eq!(bt.extra["sent_per_s"], [1800.0]);
        assert!(s.get(Config::Auditd).is_none());
    }
}
