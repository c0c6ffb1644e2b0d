//! The UDP storm: 64-byte datagrams from one sender to a receiver on 127.0.0.1:9999 (not a
//! DNS port: the sensor's programs see every packet and let it go); the value is datagrams
//! received per second.
//!
//! May use: bench/worker, bench/ctx, bench/interrupt.

use anyhow::Result;

use super::{Sample, Workload};
use crate::bench::{
    ctx::Ctx,
    interrupt::check_interrupted,
    worker::{UdpArgs, UdpReport, Window, Worker},
};

/// The storm's port.
const PORT: u16 = 9999;

pub const UDP: Workload = Workload {
    key: "udp",
    name: "UDP storm :9999",
    unit: "packets/s",
    rate: true,
    slow: false,
    kernel_cost: true,
    run,
};

fn run(ctx: &Ctx, secs: f64) -> Result<Sample> {
    let out = Worker::Udp(UdpArgs {
        window: Window::soon(secs),
        port: PORT,
        size: 64,
    })
    .spawn(&ctx.xtask)?
    .finish::<UdpReport>()?;
    check_interrupted()?;
    let r = out.report;
    Ok(Sample {
        value: r.received as f64 / r.secs,
        ops: r.sent as f64,
        workload_cpu: out.cpu,
        extra: [
            ("sent_per_s", r.sent as f64 / r.secs),
            ("mb_per_s", r.bytes as f64 / r.secs / 1e6),
        ]
        .into(),
    })
}
