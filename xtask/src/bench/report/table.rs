//! The bench's table, as printed on stdout: the run's circumstances, the slowdowns (a row a
//! workload: tunnelwatch, the floor beside it, the other tools), CPU per operation, absolute
//! numbers, kernel cost per program run, the zero-loss sweep, latency, memory, start-up, and
//! the goals.
//!
//! May use: bench/results, bench/phases, bench/configs, bench/stats, report/summary,
//! report/goals, report/format.

use std::{collections::BTreeMap, fmt::Write as _};

use super::{
    format::{num, pct, spread_pct},
    goals::Goal,
    summary::WorkloadSummary,
};
use crate::bench::{configs::Config, results::Results, stats::Spread};

/// The configurations' columns: tunnelwatch, its floor right beside it, the other tools.
const COLUMNS: [Config; 4] = [
    Config::Tunnelwatch,
    Config::Hooks,
    Config::Auditd,
    Config::Bpftrace,
];

/// Secondary numbers the absolute lines leave out (counts, not rates).
const HIDDEN_EXTRAS: [&str; 2] = ["execs", "timeouts"];

pub fn render(r: &Results, summaries: &[WorkloadSummary], goals: &[Goal]) -> String {
    let mut t = String::new();
    header(&mut t, r);
    slowdowns(&mut t, r, summaries);
    cpu(&mut t, r, summaries);
    absolute(&mut t, r, summaries);
    kernel(&mut t, r);
    sweep(&mut t, r);
    conn_sweep(&mut t, r);
    latency_memory_startup(&mut t, r, summaries);
    let _ = writeln!(t, "\nGoals (issue 5)");
    for g in goals {
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
    }
    t
}

fn header(t: &mut String, r: &Results) {
    let m = &r.machine;
    let _ = writeln!(
        t,
        "\ntunnelwatch bench, {}: {} x {} ({} MiB), kernel {}; load average before {} / after {}; {:.0} s",
        r.date, m.nproc, m.cpu, m.memory_mib, m.kernel, r.load_before, r.load_after, r.wall_secs
    );
    let _ = writeln!(t, "command: {} (sensor {})", r.command, r.sensor);
    if let Some(o) = Spread::of(&r.others.iter().map(|o| o.percent).collect::<Vec<_>>()) {
        let mut tops: BTreeMap<&str, usize> = BTreeMap::new();
        for s in r.others.iter().filter(|s| s.percent >= 5.0) {
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
    let _ = writeln!(t, "plan: {}", r.plan);
    for (c, why) in &r.unavailable {
        let _ = writeln!(t, "{}: n/a: {why}", c.name());
    }
    let _ = writeln!(t, "bpftrace probes: {}", r.kprobes);
}

/// A cell of a per-configuration table.
fn cell(
    r: &Results,
    s: &WorkloadSummary,
    c: Config,
    value: impl Fn(Config) -> Option<Spread>,
) -> String {
    if r.unavailable.contains_key(&c) {
        return "n/a".into();
    }
    match (value(c), s.get(c)) {
        (Some(v), _) => spread_pct(v),
        (None, Some(_)) => "failed".into(),
        (None, None) => "-".into(),
    }
}

fn slowdowns(t: &mut String, r: &Results, summaries: &[WorkloadSummary]) {
    if summaries.is_empty() {
        return;
    }
    let _ = writeln!(
        t,
        "\nSlowdown against bare, same run: each pair is a bare run and a run with the tool back to back (which first alternates; configurations take turns), its slowdown (time per operation with the tool) / (bare) - 1; median of the pairs [min .. max]. Floor: empty programs on tunnelwatch's hooks; tunnelwatch - floor: the medians' difference, percentage points"
    );
    let _ = write!(t, "{:<16} {:>5}", "", "pairs");
    for c in COLUMNS {
        let _ = write!(
            t,
            " {:>26}",
            if c == Config::Hooks {
                "floor (empty hooks)"
            } else {
                c.name()
            }
        );
        if c == Config::Hooks {
            let _ = write!(t, " {:>20}", "tunnelwatch - floor");
        }
    }
    let _ = writeln!(t);
    for s in summaries {
        let pairs = s
            .get(Config::Tunnelwatch)
            .map_or(0, |c| c.slowdown_samples.len());
        let _ = write!(t, "{:<16} {pairs:>5}", s.workload.name);
        for c in COLUMNS {
            let _ = write!(t, " {:>26}", cell(r, s, c, |c| s.slowdown(c)));
            if c == Config::Hooks {
                let above = s
                    .above_floor_pp()
                    .map_or("-".into(), |pp| format!("{pp:+.1} pp"));
                let _ = write!(t, " {above:>20}");
            }
        }
        let _ = writeln!(t);
    }
}

fn cpu(t: &mut String, r: &Results, summaries: &[WorkloadSummary]) {
    let rates: Vec<&WorkloadSummary> = summaries.iter().filter(|s| s.workload.rate).collect();
    if rates.is_empty() {
        return;
    }
    let _ = writeln!(
        t,
        "\nCPU per operation against bare, same pairs (CPU time of the workload's processes, kernel included, plus the tool's own process, per operation; median [min .. max]): less sensitive than throughput to other load on the machine"
    );
    let _ = write!(t, "{:<16}", "");
    for c in COLUMNS {
        let _ = write!(t, " {:>26}", c.name());
    }
    let _ = writeln!(t);
    for s in rates {
        let _ = write!(t, "{:<16}", s.workload.name);
        for c in COLUMNS {
            let _ = write!(t, " {:>26}", cell(r, s, c, |c| s.get(c)?.cpu_increase));
        }
        let _ = writeln!(t);
    }
}

fn absolute(t: &mut String, r: &Results, summaries: &[WorkloadSummary]) {
    if summaries.is_empty() {
        return;
    }
    let _ = writeln!(
        t,
        "\nAbsolute numbers: median [min .. max] (stdev) of each configuration's runs (bare: every bare run of the pairs); the tool's CPU (% of one CPU, highest run) and loss (sum over runs)"
    );
    for s in summaries {
        let _ = writeln!(t, "{} ({})", s.workload.name, s.workload.unit);
        for c in crate::bench::configs::CONFIGS {
            let line = if let Some(why) = r.unavailable.get(&c) {
                format!("n/a: {why}")
            } else if let Some(cs) = s.get(c) {
                match cs.value {
                    None => format!("failed: {}", cs.error.clone().unwrap_or_default()),
                    Some(v) => {
                        let mut line = format!(
                            "{} [{} .. {}] (sd {:.1}%)",
                            num(v.median),
                            num(v.min),
                            num(v.max),
                            v.relative_stdev_percent()
                        );
                        if let Some(sd) = cs.slowdown {
                            let _ = write!(line, "  slowdown {}", pct(sd.median));
                        }
                        if let Some(op) = cs.cpu_per_op {
                            let _ = write!(line, "  CPU/op {} µs", num(op.median));
                            if let Some(inc) = cs.cpu_increase {
                                let _ = write!(line, " ({})", pct(inc.median));
                            }
                        }
                        for (k, v) in &cs.extra {
                            if let Some(e) = Spread::of(v)
                                && !HIDDEN_EXTRAS.contains(k)
                            {
                                let _ = write!(line, "  {k} {}", num(e.median));
                            }
                        }
                        if let Some(cpu) = cs.tool_cpu_max {
                            let _ = write!(line, "  tool CPU {cpu:.0}%");
                        }
                        if let Some(op) = cs.tool_us_per_op {
                            let _ = write!(line, " ({} µs/op)", num(op.median));
                        }
                        if let Some(l) = cs.lost {
                            let _ = write!(line, "  lost {l}");
                        }
                        if let Some(h) = cs.hwm_max_kib {
                            let _ = write!(line, "  VmHWM {} MiB", num(h as f64 / 1024.0));
                        }
                        if let Some(e) = &cs.error {
                            let _ = write!(line, "  (some runs failed: {e})");
                        }
                        line
                    }
                }
            } else {
                continue;
            };
            let _ = writeln!(t, "  {:<12} {line}", c.name());
        }
    }
}

fn kernel(t: &mut String, r: &Results) {
    let Some(k) = &r.kernel else {
        return;
    };
    let _ = writeln!(
        t,
        "\nKernel cost per program run (kernel.bpf_stats_enabled: run_time_ns / run_cnt)"
    );
    for (tool, cost) in k {
        for (w, wc) in &cost.workloads {
            let cells: Vec<String> = wc
                .programs
                .iter()
                .filter(|(_, c)| c.run_cnt > 0)
                .map(|(n, c)| format!("{n} {} ns x {}", num(c.ns_per_run), c.run_cnt))
                .collect();
            let _ = writeln!(t, "  {tool:<12} {w:<5} {}", cells.join(", "));
        }
    }
}

fn sweep(t: &mut String, r: &Results) {
    let Some(s) = &r.sweep else {
        return;
    };
    let _ = writeln!(
        t,
        "\nDNS open loop, A and AAAA, a fresh sensor per rate ({} s each): loss from the sensor's final stats",
        s.secs
    );
    let opt = |v: Option<u64>| v.map_or("null".into(), |v| v.to_string());
    for row in &s.rows {
        let _ = writeln!(
            t,
            "  {}target {:>7}  sent {:>7}/s  answered {:>7}/s  {}  sensor lost {} (dns_lost {}, output_dropped {})  sensor CPU {:.0}%  VmHWM {} MiB",
            row.ring
                .map(|r| format!("--ring-buffer-size {r}: "))
                .unwrap_or_default(),
            row.target,
            num(row.sent_per_s),
            num(row.answered_per_s),
            if row.reached {
                "reached    "
            } else {
                "NOT reached"
            },
            row.lost,
            opt(row.stats.dns_lost),
            opt(row.stats.output_dropped),
            row.sensor_cpu_percent,
            num(row.hwm_kib as f64 / 1024.0),
        );
    }
}

fn conn_sweep(t: &mut String, r: &Results) {
    let Some(s) = &r.conn_sweep else {
        return;
    };
    let _ = writeln!(
        t,
        "\nTCP connections with a ClientHello, open loop, a fresh sensor per rate ({} s each): loss from the sensor's final stats",
        s.secs
    );
    let opt = |v: Option<u64>| v.map_or("null".into(), |v| v.to_string());
    for row in &s.rows {
        let _ = writeln!(
            t,
            "  target {:>6}  opened {:>6}/s  {}  sensor lost {} (conn_lost {}, flight_lost {}; conn_seen {})  sensor CPU {:.0}%  VmHWM {} MiB",
            row.target,
            num(row.opened_per_s),
            if row.reached {
                "reached    "
            } else {
                "NOT reached"
            },
            row.lost,
            opt(row.stats.conn_lost),
            opt(row.stats.flight_lost),
            opt(row.stats.conn_seen),
            row.sensor_cpu_percent,
            num(row.hwm_kib as f64 / 1024.0),
        );
    }
}

fn latency_memory_startup(t: &mut String, r: &Results, summaries: &[WorkloadSummary]) {
    if let Some(l) = &r.latency {
        let _ = writeln!(
            t,
            "\nExec-to-alert latency ({} launches, {} alerts): p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
            l.launched,
            l.alerts,
            num(l.p50_us),
            num(l.p90_us),
            num(l.p99_us),
            num(l.p999_us),
            num(l.max_us),
        );
        let tp = &l.tracepoint_to_line;
        let _ = writeln!(
            t,
            "  of which the sensor's share (the exec's kernel timestamp, the alert's `time`, to the line read; wall clocks): p50 {} µs, p99 {} µs, p99.9 {} µs",
            num(tp.p50_us),
            num(tp.p99_us),
            num(tp.p999_us),
        );
    }
    let mib = |kib: u64| num(kib as f64 / 1024.0);
    let i = &r.idle;
    let _ = write!(
        t,
        "Sensor memory: idle VmRSS {} MiB (VmHWM {} MiB; of which BPF map mappings {} MiB: a ring buffer's data pages are mapped twice); with --ring-buffer-size 4MiB: VmRSS {} MiB (maps {} MiB)",
        mib(i.rss_kib),
        mib(i.hwm_kib),
        mib(i.bpf_map_rss_kib),
        mib(i.ring_4mib.rss_kib),
        mib(i.ring_4mib.bpf_map_rss_kib),
    );
    for s in summaries {
        if let Some(tw) = s.get(Config::Tunnelwatch)
            && let (Some(rss), Some(hwm)) = (tw.rss_max_kib, tw.hwm_max_kib)
        {
            let _ = write!(
                t,
                "; {} {} MiB (VmHWM {})",
                s.workload.key,
                mib(rss),
                mib(hwm)
            );
        }
    }
    let _ = writeln!(t);
    let st = Spread::of(
        &r.startups
            .iter()
            .map(|s| s.spawn_to_ready)
            .collect::<Vec<_>>(),
    );
    let rd = Spread::of(&r.startups.iter().map(|s| s.ready_in).collect::<Vec<_>>());
    if let (Some(s), Some(rd)) = (st, rd) {
        let _ = writeln!(
            t,
            "Start-up ({} starts): spawn to ready line median {} ms [{} .. {}]; the sensor's `ready in` median {} ms [{} .. {}]",
            s.n,
            num(s.median),
            num(s.min),
            num(s.max),
            num(rd.median),
            num(rd.min),
            num(rd.max)
        );
    }
}
