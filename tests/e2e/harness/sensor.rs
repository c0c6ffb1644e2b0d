//! The sensor under test: started from the binary cargo built, its stdout read as JSON lines,
//! its stderr kept for diagnostics.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        mpsc::{Receiver, RecvTimeoutError, channel},
    },
    time::{Duration, Instant},
};

use serde_json::Value;

/// How long to wait for something the sensor must do (a liveness bound, not a speed check).
pub const PATIENCE: Duration = Duration::from_secs(20);

pub const BIN: &str = env!("CARGO_BIN_EXE_tunnelwatch");

pub struct Sensor {
    child: Option<Child>,
    lines: Receiver<Result<Value, String>>,
    stderr: Arc<Mutex<String>>,
    ready_line: String,
}

/// How a sensor ended.
pub struct Stopped {
    pub status: ExitStatus,
    pub stderr: String,
}

impl Sensor {
    /// Starts `tunnelwatch ARGS` and waits until it says it is ready.
    pub fn start(args: &[&str]) -> Sensor {
        Self::start_command(Command::new(BIN).args(args))
    }

    pub fn start_command(cmd: &mut Command) -> Sensor {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tunnelwatch");
        let (tx, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let parsed =
                    serde_json::from_str::<Value>(&line).map_err(|e| format!("{e}: {line}"));
                if tx.send(parsed).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = channel();
        let err_buf = stderr.clone();
        let child_stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(child_stderr).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("tunnelwatch: ready") {
                    let _ = ready_tx.send(line.clone());
                }
                let mut b = err_buf.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
            }
        });
        let mut sensor = Sensor {
            child: Some(child),
            lines,
            stderr,
            ready_line: String::new(),
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            match ready_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    sensor.ready_line = line;
                    return sensor;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {}
            }
            if let Some(status) = sensor.child.as_mut().unwrap().try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "tunnelwatch exited with {status} before it was ready:\n{}",
                    sensor.stderr()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "tunnelwatch not ready after {PATIENCE:?}:\n{}",
                    sensor.stderr()
                );
            }
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the sensor's stderr has a line containing `text` after the first `skip`
    /// such lines; returns that line.
    pub fn wait_stderr(&self, text: &str, skip: usize) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let err = self.stderr();
            if let Some(line) = err.lines().filter(|l| l.contains(text)).nth(skip) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no stderr line with {text:?} within {PATIENCE:?}:\n{err}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The sensor's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends a signal without waiting.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).unwrap();
    }

    /// The program ids the sensor reported when ready (`programs [1, 2, ...]`).
    pub fn program_ids(&self) -> Vec<u32> {
        let Some((_, list)) = self.ready_line.split_once("programs [") else {
            panic!("no program ids in the ready line: {}", self.ready_line)
        };
        list.trim_end_matches(']')
            .split(',')
            .map(|s| s.trim().parse().expect("program id"))
            .collect()
    }

    /// Reads lines until one satisfies `pred`; returns every line read, that one last.
    pub fn lines_until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Ok(v)) => {
                    let hit = pred(&v);
                    seen.push(v);
                    if hit {
                        return seen;
                    }
                }
                Ok(Err(bad)) => panic!("tunnelwatch printed a line that is not JSON: {bad}"),
                Err(_) => panic!(
                    "no line for {what} within {PATIENCE:?}; lines seen: {seen:#?}\nstderr:\n{}",
                    self.stderr()
                ),
            }
        }
    }

    /// Waits for a line satisfying `pred` and returns it.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.lines_until(what, pred).pop().unwrap()
    }

    /// Sends `signal` and waits for the exit.
    pub fn stop_with(mut self, signal: nix::sys::signal::Signal) -> Stopped {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let status = wait_timeout(&mut child, PATIENCE).unwrap_or_else(|| {
            let _ = child.kill();
            panic!(
                "tunnelwatch did not exit after {signal}:\n{}",
                self.stderr()
            )
        });
        // Let the stderr reader drain.
        std::thread::sleep(Duration::from_millis(50));
        Stopped {
            status,
            stderr: self.stderr(),
        }
    }

    /// SIGINT, then asserts a clean exit.
    pub fn stop(self) -> Stopped {
        let stopped = self.stop_with(nix::sys::signal::Signal::SIGINT);
        assert!(
            stopped.status.success(),
            "tunnelwatch exited with {}:\n{}",
            stopped.status,
            stopped.stderr
        );
        stopped
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Field `key` of a JSON line as a string ("" when absent).
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}
