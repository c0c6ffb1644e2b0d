//! The exec storm: one fork + exec + wait loop of /bin/true pinned to each CPU; the value is
//! execs per second, all loops together.
//!
//! May use: bench/worker, bench/ctx, bench/interrupt.

use anyhow::{Result, bail};

use super::{Sample, Workload};
use crate::bench::{
    ctx::Ctx,
    interrupt::check_interrupted,
    worker::{ExecArgs, ExecReport, Window, Worker},
};

pub const EXEC: Workload = Workload {
    key: "exec",
    name: "exec storm",
    unit: "execs/s",
    rate: true,
    slow: false,
    kernel_cost: true,
    run,
};

fn run(ctx: &Ctx, secs: f64) -> Result<Sample> {
    let window = Window::soon(secs);
    let workers = (0..ctx.nproc)
        .map(|cpu| {
            Worker::Exec(ExecArgs {
                window,
                cpu,
                prog: "/bin/true".into(),
            })
            .spawn(&ctx.xtask)
        })
        .collect::<Result<Vec<_>>>()?;
    let (mut execs, mut failed, mut took, mut cpu) = (0, 0, 0.0f64, 0.0);
    for w in workers {
        let out = w.finish::<ExecReport>()?;
        check_interrupted()?;
        execs += out.report.execs;
        failed += out.report.failed;
        took = took.max(out.report.secs);
        cpu += out.cpu;
    }
    if failed > 0 {
        bail!("{failed} execs of /bin/true failed");
    }
    Ok(Sample {
        value: execs as f64 / took,
        ops: execs as f64,
        workload_cpu: cpu,
        extra: [("execs", execs as f64)].into(),
    })
}
