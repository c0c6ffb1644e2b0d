//! What every step of a bench run shares: where the binaries and the scratch files are, how
//! many CPUs the machine has, and the start-up of every sensor started (the start-up goal is
//! measured on all of them).
//!
//! May use: serde, bench/tools (the sensor).

use std::{cell::RefCell, path::PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::tools::sensor::Sensor;

pub struct Ctx {
    /// The release build of xtask, which runs the workers.
    pub xtask: PathBuf,
    /// The sensor binary under test.
    pub sensor: PathBuf,
    /// The run's scratch directory (removed at the end).
    pub work: PathBuf,
    /// A copy of /bin/true named `ngrok` (the latency phase's alerting exec).
    pub ngrok: PathBuf,
    pub nproc: usize,
    startups: RefCell<Vec<Startup>>,
}

/// How long one sensor took to start.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Startup {
    /// Spawn to its ready line, as seen from the bench, in ms.
    pub spawn_to_ready: f64,
    /// What it says (`ready in N ms`).
    pub ready_in: f64,
}

impl Ctx {
    pub fn new(xtask: PathBuf, sensor: PathBuf, work: PathBuf) -> Ctx {
        Ctx {
            ngrok: work.join("bin/ngrok"),
            xtask,
            sensor,
            work,
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            startups: RefCell::default(),
        }
    }

    /// Starts the sensor with default flags and records its start-up.
    pub fn start_sensor(&self) -> Result<Sensor> {
        let s = Sensor::start(&self.sensor)?;
        self.startups.borrow_mut().push(Startup {
            spawn_to_ready: s.startup_ms,
            ready_in: s.ready_ms,
        });
        Ok(s)
    }

    /// Every start-up recorded so far.
    pub fn startups(&self) -> Vec<Startup> {
        self.startups.borrow().clone()
    }
}
