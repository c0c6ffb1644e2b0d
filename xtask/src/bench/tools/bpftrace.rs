//! bpftrace running a one-liner an admin would write to watch execs and DNS sends, its
//! output in a file; what it printed and what it says it lost are read back when it stops.
//!
//! May use: bench/bpf, bench/process, bench/interrupt.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use nix::sys::signal::Signal;

use crate::bench::{
    bpf,
    interrupt::{check_interrupted, sleep},
    process::{Lines, detached, stop_child},
};

/// The bpftrace one-liner (as a script file): every exec, and every DNS send — `sendto` to
/// port 53 (IPv4 or IPv6: the port is at the same offset), and every `sendmmsg` (glibc's
/// resolver sends A and AAAA with one, on a connected socket, so there is no port to filter).
pub const BPFTRACE_SCRIPT: &str = r#"tracepoint:sched:sched_process_exec { printf("%llu exec pid=%d ppid=%d comm=%s file=%s\n", nsecs, pid, curtask->real_parent->tgid, comm, str(args->filename)); }
tracepoint:syscalls:sys_enter_sendto /args->addr != 0 && ((struct sockaddr_in *)uptr(args->addr))->sin_port == 0x3500/ { printf("%llu dns sendto pid=%d comm=%s len=%d\n", nsecs, pid, comm, args->len); }
tracepoint:syscalls:sys_enter_sendmmsg { printf("%llu sendmmsg pid=%d comm=%s vlen=%d\n", nsecs, pid, comm, args->vlen); }
"#;

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
        let before: Vec<u32> = bpf::programs().iter().map(|p| p.id).collect();
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
                    stop_child(c, Signal::SIGKILL, Duration::from_secs(2));
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
            b.program_ids = bpf::programs()
                .into_iter()
                .map(|p| p.id)
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
            stop_child(&mut c, Signal::SIGINT, Duration::from_secs(10));
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
            stop_child(c, Signal::SIGINT, Duration::from_secs(10));
        }
    }
}
