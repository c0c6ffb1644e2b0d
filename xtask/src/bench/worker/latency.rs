//! The exec-to-alert launcher: runs `PROG http <t>` a number of times in turn, a gap apart,
//! where `<t>` is the CLOCK_MONOTONIC time in ns taken by the child right before its exec (the
//! reader of the sensor's stdout subtracts it from the time the alert line arrives).
//!
//! May use: clap, serde, worker/sys, bench/clock.

use std::{ffi::CString, thread, time::Duration};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::sys::{cstring, fork_exec, wait_ok};
use crate::bench::clock::mono_ns;

#[derive(Clone, Debug, PartialEq, clap::Args, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Args {
    /// Launches.
    #[arg(long)]
    pub count: u64,
    /// Microseconds between launches.
    #[arg(long)]
    pub gap_us: u64,
    /// The program (a copy of `true` named `ngrok`).
    #[arg(long)]
    pub prog: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Report {
    pub launched: u64,
}

pub fn run(a: &Args) -> Result<Report> {
    let argv = [cstring(&a.prog)?, cstring("http")?];
    let mut launched = 0u64;
    for _ in 0..a.count {
        let pid = fork_exec(&argv, || CString::new(mono_ns().to_string()).ok())?;
        if wait_ok(pid) {
            launched += 1;
        }
        thread::sleep(Duration::from_micros(a.gap_us));
    }
    Ok(Report { launched })
}
