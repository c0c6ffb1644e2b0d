//! What other processes (not this bench's process tree) do with the CPUs while the bench runs:
//! a thread samples /proc every few seconds, so that the report can say how loaded the machine
//! was by others.
//!
//! May use: serde, bench/process (the clock tick).

use std::{
    collections::HashMap,
    fs,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use serde::Serialize;

use super::process::clock_ticks_per_sec;

/// The sampling thread.
pub struct LoadSampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<OtherLoad>>>,
}

/// One sample: the share of all CPUs that other processes used since the last sample, the
/// 1-minute load average, and the busiest other process.
#[derive(Clone, Debug, Serialize)]
pub struct OtherLoad {
    pub percent: f64,
    #[serde(rename = "loadavg_1min")]
    pub loadavg: f64,
    #[serde(rename = "busiest")]
    pub top: String,
}

/// (pid, ppid, comm, utime + stime ticks) of every process.
fn all_processes() -> Vec<(u32, u32, String, u64)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (head, rest) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ppid = f.get(1)?.parse().ok()?;
            let t: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some((pid, ppid, comm, t))
        })
        .collect()
}

impl LoadSampler {
    pub fn start(every: Duration) -> LoadSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let me = std::process::id();
        let thread = thread::spawn(move || {
            let hz = clock_ticks_per_sec();
            let cpus = thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            let mut samples = Vec::new();
            let mut last: HashMap<u32, u64> = Default::default();
            let mut at = Instant::now();
            let mut first = true;
            while !flag.load(Ordering::Relaxed) {
                let procs = all_processes();
                let parent: HashMap<u32, u32> = procs.iter().map(|p| (p.0, p.1)).collect();
                let ours = |mut pid: u32| {
                    for _ in 0..64 {
                        if pid == me {
                            return true;
                        }
                        match parent.get(&pid) {
                            Some(&pp) if pp != 0 => pid = pp,
                            _ => return false,
                        }
                    }
                    false
                };
                let secs = at.elapsed().as_secs_f64();
                at = Instant::now();
                let mut total = 0u64;
                let mut top = (0u64, String::new());
                for (pid, _, comm, t) in &procs {
                    let d = t.saturating_sub(last.get(pid).copied().unwrap_or(*t));
                    if !ours(*pid) && *pid != 0 {
                        total += d;
                        if d > top.0 {
                            top = (d, comm.clone());
                        }
                    }
                }
                last = procs.iter().map(|p| (p.0, p.3)).collect();
                if !first && secs > 0.0 {
                    let loadavg = fs::read_to_string("/proc/loadavg")
                        .ok()
                        .and_then(|l| l.split_whitespace().next()?.parse().ok())
                        .unwrap_or(f64::NAN);
                    samples.push(OtherLoad {
                        percent: total as f64 / hz / secs / cpus * 100.0,
                        loadavg,
                        top: top.1,
                    });
                }
                first = false;
                let until = Instant::now() + every;
                while Instant::now() < until && !flag.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(100));
                }
            }
            samples
        });
        LoadSampler {
            stop,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> Vec<OtherLoad> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for LoadSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
