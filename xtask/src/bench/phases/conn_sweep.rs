//! The connection zero-loss sweep (issue 9): open-loop TCP connect storms with a ClientHello
//! (a flow and a first flight each) at rising rates, a fresh sensor for each rate, whose final
//! stats line decides (`conn_lost`, `flight_lost` and every other loss 0); it stops once the
//! machine cannot reach a rate or after two lossy rates in a row.
//!
//! May use: bench/plan, bench/workloads (the connection storms), bench/configs, bench/tools,
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
    tools::sensor::SensorStats,
    worker::ConnKind,
    workloads::conn,
};

#[derive(Clone, Debug, Serialize)]
pub struct ConnSweep {
    /// Seconds per rate.
    pub secs: f64,
    pub rows: Vec<Row>,
}

/// One rate.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The rate asked for, connections/s.
    pub target: u64,
    pub opened_per_s: f64,
    /// Whether the client opened at least 95 % of the target.
    pub reached: bool,
    /// Everything the sensor lost or dropped.
    pub lost: u64,
    pub sensor_cpu_percent: f64,
    pub hwm_kib: u64,
    #[serde(flatten)]
    pub stats: SensorStats,
}

pub fn run(ctx: &Ctx, plan: &Plan) -> Result<ConnSweep> {
    let mut rows = Vec::new();
    let mut lossy_in_a_row = 0;
    for &rate in &plan.conn_rates {
        let row = rate_run(ctx, plan, rate)?;
        let (reached, lost) = (row.reached, row.lost);
        rows.push(row);
        if !reached {
            break;
        }
        lossy_in_a_row = if lost > 0 { lossy_in_a_row + 1 } else { 0 };
        if lossy_in_a_row >= 2 {
            break;
        }
    }
    Ok(ConnSweep {
        secs: plan.sweep_secs,
        rows,
    })
}

fn rate_run(ctx: &Ctx, plan: &Plan, rate: u64) -> Result<Row> {
    check_interrupted()?;
    let s = ctx.start_sensor()?;
    sleep(SETTLE)?;
    let pid = s.pid;
    let cpu0 = process::cpu_secs(pid);
    let t0 = Instant::now();
    let storm = conn::storm(ctx, plan.sweep_secs, ConnKind::Tls, rate)?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = process::cpu_secs(pid) - cpu0;
    let (_, hwm_kib) = process::memory_kib(pid);
    // The sensor holds flows up to half a second for their first flight: let it hand them out.
    sleep(SETTLE)?;
    let report = s.stop()?;
    let r = &storm.report;
    let opened = r.opened as f64 / r.secs;
    let stats = report.stats;
    let lost = stats.lost();
    eprintln!(
        "bench: connections at {rate}/s: opened {opened:.0}/s, sensor lost {lost} (conn_lost {}, flight_lost {}), sensor CPU {:.0}%",
        stats.conn_lost.map_or("null".into(), |l| l.to_string()),
        stats.flight_lost.map_or("null".into(), |l| l.to_string()),
        cpu / wall * 100.0,
    );
    Ok(Row {
        target: rate,
        opened_per_s: opened,
        reached: opened >= 0.95 * rate as f64,
        lost,
        sensor_cpu_percent: cpu / wall * 100.0,
        hwm_kib,
        stats,
    })
}
