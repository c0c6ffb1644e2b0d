//! The exec storm's worker: a tight fork + exec + wait loop of one program (no arguments, an
//! empty environment), pinned to one CPU, from the start time to the end time.
//!
//! May use: clap, serde, worker/sys, worker/window.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{
    sys::{cstring, fork_exec, pin, wait_ok},
    window::Window,
};

#[derive(Clone, Debug, PartialEq, clap::Args, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Args {
    #[command(flatten)]
    #[serde(flatten)]
    pub window: Window,
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
    a.window.wait_for_start();
    let (mut execs, mut failed) = (0u64, 0u64);
    while !a.window.ended() {
        let pid = fork_exec(&argv, || None)?;
        if wait_ok(pid) {
            execs += 1;
        } else {
            failed += 1;
        }
    }
    // Up to the end of the last exec.
    let secs = (crate::bench::clock::mono_ns() - a.window.start) as f64 / 1e9;
    Ok(Report {
        execs,
        failed,
        secs,
    })
}
