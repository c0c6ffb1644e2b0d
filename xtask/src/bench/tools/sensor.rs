//! The tunnelwatch sensor under test (the release binary, default flags unless told): started
//! as a child whose stdout a thread reads (each line stamped with the time it was read),
//! ready when it prints its `ready` line (which names its programs' ids), stopped with SIGINT,
//! after which its final stats line says what it saw and lost.
//!
//! May use: serde, bench/process, bench/interrupt, bench/clock.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Stdio},
    sync::{Arc, Mutex},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::bench::{
    clock::{mono_ns, real_ns},
    process::{Lines, detached, stop_child},
};

/// The sensor's programs, in the order of the ids its ready line lists.
pub const PROGRAMS: [&str; 9] = [
    "sched_process_exec",
    "sched_process_fork",
    "sched_process_exit",
    "dns_egress",
    "dns_ingress",
    "conn_connect4",
    "conn_connect6",
    "conn_sendmsg4",
    "conn_sendmsg6",
];

/// A stdout line of the sensor and the CLOCK_MONOTONIC and CLOCK_REALTIME times its read
/// returned.
pub type StampedLine = (u64, u64, String);

/// The tunnelwatch release binary, default flags.
pub struct Sensor {
    child: Option<Child>,
    pub pid: u32,
    /// Program ids in the order of the ready line ([`PROGRAMS`]).
    pub program_ids: Vec<u32>,
    /// Spawn to the ready line, as seen from here.
    pub startup_ms: f64,
    /// What the sensor says (`ready in N ms`).
    pub ready_ms: f64,
    stderr: Lines,
    stderr_seen: Vec<String>,
    /// Stdout lines with the time they were read.
    pub lines: Arc<Mutex<Vec<StampedLine>>>,
    stdout_thread: Option<JoinHandle<()>>,
}

/// What a stopped sensor reported.
pub struct SensorReport {
    /// The final `tunnelwatch: stats {...}` object.
    pub stats: SensorStats,
    pub stderr: Vec<String>,
}

/// The counters of the sensor's stats line that the bench reads (absent ones are None).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Serialize)]
#[serde(default)]
pub struct SensorStats {
    pub exec_lost: Option<u64>,
    pub fork_lost: Option<u64>,
    pub exit_lost: Option<u64>,
    pub dns_lost: Option<u64>,
    pub conn_lost: Option<u64>,
    pub flight_lost: Option<u64>,
    pub output_dropped: Option<u64>,
    pub decode_errors: Option<u64>,
    pub records: Option<u64>,
    pub exec_seen: Option<u64>,
    pub dns_seen: Option<u64>,
    pub dns_messages: Option<u64>,
    pub conn_seen: Option<u64>,
    pub flight_seen: Option<u64>,
}

impl SensorStats {
    /// Everything lost or dropped: all of these must be 0 for "zero loss".
    pub fn lost(&self) -> u64 {
        [
            self.exec_lost,
            self.fork_lost,
            self.exit_lost,
            self.dns_lost,
            self.conn_lost,
            self.flight_lost,
            self.output_dropped,
            self.decode_errors,
        ]
        .into_iter()
        .flatten()
        .sum()
    }
}

impl SensorReport {
    /// Warnings the sensor logged.
    pub fn warnings(&self) -> usize {
        self.stderr.iter().filter(|l| l.contains("WARN")).count()
    }
}

/// Stdout lines kept at most (alerts in the latency phase; none otherwise).
const LINES_KEPT: usize = 1_000_000;

impl Sensor {
    /// Starts the sensor with default flags.
    pub fn start(bin: &Path) -> Result<Sensor> {
        Sensor::start_with(bin, &[])
    }

    pub fn start_with(bin: &Path, args: &[&str]) -> Result<Sensor> {
        let t0 = Instant::now();
        let mut child = detached(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id();
        let stderr = Lines::read(child.stderr.take().expect("piped"));
        let stdout = child.stdout.take().expect("piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        let stdout_thread = thread::spawn(move || {
            let mut r = BufReader::with_capacity(1 << 16, stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let (t, r) = (mono_ns(), real_ns());
                        let mut k = kept.lock().expect("lines");
                        if k.len() < LINES_KEPT {
                            k.push((t, r, line.trim_end().to_string()));
                        }
                    }
                }
            }
        });
        let mut sensor = Sensor {
            child: Some(child),
            pid,
            program_ids: Vec::new(),
            startup_ms: 0.0,
            ready_ms: 0.0,
            stderr,
            stderr_seen: Vec::new(),
            lines,
            stdout_thread: Some(stdout_thread),
        };
        let ready = sensor
            .stderr
            .wait_for(&mut sensor.stderr_seen, Duration::from_secs(60), |l| {
                l.starts_with("tunnelwatch: ready")
            });
        let ready = match ready {
            Ok(l) => l,
            Err(e) => bail!(
                "tunnelwatch did not get ready ({e}); its stderr:\n{}",
                sensor.stderr_seen.join("\n")
            ),
        };
        sensor.startup_ms = t0.elapsed().as_secs_f64() * 1e3;
        sensor.ready_ms = ready
            .strip_prefix("tunnelwatch: ready in ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(f64::NAN);
        sensor.program_ids = ready
            .rsplit_once("programs [")
            .and_then(|(_, r)| r.split_once(']'))
            .map(|(ids, _)| {
                ids.split(',')
                    .filter_map(|i| i.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if sensor.program_ids.len() < PROGRAMS.len() {
            bail!(
                "cannot read {} program ids from the ready line: {ready}",
                PROGRAMS.len()
            );
        }
        Ok(sensor)
    }

    /// SIGINT, then the final stats line.
    pub fn stop(mut self) -> Result<SensorReport> {
        let mut child = self.child.take().expect("running");
        let clean = stop_child(&mut child, Signal::SIGINT, Duration::from_secs(15));
        let mut seen = std::mem::take(&mut self.stderr_seen);
        self.stderr.rest(&mut seen);
        if let Some(t) = self.stdout_thread.take() {
            let _ = t.join();
        }
        if !clean {
            bail!(
                "tunnelwatch did not exit on SIGINT; its stderr:\n{}",
                seen.join("\n")
            );
        }
        let stats = seen
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("tunnelwatch: stats "))
            .and_then(|j| serde_json::from_str(j).ok())
            .with_context(|| format!("no final stats line; stderr:\n{}", seen.join("\n")))?;
        Ok(SensorReport {
            stats,
            stderr: seen,
        })
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            stop_child(c, Signal::SIGINT, Duration::from_secs(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SensorStats;

    #[test]
    fn reads_the_stats_line() {
        let line = r#"{"exec_seen":10,"exec_lost":1,"dns_lost":2,"output_dropped":3,"records":9,"alerts":4}"#;
        let s: SensorStats = serde_json::from_str(line).unwrap();
        assert_eq!(
            (s.exec_seen, s.records, s.fork_lost),
            (Some(10), Some(9), None)
        );
        assert_eq!(s.lost(), 6);
    }
}
