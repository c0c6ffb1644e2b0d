//! The bench's report, drawn from its typed results: the table printed on stdout and the JSON
//! document written to `target/bench/results.json`, both from the same summaries and goals.
//!
//! May use: its own files (report/), bench/results.

mod format;
mod goals;
mod json;
mod summary;
mod table;

use anyhow::Result;

use self::summary::WorkloadSummary;
use super::results::Results;

/// The table and the JSON document.
pub fn render(r: &Results) -> Result<(String, serde_json::Value)> {
    let summaries: Vec<WorkloadSummary> = r.overhead.iter().map(WorkloadSummary::of).collect();
    let goals = goals::goals(r, &summaries);
    let table = table::render(r, &summaries, &goals);
    let json = json::document(r, &summaries, &goals)?;
    Ok((table, json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{
        configs::Config,
        ctx::Startup,
        host::Machine,
        phases::idle::{Idle, SmallRing},
    };

    fn results() -> Results {
        Results {
            date: "2026-11-23T06:16:00Z".into(),
            machine: Machine {
                nproc: 2,
                cpu: "AMD EPYC".into(),
                kernel: "6.18.44".into(),
                memory_mib: 24_000,
                hostname: "vm".into(),
            },
            command: "xtask bench".into(),
            sensor: "target/release/tunnelwatch".into(),
            quick: false,
            plan: "Plan { .. }".into(),
            load_before: "0.90 0.50 0.20".into(),
            load_after: "2.16 1.00 0.50".into(),
            others: vec![],
            wall_secs: 565.0,
            unavailable: [(Config::Auditd, "not selected (--configs)".into())].into(),
            kprobes: "kprobes unavailable".into(),
            idle: Idle {
                rss_at_ready_kib: 26_000,
                rss_kib: 27_000,
                hwm_kib: 28_000,
                bpf_map_rss_kib: 16_000,
                cpu_percent: 0.1,
                ring_4mib: SmallRing {
                    rss_kib: 20_000,
                    hwm_kib: 21_000,
                    bpf_map_rss_kib: 8_000,
                },
            },
            overhead: vec![summary::tests::exec_pairs()],
            kernel: None,
            sweep: None,
            conn_sweep: None,
            latency: None,
            startups: vec![Startup {
                spawn_to_ready: 164.0,
                ready_in: 140.0,
            }],
        }
    }

    #[test]
    fn the_table_and_the_json_show_pairs_spread_and_floor() {
        let (table, json) = render(&results()).unwrap();
        // The slowdown row of the exec storm: 3 pairs, tunnelwatch's median and spread, the
        // floor beside it, the difference, auditd not selected, bpftrace's one whole pair.
        let row = table
            .lines()
            .find(|l| l.starts_with("exec storm") && l.contains("pp"))
            .unwrap_or_else(|| panic!("no slowdown row:\n{table}"));
        let cells: Vec<&str> = row
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            cells,
            [
                "exec storm",
                "3",
                "+2.0% [-44.4% .. +2.0%]",
                "+1.0% [+1.0% .. +1.0%]",
                "+1.0 pp",
                "n/a",
                "+11.1% [+11.1% .. +11.1%]"
            ],
            "{row}"
        );
        assert!(table.contains("floor (empty hooks)"), "{table}");
        assert!(table.contains("n/a     DNS zero loss"), "{table}");
        assert!(table.contains("MISSED  exec storm slowdown"), "{table}");

        let exec = &json["workloads"]["exec"];
        assert_eq!(exec["name"], "exec storm");
        assert!((exec["floor"]["median"].as_f64().unwrap() - 0.01).abs() < 1e-12);
        assert!((exec["tunnelwatch_above_floor_pp"].as_f64().unwrap() - 1.0).abs() < 1e-9);
        let tw = &exec["configs"]["tunnelwatch"];
        assert!((tw["slowdown"]["median"].as_f64().unwrap() - 0.02).abs() < 1e-12);
        assert_eq!(tw["slowdown"]["n"], 3);
        assert_eq!(tw["slowdown_samples"].as_array().unwrap().len(), 3);
        let pairs = tw["pairs"].as_array().unwrap();
        assert_eq!(pairs.len(), 3);
        assert_eq!(
            (pairs[0]["rep"].clone(), pairs[0]["first"].clone()),
            (1.into(), "bare".into())
        );
        assert_eq!(pairs[1]["first"], "tunnelwatch");
        assert_eq!(pairs[1]["bare"], 600.0);
        assert_eq!(
            exec["configs"]["bare"]["samples"].as_array().unwrap().len(),
            8
        );
        assert!(exec["configs"]["bare"]["slowdown"].is_null());
        assert_eq!(exec["configs"]["auditd"]["na"], "not selected (--configs)");
        assert_eq!(exec["configs"]["bpftrace"]["error"], "it failed");
        assert_eq!(
            exec["configs"]["bpftrace"]["pairs"][1]["with"],
            serde_json::Value::Null
        );
        assert_eq!(json["unavailable"]["auditd"], "not selected (--configs)");
        assert_eq!(json["startup_ms"][0]["spawn_to_ready"], 164.0);
        assert_eq!(json["memory"]["idle"]["ring_4mib"]["rss_kib"], 20_000);
        assert!(json["kernel_cost"].is_null() && json["latency"].is_null());
        let goals = json["goals"].as_array().unwrap();
        assert_eq!(goals[0]["goal"], "exec storm slowdown");
        assert_eq!(goals[0]["met"], false);
    }
}
