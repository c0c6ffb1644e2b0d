//! The bench's child processes: started in a process group of their own (Ctrl-C reaches only
//! xtask, which stops them in order) with PR_SET_PDEATHSIG (a killed xtask takes them down),
//! stopped with a signal and a deadline, killed when dropped; their stderr read line by line;
//! their CPU time and memory read from /proc.
//!
//! May use: nix, bench/interrupt.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    process::{Child, Command},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use nix::{
    sys::signal::{Signal, kill},
    unistd::{Pid, SysconfVar, sysconf},
};

use super::interrupt::check_interrupted;

/// A command in its own process group that gets SIGTERM when xtask dies.
pub fn detached(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.process_group(0);
    // SAFETY: prctl is async-signal-safe and allocates nothing.
    unsafe {
        c.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
            Ok(())
        });
    }
    c
}

/// Sends `sig`, waits up to `limit`, then SIGKILLs. Returns whether it ended by itself.
pub fn stop_child(child: &mut Child, sig: Signal, limit: Duration) -> bool {
    if let Ok(Some(_)) = child.try_wait() {
        return true;
    }
    // Our own child, not yet reaped: the pid is still its.
    let _ = kill(Pid::from_raw(child.id() as i32), sig);
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// A child process killed (SIGKILL) if still running when dropped.
pub struct Owned(pub Option<Child>);

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            stop_child(c, Signal::SIGKILL, Duration::from_secs(2));
        }
    }
}

/// `VmRSS` and `VmHWM` of `pid` in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resident KiB of `pid`'s mappings of BPF maps (the ring buffers, whose data pages the
/// kernel maps twice, back to back, so that a record can wrap around the end).
pub fn bpf_map_rss_kib(pid: u32) -> u64 {
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut in_map = false;
    let mut kib = 0;
    for l in smaps.lines() {
        let first = l.split_whitespace().next().unwrap_or_default();
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            in_map = l.contains("bpf-map");
        } else if in_map && let Some(v) = l.strip_prefix("Rss:") {
            kib += v
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    kib
}

/// User + system CPU time of process `pid` (all its threads), in seconds.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line; 12 and 13 after ')'.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    ticks as f64 / clock_ticks_per_sec()
}

/// The unit of /proc's CPU times (`_SC_CLK_TCK`).
pub fn clock_ticks_per_sec() -> f64 {
    sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as f64
}

/// Stderr lines of a child, as they come.
pub struct Lines {
    rx: Receiver<String>,
    thread: Option<JoinHandle<()>>,
}

impl Lines {
    pub fn read(input: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            for line in BufReader::new(input).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            thread: Some(thread),
        }
    }

    /// Waits for a line for which `want` holds, keeping every line seen in `seen`.
    pub fn wait_for(
        &self,
        seen: &mut Vec<String>,
        limit: Duration,
        want: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let until = Instant::now() + limit;
        loop {
            check_interrupted()?;
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("timed out");
            }
            match self.rx.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok(line) => {
                    let hit = want(&line);
                    seen.push(line.clone());
                    if hit {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => bail!("the process ended"),
            }
        }
    }

    /// Every line until the writer closes (after the process ended).
    pub fn rest(&mut self, seen: &mut Vec<String>) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        seen.extend(self.rx.try_iter());
    }
}

#[cfg(test)]
mod tests {
    use std::process::Stdio;

    use super::*;

    #[test]
    fn a_child_is_stopped_then_killed() {
        let mut sleeper = detached("sleep").arg("30").spawn().unwrap();
        assert!(stop_child(
            &mut sleeper,
            Signal::SIGTERM,
            Duration::from_secs(5)
        ));
        // `sh` ignoring SIGINT: killed after the deadline.
        let mut stubborn = detached("sh")
            .args(["-c", "trap '' INT; sleep 30"])
            .spawn()
            .unwrap();
        thread::sleep(Duration::from_millis(100));
        assert!(!stop_child(
            &mut stubborn,
            Signal::SIGINT,
            Duration::from_millis(200)
        ));
    }

    #[test]
    fn lines_are_read_as_they_come() {
        let mut child = Command::new("sh")
            .args(["-c", "echo one; echo two; echo three"])
            .stderr(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = Lines::read(child.stdout.take().unwrap());
        let mut seen = Vec::new();
        let two = lines
            .wait_for(&mut seen, Duration::from_secs(10), |l| l == "two")
            .unwrap();
        assert_eq!(two, "two");
        child.wait().unwrap();
        lines.rest(&mut seen);
        assert_eq!(seen, ["one", "two", "three"]);
        let me = std::process::id();
        assert!(cpu_secs(me) >= 0.0 && memory_kib(me).0 > 0);
    }
}
