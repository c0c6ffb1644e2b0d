//! The "mixed realistic load": a build of a small generated crate from clean with `cargo build
//! --offline` (rustc, cc, the linker: many execs, files, a little of everything); the value is
//! its seconds.
//!
//! May use: bench/workloads/crate_gen, bench/ctx, bench/interrupt, setup (the toolchain).

use std::{
    fs,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use super::{Sample, Workload, crate_gen};
use crate::{
    bench::{ctx::Ctx, interrupt::check_interrupted},
    setup::TOOLCHAIN,
};

pub const BUILD: Workload = Workload {
    key: "build",
    name: "cargo build",
    unit: "s",
    rate: false,
    slow: true,
    kernel_cost: false,
    run,
};

/// Builds the generated crate (written on first use) from clean.
fn run(ctx: &Ctx, _secs: f64) -> Result<Sample> {
    let dir = ctx.work.join("load-crate");
    if !dir.join("Cargo.toml").is_file() {
        crate_gen::write(&dir)?;
    }
    let target = dir.join("target");
    let _ = fs::remove_dir_all(&target);
    let mut cmd = Command::new("cargo");
    cmd.args(["build", "--offline", "-q"])
        .current_dir(&dir)
        .env_clear()
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTUP_TOOLCHAIN", TOOLCHAIN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in ["PATH", "HOME", "RUSTUP_HOME", "CARGO_HOME"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    let t0 = Instant::now();
    let out = cmd.output().context("cannot run cargo build")?;
    let took = t0.elapsed().as_secs_f64();
    check_interrupted()?;
    if !out.status.success() {
        bail!(
            "the load crate did not build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(Sample {
        value: took,
        ..Sample::default()
    })
}
