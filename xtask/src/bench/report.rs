//! The bench's table (stdout) and JSON (`target/bench/results.json`), and the goals of issue 5
//! checked against the numbers.

use std::{collections::BTreeMap, fmt::Write as _};

use serde_json::{Value, json};

use super::{CONFIGS, Config, Matrix, Run, WORKLOADS, Workload};

/// Everything measured.
pub struct Results {
    pub date: String,
    pub machine: Value,
    pub command: String,
    pub sensor: String,
    pub quick: bool,
    pub plan: String,
    pub load_before: String,
    pub load_after: String,
    /// Other processes' CPU use, sampled during the run.
    pub others: Vec<super::tools::OtherLoad>,
    pub wall_secs: f64,
    pub unavailable: BTreeMap<String, String>,
    pub kprobes: String,
    pub idle: Value,
    pub matrix: Matrix,
    pub kernel: Value,
    pub sweep: Value,
    pub latency: Value,
    pub startups: Vec<(f64, f64)>,
}

/// The `p`-quantile (0..=1) of sorted `v`, nearest rank.
pub fn quantile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// min, median, max, mean and relative standard deviation of samples.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub mean: f64,
    pub stdev: f64,
}

impl Spread {
    pub fn of(samples: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Spread {
            n,
            min: v[0],
            median,
            max: v[n - 1],
            mean,
            stdev: var.sqrt(),
        })
    }

    fn json(&self) -> Value {
        json!({
            "n": self.n, "min": self.min, "median": self.median, "max": self.max,
            "mean": self.mean, "stdev": self.stdev,
        })
    }
}

/// A number with a sensible number of digits.
fn num(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let a = x.abs();
    if a >= 1e5 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1}%", x * 100.0)
    } else {
        "-".into()
    }
}

/// Successful runs of (w, c), by repetition.
fn runs(m: &Matrix, w: Workload, c: Config) -> Vec<Option<&Run>> {
    m.get(&w)
        .and_then(|by| by.get(&c))
        .map(|v| v.iter().map(|r| r.as_ref().ok()).collect())
        .unwrap_or_default()
}

/// Per-repetition slowdowns of `c` against bare: time per operation with / bare − 1.
fn slowdowns(m: &Matrix, w: Workload, c: Config) -> Vec<f64> {
    let bare = runs(m, w, Config::Bare);
    let with = runs(m, w, c);
    bare.iter()
        .zip(with.iter())
        .filter_map(|(b, x)| {
            let (b, x) = (b.as_ref()?.value, x.as_ref()?.value);
            if b <= 0.0 || x <= 0.0 {
                return None;
            }
            Some(if w.is_rate() {
                b / x - 1.0
            } else {
                x / b - 1.0
            })
        })
        .collect()
}

/// Per-repetition increase of CPU per operation (workload processes + the tool's process)
/// of `c` against bare.
fn cpu_slowdowns(m: &Matrix, w: Workload, c: Config) -> Vec<f64> {
    let bare = runs(m, w, Config::Bare);
    let with = runs(m, w, c);
    bare.iter()
        .zip(with.iter())
        .filter_map(|(b, x)| {
            let (b, x) = (b.as_ref()?.cpu_per_op_us(), x.as_ref()?.cpu_per_op_us());
            (b > 0.0 && x.is_finite()).then(|| x / b - 1.0)
        })
        .collect()
}

fn tool_max(m: &Matrix, w: Workload, c: Config, key: &str) -> Option<f64> {
    runs(m, w, c)
        .into_iter()
        .flatten()
        .filter_map(|r| r.tool.get(key).and_then(Value::as_f64))
        .reduce(f64::max)
}

fn tool_sum(m: &Matrix, w: Workload, c: Config, key: &str) -> Option<u64> {
    let v: Vec<u64> = runs(m, w, c)
        .into_iter()
        .flatten()
        .filter_map(|r| r.tool.get(key).and_then(Value::as_u64))
        .collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

fn first_error(m: &Matrix, w: Workload, c: Config) -> Option<String> {
    m.get(&w)?
        .get(&c)?
        .iter()
        .find_map(|r| r.as_ref().err().cloned())
}

struct Goal {
    name: String,
    target: String,
    measured: String,
    /// None: could not be measured.
    met: Option<bool>,
}

impl Results {
    fn slowdown(&self, w: Workload, c: Config) -> Option<Spread> {
        Spread::of(&slowdowns(&self.matrix, w, c))
    }

    fn kernel_ns(&self, workload: &str, progs: &[&str]) -> Option<f64> {
        let p = &self.kernel["tunnelwatch"][workload]["programs"];
        let (mut ns, mut cnt) = (0u64, 0u64);
        for name in progs {
            ns += p[*name]["run_time_ns"].as_u64()?;
            cnt += p[*name]["run_cnt"].as_u64()?;
        }
        (cnt > 0).then(|| ns as f64 / cnt as f64)
    }

    fn goals(&self) -> Vec<Goal> {
        let mut g = Vec::new();
        for w in [Workload::Exec, Workload::Udp, Workload::Tcp] {
            let tw = self.slowdown(w, Config::Tunnelwatch);
            let others: Vec<(Config, Option<Spread>)> = [Config::Auditd, Config::Bpftrace]
                .into_iter()
                .map(|c| (c, self.slowdown(w, c)))
                .collect();
            let mut measured = format!(
                "tunnelwatch {}",
                tw.map(|s| pct(s.median)).unwrap_or("-".into())
            );
            let mut met = tw.map(|s| s.median < 0.02);
            for (c, s) in &others {
                match s {
                    Some(s) => {
                        let _ = write!(measured, ", {} {}", c.name(), pct(s.median));
                        if let (Some(m), Some(t)) = (met, tw) {
                            met = Some(m && t.median < s.median);
                        }
                    }
                    None => {
                        let _ = write!(measured, ", {} n/a", c.name());
                    }
                }
            }
            if let Some(c) = Spread::of(&cpu_slowdowns(&self.matrix, w, Config::Tunnelwatch)) {
                let _ = write!(
                    measured,
                    "; tunnelwatch's CPU per operation {} [{} .. {}]",
                    pct(c.median),
                    pct(c.min),
                    pct(c.max)
                );
            }
            g.push(Goal {
                name: format!("{} slowdown", w.name()),
                target: "< 2%, below auditd's and bpftrace's".into(),
                measured,
                met,
            });
        }
        // Zero loss at 100k q/s or at the ceiling.
        let rows: Vec<Value> = self.sweep["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r["ring"].is_null())
            .collect();
        let best_zero = rows
            .iter()
            .filter(|r| r["lost"].as_u64() == Some(0) && r["reached"].as_bool() == Some(true))
            .filter_map(|r| r["sent_per_s"].as_f64())
            .reduce(f64::max);
        let ceiling = rows
            .iter()
            .filter_map(|r| r["sent_per_s"].as_f64())
            .reduce(f64::max);
        let ceiling_reached = rows.iter().any(|r| r["reached"].as_bool() == Some(false));
        let first_loss = rows
            .iter()
            .find(|r| r["lost"].as_u64().is_some_and(|l| l > 0));
        let met = match (best_zero, first_loss) {
            (Some(z), _) if z >= 100_000.0 * 0.95 => Some(true),
            (Some(_), None) => Some(ceiling_reached),
            (_, Some(_)) => Some(false),
            (None, None) => None,
        };
        g.push(Goal {
            name: "DNS zero loss".into(),
            target: "100,000 q/s, or the machine's ceiling if lower".into(),
            measured: format!(
                "zero loss up to {} q/s; {}{}",
                best_zero.map(num).unwrap_or("-".into()),
                if ceiling_reached {
                    format!(
                        "machine ceiling {} q/s",
                        ceiling.map(num).unwrap_or("-".into())
                    )
                } else {
                    "ceiling not reached".into()
                },
                first_loss
                    .map(|r| format!(
                        "; loss from {} q/s: {} records (dns_lost {})",
                        r["target"], r["lost"], r["dns_lost"]
                    ))
                    .unwrap_or_default()
            ),
            met,
        });
        let p99 = self.latency["p99_us"].as_f64();
        g.push(Goal {
            name: "exec-to-alert p99".into(),
            target: "< 2 ms".into(),
            measured: format!(
                "p50 {} µs, p99 {} µs, p99.9 {} µs",
                num(self.latency["p50_us"].as_f64().unwrap_or(f64::NAN)),
                num(p99.unwrap_or(f64::NAN)),
                num(self.latency["p999_us"].as_f64().unwrap_or(f64::NAN))
            ),
            met: p99.filter(|p| p.is_finite()).map(|p| p < 2000.0),
        });
        let exec_ns = self.kernel_ns("exec", &["sched_process_exec"]);
        let exec_floor = self.kernel_ns("exec", &["empty_exec"]);
        g.push(Goal {
            name: "kernel cost per exec".into(),
            target: "< 2 µs".into(),
            measured: format!(
                "{} ns (sched_process_exec; an empty program measures {} ns here; with fork and exit: {} ns per exec)",
                exec_ns.map(num).unwrap_or("-".into()),
                exec_floor.map(num).unwrap_or("-".into()),
                self.kernel_per_exec_all().map(num).unwrap_or("-".into())
            ),
            met: exec_ns.map(|n| n < 2000.0),
        });
        let udp = self.kernel_ns("udp", &["dns_egress", "dns_ingress"]);
        let tcp = self.kernel_ns("tcp", &["dns_egress", "dns_ingress"]);
        let floor = self.kernel_ns("udp", &["empty_egress", "empty_ingress"]);
        g.push(Goal {
            name: "kernel cost per non-DNS packet".into(),
            target: "< 100 ns".into(),
            measured: format!(
                "UDP {} ns, TCP {} ns (egress and ingress runs averaged; an empty program measures {} ns here)",
                udp.map(num).unwrap_or("-".into()),
                tcp.map(num).unwrap_or("-".into()),
                floor.map(num).unwrap_or("-".into())
            ),
            met: udp.map(|u| u < 100.0 && tcp.is_none_or(|t| t < 100.0)),
        });
        let rss = self.max_rss();
        g.push(Goal {
            name: "resident memory".into(),
            target: "< 30 MiB".into(),
            measured: format!(
                "idle {} MiB; peak VmHWM under any storm {} MiB",
                num(self.idle["rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0),
                num(rss.unwrap_or(f64::NAN) / 1024.0)
            ),
            met: rss.map(|r| r < 30.0 * 1024.0),
        });
        let st = Spread::of(&self.startups.iter().map(|s| s.0).collect::<Vec<_>>());
        g.push(Goal {
            name: "start-up".into(),
            target: "< 300 ms".into(),
            measured: st
                .map(|s| {
                    format!(
                        "spawn to ready: median {} ms, max {} ms ({} starts)",
                        num(s.median),
                        num(s.max),
                        s.n
                    )
                })
                .unwrap_or("-".into()),
            met: st.map(|s| s.median < 300.0),
        });
        g
    }

    fn kernel_per_exec_all(&self) -> Option<f64> {
        let p = &self.kernel["tunnelwatch"]["exec"]["programs"];
        let execs = p["sched_process_exec"]["run_cnt"].as_u64()?;
        let ns: u64 = [
            "sched_process_exec",
            "sched_process_fork",
            "sched_process_exit",
        ]
        .iter()
        .filter_map(|n| p[*n]["run_time_ns"].as_u64())
        .sum();
        (execs > 0).then(|| ns as f64 / execs as f64)
    }

    /// Highest VmHWM of the sensor in any run.
    fn max_rss(&self) -> Option<f64> {
        let mut all: Vec<f64> = WORKLOADS
            .iter()
            .filter_map(|&w| tool_max(&self.matrix, w, Config::Tunnelwatch, "hwm_kib"))
            .collect();
        all.extend(
            self.sweep["rows"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["hwm_kib"].as_f64()),
        );
        all.extend(self.idle["hwm_kib"].as_f64());
        all.into_iter().reduce(f64::max)
    }

    /// The table and the JSON.
    pub fn render(&self) -> (String, Value) {
        let mut t = String::new();
        let m = &self.machine;
        let _ = writeln!(
            t,
            "\ntunnelwatch bench, {}: {} x {} ({} MiB), kernel {}; load average before {} / after {}; {:.0} s",
            self.date,
            m["nproc"],
            m["cpu"].as_str().unwrap_or("?"),
            m["memory_mib"],
            m["kernel"].as_str().unwrap_or("?"),
            self.load_before,
            self.load_after,
            self.wall_secs
        );
        let _ = writeln!(t, "command: {} (sensor {})", self.command, self.sensor);
        let o = Spread::of(&self.others.iter().map(|o| o.percent).collect::<Vec<_>>());
        if let Some(o) = o {
            let mut tops: BTreeMap<&str, usize> = BTreeMap::new();
            for s in self.others.iter().filter(|s| s.percent >= 5.0) {
                *tops.entry(s.top.as_str()).or_default() += 1;
            }
            let _ = writeln!(
                t,
                "load from other processes during the run (share of all CPUs, {} samples of 5 s): median {:.1}%, max {:.1}%{}",
                o.n,
                o.median,
                o.max,
                if tops.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (busiest: {})",
                        tops.keys().copied().collect::<Vec<_>>().join(", ")
                    )
                }
            );
        }
        let _ = writeln!(t, "plan: {}", self.plan);
        for (c, why) in &self.unavailable {
            let _ = writeln!(t, "{c}: n/a: {why}");
        }
        let _ = writeln!(t, "bpftrace probes: {}", self.kprobes);

        // Summary of slowdowns.
        let _ = writeln!(
            t,
            "\nSlowdown against bare, same run (time per operation with the tool / bare - 1; median of per-repetition ratios [min .. max])"
        );
        let _ = write!(t, "{:<13}", "");
        for w in WORKLOADS {
            let _ = write!(t, " {:>24}", w.name());
        }
        let _ = writeln!(t);
        let mut json_workloads = serde_json::Map::new();
        for c in CONFIGS.into_iter().filter(|&c| c != Config::Bare) {
            let _ = write!(t, "{:<13}", c.name());
            for w in WORKLOADS {
                let cell = match (self.slowdown(w, c), self.unavailable.get(c.name())) {
                    (_, Some(_)) => "n/a".to_string(),
                    (Some(s), None) => {
                        format!("{} [{} .. {}]", pct(s.median), pct(s.min), pct(s.max))
                    }
                    (None, None) if !self.matrix.contains_key(&w) => "-".to_string(),
                    (None, None) => "failed".to_string(),
                };
                let _ = write!(t, " {cell:>24}");
            }
            let _ = writeln!(t);
        }

        let _ = writeln!(
            t,
            "\nCPU per operation against bare, same run (CPU time of the workload's processes, kernel included, plus the tool's own process, per operation; median [min .. max]): less sensitive than throughput to other load on the machine"
        );
        let _ = write!(t, "{:<13}", "");
        for w in WORKLOADS.into_iter().filter(|w| w.is_rate()) {
            let _ = write!(t, " {:>24}", w.name());
        }
        let _ = writeln!(t);
        for c in CONFIGS.into_iter().filter(|&c| c != Config::Bare) {
            let _ = write!(t, "{:<13}", c.name());
            for w in WORKLOADS.into_iter().filter(|w| w.is_rate()) {
                let cell = match (
                    Spread::of(&cpu_slowdowns(&self.matrix, w, c)),
                    self.unavailable.get(c.name()),
                ) {
                    (_, Some(_)) => "n/a".to_string(),
                    (Some(s), None) => {
                        format!("{} [{} .. {}]", pct(s.median), pct(s.min), pct(s.max))
                    }
                    (None, None) => "-".to_string(),
                };
                let _ = write!(t, " {cell:>24}");
            }
            let _ = writeln!(t);
        }

        // Absolute numbers.
        let _ = writeln!(
            t,
            "\nAbsolute numbers: median [min .. max] (stdev) of each configuration; the tool's CPU (% of one CPU, highest run) and loss (sum over runs)"
        );
        for w in WORKLOADS
            .into_iter()
            .filter(|w| self.matrix.contains_key(w))
        {
            let _ = writeln!(t, "{} ({})", w.name(), w.unit());
            let mut by_config = serde_json::Map::new();
            for c in CONFIGS {
                let samples: Vec<f64> = runs(&self.matrix, w, c)
                    .into_iter()
                    .flatten()
                    .map(|r| r.value)
                    .collect();
                let line = if let Some(why) = self.unavailable.get(c.name()) {
                    by_config.insert(c.name().into(), json!({ "na": why }));
                    format!("n/a: {why}")
                } else if let Some(s) = Spread::of(&samples) {
                    let sd = self.slowdown(w, c);
                    let cpu = tool_max(&self.matrix, w, c, "cpu_percent");
                    let lost = tool_sum(&self.matrix, w, c, "lost");
                    let extra: BTreeMap<String, Vec<f64>> = runs(&self.matrix, w, c)
                        .into_iter()
                        .flatten()
                        .flat_map(|r| r.extra.iter())
                        .fold(BTreeMap::new(), |mut acc, (k, v)| {
                            acc.entry(k.clone()).or_default().push(*v);
                            acc
                        });
                    let extras: serde_json::Map<String, Value> = extra
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), Spread::of(v)?.json())))
                        .collect();
                    let tools: Vec<Value> = runs(&self.matrix, w, c)
                        .into_iter()
                        .flatten()
                        .map(|r| json!(r.tool))
                        .collect();
                    let cpu_per_op: Vec<f64> = runs(&self.matrix, w, c)
                        .into_iter()
                        .flatten()
                        .map(Run::cpu_per_op_us)
                        .collect();
                    let cpu_op = Spread::of(&cpu_per_op);
                    let cpu_sd = Spread::of(&cpu_slowdowns(&self.matrix, w, c));
                    by_config.insert(
                        c.name().into(),
                        json!({
                            "value": s.json(),
                            "samples": samples,
                            "slowdown": sd.map(|s| s.json()),
                            "slowdown_samples": slowdowns(&self.matrix, w, c),
                            "cpu_us_per_op": cpu_op.map(|s| s.json()),
                            "cpu_increase": cpu_sd.map(|s| s.json()),
                            "cpu_increase_samples": cpu_slowdowns(&self.matrix, w, c),
                            "extra": extras,
                            "tool": tools,
                            "error": first_error(&self.matrix, w, c),
                        }),
                    );
                    let mut line = format!(
                        "{} [{} .. {}] (sd {:.1}%)",
                        num(s.median),
                        num(s.min),
                        num(s.max),
                        if s.mean != 0.0 {
                            s.stdev / s.mean * 100.0
                        } else {
                            0.0
                        }
                    );
                    if let Some(sd) = sd
                        && c != Config::Bare
                    {
                        let _ = write!(line, "  slowdown {}", pct(sd.median));
                    }
                    if let Some(op) = cpu_op {
                        let _ = write!(line, "  CPU/op {} µs", num(op.median));
                        if let Some(sd) = cpu_sd
                            && c != Config::Bare
                        {
                            let _ = write!(line, " ({})", pct(sd.median));
                        }
                    }
                    for (k, v) in &extra {
                        if let Some(s) = Spread::of(v)
                            && k != "execs"
                            && k != "timeouts"
                        {
                            let _ = write!(line, "  {k} {}", num(s.median));
                        }
                    }
                    if let Some(cpu) = cpu {
                        let _ = write!(line, "  tool CPU {cpu:.0}%");
                    }
                    let tool_op: Vec<f64> = runs(&self.matrix, w, c)
                        .into_iter()
                        .flatten()
                        .filter(|r| r.ops > 0.0)
                        .filter_map(|r| Some(r.tool.get("cpu_secs")?.as_f64()? / r.ops * 1e6))
                        .collect();
                    if let Some(op) = Spread::of(&tool_op) {
                        let _ = write!(line, " ({} µs/op)", num(op.median));
                    }
                    if let Some(l) = lost {
                        let _ = write!(line, "  lost {l}");
                    }
                    if let Some(h) = tool_max(&self.matrix, w, c, "hwm_kib") {
                        let _ = write!(line, "  VmHWM {} MiB", num(h / 1024.0));
                    }
                    if let Some(e) = first_error(&self.matrix, w, c) {
                        let _ = write!(line, "  (some runs failed: {e})");
                    }
                    line
                } else {
                    let e = first_error(&self.matrix, w, c).unwrap_or_default();
                    by_config.insert(c.name().into(), json!({ "failed": e }));
                    format!("failed: {e}")
                };
                let _ = writeln!(t, "  {:<12} {line}", c.name());
            }
            json_workloads.insert(
                w.key().into(),
                json!({ "name": w.name(), "unit": w.unit(), "configs": by_config }),
            );
        }

        // Kernel cost.
        let _ = writeln!(
            t,
            "\nKernel cost per program run (kernel.bpf_stats_enabled: run_time_ns / run_cnt)"
        );
        if let Some(tools) = self.kernel.as_object() {
            for (tool, by_w) in tools {
                for w in ["exec", "udp", "tcp", "dns"] {
                    let Some(p) = by_w[w]["programs"].as_object() else {
                        continue;
                    };
                    let cells: Vec<String> = p
                        .iter()
                        .filter(|(_, v)| v["run_cnt"].as_u64().unwrap_or(0) > 0)
                        .map(|(n, v)| {
                            format!(
                                "{n} {} ns x {}",
                                num(v["ns_per_run"].as_f64().unwrap_or(f64::NAN)),
                                v["run_cnt"]
                            )
                        })
                        .collect();
                    let _ = writeln!(t, "  {tool:<12} {w:<5} {}", cells.join(", "));
                }
            }
        }

        // Zero loss (phases not run print nothing).
        if !self.sweep["secs"].is_null() {
            let _ = writeln!(
                t,
                "\nDNS open loop, A and AAAA, a fresh sensor per rate ({} s each): loss from the sensor's final stats",
                self.sweep["secs"]
            );
        }
        for r in self.sweep["rows"].as_array().into_iter().flatten() {
            let _ = writeln!(
                t,
                "  {}target {:>7}  sent {:>7}/s  answered {:>7}/s  {}  sensor lost {} (dns_lost {}, output_dropped {})  sensor CPU {:.0}%  VmHWM {} MiB",
                r["ring"]
                    .as_str()
                    .map(|r| format!("--ring-buffer-size {r}: "))
                    .unwrap_or_default(),
                r["target"],
                num(r["sent_per_s"].as_f64().unwrap_or(f64::NAN)),
                num(r["answered_per_s"].as_f64().unwrap_or(f64::NAN)),
                if r["reached"].as_bool() == Some(true) {
                    "reached    "
                } else {
                    "NOT reached"
                },
                r["lost"],
                r["dns_lost"],
                r["output_dropped"],
                r["sensor_cpu_percent"].as_f64().unwrap_or(f64::NAN),
                num(r["hwm_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0),
            );
        }

        // Latency, memory, start-up.
        let l = &self.latency;
        if !l["launched"].is_null() {
            let _ = writeln!(
                t,
                "\nExec-to-alert latency ({} launches, {} alerts): p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
                l["launched"],
                l["alerts"],
                num(l["p50_us"].as_f64().unwrap_or(f64::NAN)),
                num(l["p90_us"].as_f64().unwrap_or(f64::NAN)),
                num(l["p99_us"].as_f64().unwrap_or(f64::NAN)),
                num(l["p999_us"].as_f64().unwrap_or(f64::NAN)),
                num(l["max_us"].as_f64().unwrap_or(f64::NAN)),
            );
            let tp = &l["tracepoint_to_line"];
            let _ = writeln!(
                t,
                "  of which the sensor's share (the exec's kernel timestamp, the alert's `time`, to the line read; wall clocks): p50 {} µs, p99 {} µs, p99.9 {} µs",
                num(tp["p50_us"].as_f64().unwrap_or(f64::NAN)),
                num(tp["p99_us"].as_f64().unwrap_or(f64::NAN)),
                num(tp["p999_us"].as_f64().unwrap_or(f64::NAN)),
            );
        }
        let mib = |v: &Value| num(v.as_f64().unwrap_or(f64::NAN) / 1024.0);
        let _ = write!(
            t,
            "Sensor memory: idle VmRSS {} MiB (VmHWM {} MiB; of which BPF map mappings {} MiB: a ring buffer's data pages are mapped twice); with --ring-buffer-size 4MiB: VmRSS {} MiB (maps {} MiB)",
            mib(&self.idle["rss_kib"]),
            mib(&self.idle["hwm_kib"]),
            mib(&self.idle["bpf_map_rss_kib"]),
            mib(&self.idle["ring_4mib"]["rss_kib"]),
            mib(&self.idle["ring_4mib"]["bpf_map_rss_kib"]),
        );
        let mut mem_json = serde_json::Map::new();
        mem_json.insert("idle".into(), self.idle.clone());
        for w in WORKLOADS {
            let rss = tool_max(&self.matrix, w, Config::Tunnelwatch, "rss_kib");
            let hwm = tool_max(&self.matrix, w, Config::Tunnelwatch, "hwm_kib");
            if let (Some(r), Some(h)) = (rss, hwm) {
                let _ = write!(
                    t,
                    "; {} {} MiB (VmHWM {})",
                    w.key(),
                    num(r / 1024.0),
                    num(h / 1024.0)
                );
                mem_json.insert(w.key().into(), json!({ "rss_kib": r, "hwm_kib": h }));
            }
        }
        let _ = writeln!(t);
        let st = Spread::of(&self.startups.iter().map(|s| s.0).collect::<Vec<_>>());
        let rd = Spread::of(&self.startups.iter().map(|s| s.1).collect::<Vec<_>>());
        if let (Some(s), Some(r)) = (st, rd) {
            let _ = writeln!(
                t,
                "Start-up ({} starts): spawn to ready line median {} ms [{} .. {}]; the sensor's `ready in` median {} ms [{} .. {}]",
                s.n,
                num(s.median),
                num(s.min),
                num(s.max),
                num(r.median),
                num(r.min),
                num(r.max)
            );
        }

        // Goals.
        let goals = self.goals();
        let _ = writeln!(t, "\nGoals (issue 5)");
        let mut goals_json = Vec::new();
        for g in &goals {
            let status = match g.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "n/a",
            };
            let _ = writeln!(
                t,
                "  {status:<7} {:<32} target {:<46} measured {}",
                g.name, g.target, g.measured
            );
            goals_json.push(json!({
                "goal": g.name, "target": g.target, "measured": g.measured, "met": g.met,
            }));
        }

        let json = json!({
            "date": self.date,
            "machine": self.machine,
            "command": self.command,
            "sensor": self.sensor,
            "quick": self.quick,
            "plan": self.plan,
            "load_average": { "before": self.load_before, "after": self.load_after },
            "other_processes_cpu_percent": self.others.iter().map(|o| json!({
                "percent": o.percent, "loadavg_1min": o.loadavg, "busiest": o.top,
            })).collect::<Vec<_>>(),
            "wall_secs": self.wall_secs,
            "unavailable": self.unavailable,
            "kprobes": self.kprobes,
            "slowdown_definition": "per repetition: (time per operation with the tool) / (time per operation bare, same repetition) - 1",
            "workloads": json_workloads,
            "kernel_cost": self.kernel,
            "dns_zero_loss": self.sweep,
            "latency": self.latency,
            "memory": mem_json,
            "startup_ms": self.startups.iter().map(|s| json!({ "spawn_to_ready": s.0, "ready_in": s.1 })).collect::<Vec<_>>(),
            "goals": goals_json,
        });
        (t, json)
    }
}
