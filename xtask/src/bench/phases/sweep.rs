//! The zero-loss sweep: an open-loop DNS client at rising rates, a fresh sensor for each rate,
//! whose final stats line decides (`dns_lost`, `exec_lost`, `output_dropped`, ... all 0); it
//! stops after the machine cannot reach a rate or after two lossy rates in a row. The highest
//! clean rate runs again with a quarter of the default ring buffer.
//!
//! May use: bench/plan, bench/workloads (the DNS storm), bench/configs, bench/tools,
//! bench/ctx, bench/process, bench/interrupt, serde.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::bench::{
    configs::SETTLE,
    ctx::Ctx,
    interrupt::{check_interrupted, sleep},
    plan::Plan,
    process,
    tools::sensor::{Sensor, SensorStats},
    workloads::dns,
};

#[derive(Clone, Debug, Serialize)]
pub struct Sweep {
    /// Seconds per rate.
    pub secs: f64,
    pub rows: Vec<Row>,
}

/// One rate.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The rate asked for, queries/s.
    pub target: u64,
    pub sent_per_s: f64,
    pub answered_per_s: f64,
    /// Whether the client sent at least 95 % of the target.
    pub reached: bool,
    /// Everything the sensor lost or dropped.
    pub lost: u64,
    pub sensor_cpu_percent: f64,
    pub sensor_cpu_us_per_record: f64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    #[serde(flatten)]
    pub stats: SensorStats,
    /// The ring buffer size, when not the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring: Option<&'static str>,
}

impl Sweep {
    /// The rows at the default ring size.
    pub fn default_ring(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.ring.is_none())
    }
}

pub fn run(ctx: &Ctx, plan: &Plan) -> Result<Sweep> {
    let mut rows = Vec::new();
    let mut lossy_in_a_row = 0;
    let mut best = None;
    for &rate in &plan.sweep_rates {
        let row = rate_run(ctx, plan, rate, None)?;
        let (reached, lost) = (row.reached, row.lost);
        rows.push(row);
        if !reached {
            break;
        }
        if lost == 0 {
            best = Some(rate);
        }
        lossy_in_a_row = if lost > 0 { lossy_in_a_row + 1 } else { 0 };
        if lossy_in_a_row >= 2 {
            break;
        }
    }
    // The highest clean rate again with a quarter of the default ring buffer (what a smaller
    // default would cost in headroom).
    if let Some(rate) = best {
        rows.push(rate_run(ctx, plan, rate, Some("4MiB"))?);
    }
    Ok(Sweep {
        secs: plan.sweep_secs,
        rows,
    })
}

/// One open-loop DNS run at `rate` with a fresh sensor (default flags, or another ring size).
fn rate_run(ctx: &Ctx, plan: &Plan, rate: u64, ring: Option<&'static str>) -> Result<Row> {
    check_interrupted()?;
    let s = match ring {
        None => ctx.start_sensor()?,
        Some(size) => Sensor::start_with(&ctx.sensor, &["--ring-buffer-size", size])?,
    };
    sleep(SETTLE)?;
    let pid = s.pid;
    let cpu0 = process::cpu_secs(pid);
    let t0 = Instant::now();
    let storm = dns::storm(ctx, plan.sweep_secs, rate)?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = process::cpu_secs(pid) - cpu0;
    let (rss_kib, hwm_kib) = process::memory_kib(pid);
    let report = s.stop()?;
    let c = &storm.client;
    let sent = c.sent as f64 / c.secs;
    let answered = c.answered as f64 / c.secs;
    let stats = report.stats;
    let lost = stats.lost();
    let records = stats.records.unwrap_or(0) as f64;
    let per_record = if records > 0.0 {
        cpu / records * 1e6
    } else {
        f64::NAN
    };
    eprintln!(
        "bench: DNS at {rate} q/s: sent {sent:.0}/s, answered {answered:.0}/s, sensor lost {lost} (dns_lost {}), sensor CPU {:.0}% ({per_record:.2} µs a record)",
        stats.dns_lost.map_or("null".into(), |l| l.to_string()),
        cpu / wall * 100.0,
    );
    Ok(Row {
        target: rate,
        sent_per_s: sent,
        answered_per_s: answered,
        reached: sent >= 0.95 * rate as f64,
        lost,
        sensor_cpu_percent: cpu / wall * 100.0,
        sensor_cpu_us_per_record: per_record,
        rss_kib,
        hwm_kib,
        stats,
        ring,
    })
}
