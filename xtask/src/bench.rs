//! `cargo xtask bench [--quick]`: what tunnelwatch costs the host, against the tools an admin
//! would run instead, all in one run on this machine, on loopback only. This file runs the
//! phases in order; each part of the bench is a module of its own:
//!
//! - plan.rs: the command line and the plan (repetitions, seconds, selections).
//! - host.rs, load.rs: the machine (facts, settings changed and restored, other load).
//! - configs.rs and tools/: the configurations: bare, the tunnelwatch release binary (default
//!   flags, stdout read by a thread), auditd (an execve rule, Debian's backlog settings, its
//!   log in a temporary directory), a bpftrace one-liner printing execs and DNS sends, and
//!   empty programs on tunnelwatch's hooks (the floor any eBPF sensor on them pays).
//! - workloads/ and worker/: exec storm (fork + exec + wait of /bin/true, a loop pinned to
//!   each CPU); UDP storm to 127.0.0.1:9999 (64-byte datagrams); bulk TCP over 127.0.0.1; DNS
//!   storm (A and AAAA in turn to a responder on 127.0.0.1:53, closed loop); a build of a
//!   small generated crate from clean. The load comes from `xtask bench worker ...`
//!   subprocesses of the release xtask.
//! - phases/: **overhead** as alternating pairs (a bare run and a run with one configuration,
//!   back to back, which first alternating, configurations taking turns; the slowdown is the
//!   median of the pairs' ratios, with their min .. max); **kernel cost** per program run
//!   (`kernel.bpf_stats_enabled`, beside empty programs on the same hooks); **zero loss** (open
//!   loop DNS at rising rates, a fresh sensor per rate); **exec-to-alert latency**; and the
//!   idle sensor's memory. Start-up (spawn to `ready`) of every sensor started is kept.
//! - results.rs, report/: the typed results, the table and `target/bench/results.json`.
//!
//! Nothing is timed in tests: this command only reports.
//!
//! May use: its own files (bench/), shell, setup.

mod bpf;
mod clock;
mod configs;
mod ctx;
mod host;
mod interrupt;
mod load;
mod phases;
mod plan;
mod process;
mod report;
mod results;
mod stats;
mod tools;
mod worker;
mod workloads;

use std::{collections::BTreeMap, fs, time::Instant};

use anyhow::{Context as _, Result, bail};

pub use self::plan::Args;
use self::{
    configs::{CONFIGS, Config, Running},
    ctx::Ctx,
    host::{ScratchDir, TracefsGuard},
    phases::{conn_sweep, idle, kernel_cost, latency, overhead, sweep},
    plan::{Internal, Plan},
    results::Results,
    tools::{auditd, bpftrace::Bpftrace},
};
use crate::shell::{self, cargo};

pub fn run(args: &Args) -> Result<()> {
    if let Some(Internal::Worker(w)) = &args.internal {
        return worker::main(w);
    }
    if !shell::is_root() {
        bail!("the bench loads BPF programs and audit rules: run it as root");
    }
    let plan = Plan::new(args)?;
    interrupt::catch_signals()?;
    let root = shell::workspace_root();
    let started = Instant::now();
    if !args.no_build {
        cargo(["build", "--release"])?;
    }
    let release = root.join("target/release");
    let sensor = args
        .sensor
        .clone()
        .unwrap_or_else(|| release.join("tunnelwatch"));
    let xtask = release.join("xtask");
    for bin in [&sensor, &xtask] {
        if !bin.is_file() {
            bail!("{} is missing: build first", bin.display());
        }
    }
    host::install_comparators();

    let work = ScratchDir::create(
        std::env::temp_dir().join(format!("tunnelwatch-bench-{}", std::process::id())),
    )?;
    let ctx = Ctx::new(xtask, sensor, work.0.clone());
    fs::create_dir_all(ctx.ngrok.parent().expect("a bin directory"))?;
    fs::copy("/bin/true", &ctx.ngrok).context("cannot copy /bin/true")?;
    if let Some(max) = args.wait_load {
        host::wait_for_load(max)?;
    }
    let _tracefs = TracefsGuard::mount();
    let machine = host::machine();
    let load_before = host::loadavg();
    let sampler = load::LoadSampler::start(std::time::Duration::from_secs(5));
    eprintln!(
        "bench: {} CPUs ({}), kernel {}; load average {load_before}; plan {plan:?}",
        ctx.nproc, machine.cpu, machine.kernel
    );
    let others = host::foreign_tunnelwatch_programs();
    if others > 0 {
        eprintln!(
            "bench: warning: {others} BPF programs of another tunnelwatch are loaded (other tests?); they add to every configuration"
        );
    }

    let unavailable = unavailable(&ctx, &plan);
    for (c, why) in &unavailable {
        eprintln!("bench: {} n/a: {why}", c.name());
    }
    let available: Vec<Config> = CONFIGS[1..]
        .iter()
        .copied()
        .filter(|c| !unavailable.contains_key(c))
        .collect();
    let kprobes = host::kprobe_note();

    let idle = idle::run(&ctx)?;
    let overhead = if plan.phase("overhead") {
        overhead::run(&ctx, &plan, &available)?
    } else {
        Vec::new()
    };
    let kernel = plan
        .phase("kernel")
        .then(|| kernel_cost::run(&ctx, &plan, &available))
        .transpose()?;
    let sweep = plan
        .phase("sweep")
        .then(|| sweep::run(&ctx, &plan))
        .transpose()?;
    let conn_sweep = plan
        .phase("connsweep")
        .then(|| conn_sweep::run(&ctx, &plan))
        .transpose()?;
    let latency = plan
        .phase("latency")
        .then(|| latency::run(&ctx, &plan))
        .transpose()?;
    let load_after = host::loadavg();
    let others = sampler.finish();

    let results = Results {
        date: host::date(),
        machine,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        sensor: ctx.sensor.display().to_string(),
        quick: args.quick,
        plan: format!("{plan:?}"),
        load_before,
        load_after,
        others,
        wall_secs: started.elapsed().as_secs_f64(),
        unavailable,
        kprobes,
        idle,
        overhead,
        kernel,
        sweep,
        conn_sweep,
        latency,
        startups: ctx.startups(),
    };
    let (table, json) = report::render(&results)?;
    println!("{table}");
    let out_dir = root.join("target/bench");
    fs::create_dir_all(&out_dir)?;
    let path = out_dir.join("results.json");
    fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")?;
    eprintln!(
        "bench: wrote {} ({:.0} s in all)",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The configurations that will not run, and why: not selected, or their tool cannot start
/// here (each comparator is started and stopped once to find out).
fn unavailable(ctx: &Ctx, plan: &Plan) -> BTreeMap<Config, String> {
    let mut out = BTreeMap::new();
    for c in CONFIGS[1..].iter().filter(|c| !plan.configs.contains(c)) {
        out.insert(*c, "not selected (--configs)".to_string());
    }
    if let std::collections::btree_map::Entry::Vacant(slot) = out.entry(Config::Auditd) {
        if let Some(why) = auditd::auditd_unavailable() {
            slot.insert(why);
        } else if let Err(e) = Running::start(ctx, Config::Auditd).and_then(Running::stop) {
            slot.insert(format!("{e:#}"));
        }
    }
    if !out.contains_key(&Config::Bpftrace)
        && let Err(e) = Bpftrace::start(&ctx.work).map(Bpftrace::stop)
    {
        out.insert(Config::Bpftrace, format!("{e:#}"));
    }
    out
}
