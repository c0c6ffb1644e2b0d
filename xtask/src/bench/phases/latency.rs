//! The exec-to-alert latency: a launcher takes CLOCK_MONOTONIC right before exec'ing a copy of
//! /bin/true named `ngrok` with `http <t>`, 1 ms apart; the reader of the sensor's stdout
//! takes it when the alert line arrives. The alert's own `time` (the kernel's timestamp of the
//! exec) against the wall clock at the read gives the sensor's share.
//!
//! May use: bench/plan, bench/worker, bench/configs, bench/ctx, bench/clock, bench/stats,
//! bench/interrupt, serde.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::bench::{
    clock::rfc3339_ns,
    configs::SETTLE,
    ctx::Ctx,
    interrupt::sleep,
    plan::Plan,
    stats::quantile,
    worker::{LatencyArgs, LatencyReport, Worker},
};

#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub launched: u64,
    pub alerts: usize,
    pub missing: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub min_us: f64,
    /// From the exec's kernel timestamp (the alert's `time`) to the line read.
    pub tracepoint_to_line: SensorShare,
    pub sensor_lost: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SensorShare {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

/// The fields of an alert line the latency reads.
#[derive(Deserialize)]
struct Alert {
    #[serde(default)]
    process: String,
    #[serde(default)]
    time: String,
}

pub fn run(ctx: &Ctx, plan: &Plan) -> Result<Latency> {
    eprintln!(
        "bench: exec-to-alert latency ({} launches)",
        plan.latency_count
    );
    let s = ctx.start_sensor()?;
    sleep(SETTLE)?;
    let launched = Worker::Latency(LatencyArgs {
        count: plan.latency_count,
        gap_us: 1000,
        prog: ctx.ngrok.display().to_string(),
    })
    .spawn(&ctx.xtask)?
    .finish::<LatencyReport>()?
    .report
    .launched;
    let until = Instant::now() + Duration::from_secs(5);
    while (s.lines.lock().expect("lines").len() as u64) < launched && Instant::now() < until {
        sleep(Duration::from_millis(20))?;
    }
    let lines = s.lines.lock().expect("lines").clone();
    let report = s.stop()?;
    let prefix = format!("{} http ", ctx.ngrok.display());
    // Launch to alert line; and the part from the tracepoint to the alert line.
    let mut lat_us: Vec<f64> = Vec::new();
    let mut sensor_us: Vec<f64> = Vec::new();
    for (mono, real, line) in &lines {
        let Ok(alert) = serde_json::from_str::<Alert>(line) else {
            continue;
        };
        let Some(sent) = alert
            .process
            .strip_prefix(&prefix)
            .and_then(|t| t.trim().parse::<u64>().ok())
        else {
            continue;
        };
        lat_us.push(mono.saturating_sub(sent) as f64 / 1e3);
        if let Some(at) = rfc3339_ns(&alert.time) {
            sensor_us.push((*real as f64 - at as f64) / 1e3);
        }
    }
    lat_us.sort_by(f64::total_cmp);
    sensor_us.sort_by(f64::total_cmp);
    let q = |p: f64| quantile(&lat_us, p);
    let qs = |p: f64| quantile(&sensor_us, p);
    Ok(Latency {
        launched,
        alerts: lat_us.len(),
        missing: launched.saturating_sub(lat_us.len() as u64),
        p50_us: q(0.50),
        p90_us: q(0.90),
        p99_us: q(0.99),
        p999_us: q(0.999),
        max_us: lat_us.last().copied().unwrap_or(f64::NAN),
        min_us: lat_us.first().copied().unwrap_or(f64::NAN),
        tracepoint_to_line: SensorShare {
            p50_us: qs(0.50),
            p99_us: qs(0.99),
            p999_us: qs(0.999),
        },
        sensor_lost: report.stats.lost(),
    })
}
