//! The tools under test, each started before a run and stopped after it: the tunnelwatch
//! sensor, auditd with an execve rule, and a bpftrace one-liner. Each is an owned value whose
//! `Drop` stops what it started (process killed, audit rule deleted, audit settings restored),
//! so an error, a panic or Ctrl-C (see `interrupted`) leaves nothing behind. Their processes get
//! a process group of their own (Ctrl-C reaches only xtask, which stops them in order) and
//! PR_SET_PDEATHSIG, so even a killed xtask takes them down.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::clock::{mono_ns, real_ns};
use crate::shell::capture;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGINT and SIGTERM set a flag that the bench checks between steps (and while waiting).
pub fn catch_signals() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Fails once SIGINT or SIGTERM arrived.
pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps, in small steps so that Ctrl-C is noticed.
pub fn sleep(d: Duration) -> Result<()> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        check_interrupted()?;
        thread::sleep((until - Instant::now()).min(Duration::from_millis(20)));
    }
    Ok(())
}

/// A command in its own process group that gets SIGTERM when xtask dies.
pub fn detached(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.process_group(0);
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    c
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: a pid of our own child, not yet reaped.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// Sends `sig`, waits up to `limit`, then SIGKILLs. Returns whether it ended by itself.
pub fn stop_child(child: &mut Child, sig: i32, limit: Duration) -> bool {
    if let Ok(Some(_)) = child.try_wait() {
        return true;
    }
    signal(child.id(), sig);
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
            stop_child(c, libc::SIGKILL, Duration::from_secs(2));
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
    // SAFETY: plain sysconf.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// Stderr lines of a child, as they come.
struct Lines {
    rx: Receiver<String>,
    thread: Option<JoinHandle<()>>,
}

impl Lines {
    fn read(input: impl std::io::Read + Send + 'static) -> Lines {
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
    fn wait_for(
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
    fn rest(&mut self, seen: &mut Vec<String>) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        seen.extend(self.rx.try_iter());
    }
}

/// A stdout line of the sensor and the CLOCK_MONOTONIC and CLOCK_REALTIME times its read
/// returned.
pub type StampedLine = (u64, u64, String);

/// The tunnelwatch release binary, default flags.
pub struct Sensor {
    child: Option<Child>,
    pub pid: u32,
    /// Program ids in the order of the ready line: exec, fork, exit, dns_egress, dns_ingress.
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
    pub stats: serde_json::Value,
    pub stderr: Vec<String>,
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
        if sensor.program_ids.len() != 5 {
            bail!("cannot read 5 program ids from the ready line: {ready}");
        }
        Ok(sensor)
    }

    /// SIGINT, then the final stats line.
    pub fn stop(mut self) -> Result<SensorReport> {
        let mut child = self.child.take().expect("running");
        let clean = stop_child(&mut child, libc::SIGINT, Duration::from_secs(15));
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
            stop_child(c, libc::SIGINT, Duration::from_secs(10));
        }
    }
}

/// The kernel audit status (`auditctl -s`) as key -> value.
fn audit_status() -> Result<Vec<(String, String)>> {
    let s = capture("auditctl", &["-s"])?;
    Ok(s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().to_string()))
        })
        .collect())
}

fn audit_value(status: &[(String, String)], key: &str) -> Option<String> {
    status
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

/// Whether auditd can run here; the reason when it cannot.
pub fn auditd_unavailable() -> Option<String> {
    if Command::new("auditd").arg("--help").output().is_err() {
        return Some("auditd is not installed".into());
    }
    match audit_status() {
        Ok(s) if audit_value(&s, "pid").as_deref() != Some("0") => Some(format!(
            "another audit daemon (pid {}) owns the kernel audit netlink",
            audit_value(&s, "pid").unwrap_or_default()
        )),
        Ok(_) => None,
        Err(e) => Some(format!("the kernel audit netlink refuses: {e:#}")),
    }
}

/// The execve rule, as an admin would add it.
const AUDIT_RULE: [&str; 8] = [
    "always,exit",
    "-F",
    "arch=b64",
    "-S",
    "execve",
    "-F",
    "key=tunnelwatch-bench",
    "",
];

/// auditd (foreground, its log in our temporary directory) with Debian's default backlog
/// settings (`-b 8192`, `--backlog_wait_time 60000`, as /etc/audit/rules.d/audit.rules has)
/// and the execve rule.
pub struct Auditd {
    child: Option<Child>,
    dir: PathBuf,
    /// Kernel settings to restore: enabled, backlog_limit, backlog_wait_time.
    saved: [String; 3],
    rule_added: bool,
    lost_before: u64,
}

/// What a stopped auditd cost in lost records, and how much it logged.
pub struct AuditReport {
    pub lost: u64,
    pub log_bytes: u64,
}

impl Auditd {
    pub fn start(work: &Path) -> Result<Auditd> {
        let status = audit_status()?;
        let get = |k: &str| audit_value(&status, k).unwrap_or_default();
        let saved = [
            get("enabled"),
            get("backlog_limit"),
            get("backlog_wait_time"),
        ];
        let dir = work.join("auditd");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let conf = fs::read_to_string("/etc/audit/auditd.conf")
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with("log_file"))
            .collect::<Vec<_>>()
            .join("\n");
        let conf_path = dir.join("auditd.conf");
        fs::write(
            &conf_path,
            format!("{conf}\nlog_file = {}\n", dir.join("audit.log").display()),
        )?;
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&conf_path, fs::Permissions::from_mode(0o640))?;
        let child = detached("auditd")
            .args(["-n", "-c"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start auditd")?;
        let pid = child.id().to_string();
        let mut a = Auditd {
            child: Some(child),
            dir,
            saved,
            rule_added: false,
            lost_before: 0,
        };
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            check_interrupted()?;
            if audit_status().is_ok_and(|s| audit_value(&s, "pid").as_deref() == Some(&pid)) {
                break;
            }
            if Instant::now() > until {
                bail!("auditd did not register with the kernel");
            }
            if let Some(c) = &mut a.child
                && let Ok(Some(st)) = c.try_wait()
            {
                bail!("auditd exited at start ({st})");
            }
            thread::sleep(Duration::from_millis(20));
        }
        capture("auditctl", &["-b", "8192", "--backlog_wait_time", "60000"])?;
        let mut add = vec!["-a"];
        add.extend(AUDIT_RULE.iter().filter(|a| !a.is_empty()));
        capture("auditctl", &add)?;
        a.rule_added = true;
        a.lost_before = audit_status()
            .ok()
            .and_then(|s| audit_value(&s, "lost"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(a)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn cleanup(&mut self) {
        if self.rule_added {
            let mut del = vec!["-d"];
            del.extend(AUDIT_RULE.iter().filter(|a| !a.is_empty()));
            if let Err(e) = capture("auditctl", &del) {
                eprintln!("bench: cannot delete the audit rule: {e:#}");
            }
            self.rule_added = false;
        }
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, libc::SIGTERM, Duration::from_secs(10));
        }
        let [enabled, backlog, wait] = &self.saved;
        for (flag, v) in [("-b", backlog), ("--backlog_wait_time", wait)] {
            if !v.is_empty() {
                let _ = capture("auditctl", &[flag, v]);
            }
        }
        if !enabled.is_empty() {
            let _ = capture("auditctl", &["-e", enabled]);
        }
    }

    pub fn stop(mut self) -> AuditReport {
        let lost = audit_status()
            .ok()
            .and_then(|s| audit_value(&s, "lost"))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            .saturating_sub(self.lost_before);
        self.cleanup();
        let log_bytes = fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("audit.log"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        let _ = fs::remove_dir_all(&self.dir);
        AuditReport { lost, log_bytes }
    }
}

impl Drop for Auditd {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// The bpftrace one-liner (as a script file): every exec, and every DNS send — `sendto` to
/// port 53 (IPv4 or IPv6: the port is at the same offset), and every `sendmmsg` (glibc's
/// resolver sends A and AAAA with one, on a connected socket, so there is no port to filter).
pub const BPFTRACE_SCRIPT: &str = r#"tracepoint:sched:sched_process_exec { printf("%llu exec pid=%d ppid=%d comm=%s file=%s\n", nsecs, pid, curtask->real_parent->tgid, comm, str(args->filename)); }
tracepoint:syscalls:sys_enter_sendto /args->addr != 0 && ((struct sockaddr_in *)uptr(args->addr))->sin_port == 0x3500/ { printf("%llu dns sendto pid=%d comm=%s len=%d\n", nsecs, pid, comm, args->len); }
tracepoint:syscalls:sys_enter_sendmmsg { printf("%llu sendmmsg pid=%d comm=%s vlen=%d\n", nsecs, pid, comm, args->vlen); }
"#;

/// Ids of the BPF programs loaded now.
pub fn bpf_prog_ids() -> Vec<u32> {
    let Ok(out) = capture("bpftool", &["prog", "list", "-j"]) else {
        return Vec::new();
    };
    serde_json::from_str::<serde_json::Value>(&out)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p["id"].as_u64().map(|i| i as u32))
        .collect()
}

/// bpftrace running the one-liner, its output in a file.
pub struct Bpftrace {
    child: Option<Child>,
    out: PathBuf,
    stderr: Lines,
    stderr_seen: Vec<String>,
    /// The programs it loaded.
    pub program_ids: Vec<u32>,
}

pub struct BpftraceReport {
    pub lines: u64,
    pub lost: u64,
}

impl Bpftrace {
    pub fn start(work: &Path) -> Result<Bpftrace> {
        let script = work.join("bench.bt");
        fs::write(&script, BPFTRACE_SCRIPT)?;
        let out = work.join("bpftrace.out");
        let before = bpf_prog_ids();
        let mut child = detached("bpftrace")
            .arg("-o")
            .arg(&out)
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start bpftrace")?;
        let stderr = Lines::read(child.stderr.take().expect("piped"));
        let mut b = Bpftrace {
            child: Some(child),
            out,
            stderr,
            stderr_seen: Vec::new(),
            program_ids: Vec::new(),
        };
        // "Attaching N probes..." goes to the output file (-o), before the attach itself.
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            check_interrupted()?;
            if fs::read_to_string(&b.out).is_ok_and(|t| t.contains("Attaching")) {
                break;
            }
            let ended = b.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if ended.is_some() || Instant::now() > until {
                if let Some(c) = &mut b.child {
                    stop_child(c, libc::SIGKILL, Duration::from_secs(2));
                }
                let mut seen = std::mem::take(&mut b.stderr_seen);
                b.stderr.rest(&mut seen);
                bail!(
                    "bpftrace did not attach ({}): {}",
                    ended.map_or("timed out".to_string(), |s| s.to_string()),
                    seen.join(" / ")
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        // Wait until its programs are there.
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            check_interrupted()?;
            b.program_ids = bpf_prog_ids()
                .into_iter()
                .filter(|i| !before.contains(i))
                .collect();
            if b.program_ids.len() >= 3 || Instant::now() > until {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        sleep(Duration::from_millis(200))?;
        if let Some(c) = &mut b.child
            && let Ok(Some(st)) = c.try_wait()
        {
            bail!(
                "bpftrace exited at start ({st}): {}",
                b.stderr_seen.join(" / ")
            );
        }
        Ok(b)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn stop(mut self) -> BpftraceReport {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, libc::SIGINT, Duration::from_secs(10));
        }
        let mut seen = std::mem::take(&mut self.stderr_seen);
        self.stderr.rest(&mut seen);
        let text = fs::read_to_string(&self.out).unwrap_or_default();
        let _ = fs::remove_file(&self.out);
        let lost_in = |l: &str| {
            l.strip_prefix("Lost ")
                .and_then(|n| n.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
        };
        let mut lines = 0u64;
        let mut lost = 0u64;
        for l in text.lines() {
            match lost_in(l) {
                Some(n) => lost += n,
                None if l.starts_with("Attaching ") => {}
                None => lines += 1,
            }
        }
        lost += seen.iter().filter_map(|l| lost_in(l)).sum::<u64>();
        BpftraceReport { lines, lost }
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            stop_child(c, libc::SIGINT, Duration::from_secs(10));
        }
    }
}

/// What other processes (not this bench's process tree) do with the CPUs while the bench runs:
/// sampled every few seconds from /proc, so that the report can say how loaded the machine
/// was by others.
pub struct LoadSampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<OtherLoad>>>,
}

/// One sample: the share of all CPUs that other processes used since the last sample, the
/// 1-minute load average, and the busiest other process.
#[derive(Clone, Debug)]
pub struct OtherLoad {
    pub percent: f64,
    pub loadavg: f64,
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
            // SAFETY: plain sysconf.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
            let cpus = thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            let mut samples = Vec::new();
            let mut last: std::collections::HashMap<u32, u64> = Default::default();
            let mut at = Instant::now();
            let mut first = true;
            while !flag.load(Ordering::Relaxed) {
                let procs = all_processes();
                let parent: std::collections::HashMap<u32, u32> =
                    procs.iter().map(|p| (p.0, p.1)).collect();
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
