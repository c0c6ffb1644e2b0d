//! The idle sensor: its memory (VmRSS, VmHWM, and how much of it is the BPF maps' mappings)
//! and CPU when left alone for 2 s, and the same with a quarter of the default ring buffer.
//!
//! May use: bench/tools, bench/ctx, bench/process, bench/interrupt, serde.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::bench::{ctx::Ctx, interrupt::sleep, process, tools::sensor::Sensor};

#[derive(Clone, Debug, Serialize)]
pub struct Idle {
    pub rss_at_ready_kib: u64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub bpf_map_rss_kib: u64,
    pub cpu_percent: f64,
    pub ring_4mib: SmallRing,
}

/// The sensor with `--ring-buffer-size 4MiB`.
#[derive(Clone, Debug, Serialize)]
pub struct SmallRing {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub bpf_map_rss_kib: u64,
}

pub fn run(ctx: &Ctx) -> Result<Idle> {
    eprintln!("bench: idle sensor");
    let s = ctx.start_sensor()?;
    let (rss_at_ready_kib, _) = process::memory_kib(s.pid);
    let cpu0 = process::cpu_secs(s.pid);
    sleep(Duration::from_secs(2))?;
    let (rss_kib, hwm_kib) = process::memory_kib(s.pid);
    let bpf_map_rss_kib = process::bpf_map_rss_kib(s.pid);
    let cpu = process::cpu_secs(s.pid) - cpu0;
    s.stop()?;
    // The same with a smaller ring buffer: how much of the resident memory is the ring's.
    let small = Sensor::start_with(&ctx.sensor, &["--ring-buffer-size", "4MiB"])?;
    sleep(Duration::from_secs(1))?;
    let (small_rss, small_hwm) = process::memory_kib(small.pid);
    let small_maps = process::bpf_map_rss_kib(small.pid);
    small.stop()?;
    Ok(Idle {
        rss_at_ready_kib,
        rss_kib,
        hwm_kib,
        bpf_map_rss_kib,
        cpu_percent: cpu / 2.0 * 100.0,
        ring_4mib: SmallRing {
            rss_kib: small_rss,
            hwm_kib: small_hwm,
            bpf_map_rss_kib: small_maps,
        },
    })
}
