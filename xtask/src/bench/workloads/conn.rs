//! The connection storms (issue 9): new flows to 127.0.0.1, each closed at once, as fast as
//! one core opens them: TCP connect/close; TCP connect, a TLS ClientHello, close; a UDP
//! datagram from a new socket (a new flow each); a QUIC Initial from a new connected socket.
//! The value is flows per second. Each starts a flow the sensor reports, and all but the
//! first have a first flight it captures and reads.
//!
//! May use: bench/worker, bench/ctx, bench/interrupt.

use anyhow::Result;

use super::{Sample, Workload};
use crate::bench::{
    ctx::Ctx,
    interrupt::check_interrupted,
    worker::{ConnArgs, ConnKind, ConnReport, Window, Worker},
};

pub const CONNECT: Workload = Workload {
    key: "connect",
    name: "TCP connect storm",
    unit: "connections/s",
    rate: true,
    slow: false,
    kernel_cost: true,
    run: |ctx, secs| run(ctx, secs, ConnKind::Tcp),
};

pub const TLS: Workload = Workload {
    key: "tls",
    name: "TLS ClientHello storm",
    unit: "connections/s",
    rate: true,
    slow: false,
    kernel_cost: true,
    run: |ctx, secs| run(ctx, secs, ConnKind::Tls),
};

pub const UDP_FLOWS: Workload = Workload {
    key: "udpflow",
    name: "UDP new-flow storm",
    unit: "flows/s",
    rate: true,
    slow: false,
    kernel_cost: true,
    run: |ctx, secs| run(ctx, secs, ConnKind::Udp),
};

pub const QUIC: Workload = Workload {
    key: "quic",
    name: "QUIC Initial storm",
    unit: "flows/s",
    rate: true,
    slow: false,
    kernel_cost: true,
    run: |ctx, secs| run(ctx, secs, ConnKind::Quic),
};

fn run(ctx: &Ctx, secs: f64, kind: ConnKind) -> Result<Sample> {
    let r = storm(ctx, secs, kind, 0)?;
    Ok(Sample {
        value: r.report.opened as f64 / r.report.secs,
        ops: r.report.opened as f64,
        workload_cpu: r.cpu,
        extra: [
            ("errors", r.report.errors as f64),
            ("served_per_s", r.report.served as f64 / r.report.secs),
        ]
        .into(),
    })
}

/// One storm of `kind` for `secs` seconds, at `rate` flows/s (0: as fast as it goes).
pub fn storm(
    ctx: &Ctx,
    secs: f64,
    kind: ConnKind,
    rate: u64,
) -> Result<crate::bench::worker::Output<ConnReport>> {
    let out = Worker::Conn(ConnArgs {
        window: Window::soon(secs),
        kind,
        rate,
    })
    .spawn(&ctx.xtask)?
    .finish::<ConnReport>()?;
    check_interrupted()?;
    Ok(out)
}
