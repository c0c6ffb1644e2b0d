//! TCP bulk: one connection over 127.0.0.1 (an ephemeral port), a writer of 128 KiB chunks and
//! a reader; the value is MB/s received.
//!
//! May use: bench/worker, bench/ctx, bench/interrupt.

use anyhow::Result;

use super::{Sample, Workload};
use crate::bench::{
    ctx::Ctx,
    interrupt::check_interrupted,
    worker::{TcpArgs, TcpReport, Window, Worker},
};

pub const TCP: Workload = Workload {
    key: "tcp",
    name: "TCP bulk",
    unit: "MB/s",
    rate: true,
    slow: false,
    kernel_cost: true,
    run,
};

fn run(ctx: &Ctx, secs: f64) -> Result<Sample> {
    let out = Worker::Tcp(TcpArgs {
        window: Window::soon(secs),
    })
    .spawn(&ctx.xtask)?
    .finish::<TcpReport>()?;
    check_interrupted()?;
    let r = out.report;
    Ok(Sample {
        value: r.bytes as f64 / r.secs / 1e6,
        ops: r.bytes as f64 / 1e6,
        workload_cpu: out.cpu,
        extra: [("segments_per_s", r.segments as f64 / r.secs)].into(),
    })
}
