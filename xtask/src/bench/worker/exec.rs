//! The exec storm's worker: a tight fork + exec + wait loop of one program (no arguments, an
//! empty environment), pinned to one CPU, from the start time to the end time.
//!
//! May use: clap, serde, worker/sys, bench/clock.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::sys::{cstring, fork_exec, pin, sleep_until, wait_ok};
use crate::bench::clock::mono_ns;

#[derive(Clone, Debug, PartialEq, clap::Args, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Args {
    /// CLOCK_MONOTONIC ns to start at.
    #[arg(long)]
    pub start: u64,
    /// CLOCK_MONOTONIC ns to stop at.
    #[arg(long)]
    pub end: u64,
    /// The CPU to pin to (modulo the CPUs there are).
    #[arg(long)]
    pub cpu: usize,
    /// The program to run.
    #[arg(long)]
    pub prog: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Report {
    pub execs: u64,
    pub failed: u64,
    pub secs: f64,
}

pub fn run(a: &Args) -> Result<Report> {
    pin(a.cpu);
    let argv = [cstring(&a.prog)?];
    sleep_until(a.start);
    let (mut execs, mut failed) = (0u64, 0u64);
    while mono_ns() < a.end {
        let pid = fork_exec(&argv, || None)?;
        if wait_ok(pid) {
            execs += 1;
        } else {
            failed += 1;
        }
    }
    let secs = (mono_ns() - a.start) as f64 / 1e9;
    Ok(Report {
        execs,
        failed,
        secs,
    })
}
