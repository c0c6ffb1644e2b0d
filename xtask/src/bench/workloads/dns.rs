//! The DNS storm: a responder on 127.0.0.1:53 and a client sending A and AAAA queries in turn
//! with `sendto`, closed loop (8 in flight per socket, 2 sockets); the value is queries
//! answered per second. [`storm`] at a fixed rate is also the zero-loss sweep's open loop.
//!
//! May use: bench/worker, bench/ctx, bench/interrupt.

use anyhow::{Result, bail};

use super::{Sample, Workload};
use crate::bench::{
    ctx::Ctx,
    interrupt::check_interrupted,
    worker::{DnsClientArgs, DnsClientReport, DnsServerArgs, DnsServerReport, Window, Worker},
};

/// DNS.
const PORT: u16 = 53;

pub const DNS: Workload = Workload {
    key: "dns",
    name: "DNS storm :53",
    unit: "queries/s",
    rate: true,
    slow: false,
    kernel_cost: true,
    run,
};

fn run(ctx: &Ctx, secs: f64) -> Result<Sample> {
    let s = storm(ctx, secs, 0)?;
    let r = &s.client;
    Ok(Sample {
        value: r.answered as f64 / r.secs,
        ops: r.answered as f64,
        workload_cpu: s.client_cpu + s.server_cpu,
        extra: [
            ("sent_per_s", r.sent as f64 / r.secs),
            ("timeouts", r.timeouts as f64),
        ]
        .into(),
    })
}

/// What one storm measured.
pub struct Storm {
    pub client: DnsClientReport,
    pub client_cpu: f64,
    /// NaN when the responder did not report.
    pub server_cpu: f64,
}

/// A DNS responder on 127.0.0.1:53 and a client, closed loop (`rate` 0) or at `rate` q/s.
pub fn storm(ctx: &Ctx, secs: f64, rate: u64) -> Result<Storm> {
    // The responder serves until its stdin closes (after the client is done), then reports
    // its CPU time.
    let mut server = Worker::DnsServer(DnsServerArgs {
        port: PORT,
        end: Window::soon(secs + 10.0).end,
        threads: 1,
    })
    .spawn_with_stdin(&ctx.xtask)?;
    match server.read_line() {
        Some(l) if l == "ready" => {}
        other => bail!("the DNS responder did not start: {other:?}"),
    }
    let client = Worker::DnsClient(DnsClientArgs {
        port: PORT,
        window: Window::soon(secs),
        threads: 2,
        in_flight: 8,
        rate,
    })
    .spawn(&ctx.xtask)?
    .finish::<DnsClientReport>()?;
    server.close_stdin();
    let server = server.finish::<DnsServerReport>();
    check_interrupted()?;
    Ok(Storm {
        client: client.report,
        client_cpu: client.cpu,
        server_cpu: server.map_or(f64::NAN, |s| s.cpu),
    })
}
