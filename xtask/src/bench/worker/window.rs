//! The time window of one run: a start and an end on CLOCK_MONOTONIC, the same for every worker
//! of the run, so that they start together and measure the same span.
//!
//! May use: clap, serde, worker/sys, bench/clock.

use serde::Serialize;

use super::sys::sleep_until;
use crate::bench::clock::mono_ns;

#[derive(Clone, Copy, Debug, PartialEq, clap::Args, Serialize)]
pub struct Window {
    /// CLOCK_MONOTONIC ns to start at.
    #[arg(long)]
    pub start: u64,
    /// CLOCK_MONOTONIC ns to stop at.
    #[arg(long)]
    pub end: u64,
}

impl Window {
    /// `secs` seconds from a start a little ahead (time for the workers to start).
    pub fn soon(secs: f64) -> Window {
        let start = mono_ns() + 150_000_000;
        Window {
            start,
            end: start + (secs * 1e9) as u64,
        }
    }

    /// Sleeps until the start.
    pub fn wait_for_start(&self) {
        sleep_until(self.start);
    }

    /// Whether the end has come.
    pub fn ended(&self) -> bool {
        mono_ns() >= self.end
    }

    /// Its length in seconds.
    pub fn secs(&self) -> f64 {
        (self.end - self.start) as f64 / 1e9
    }
}
