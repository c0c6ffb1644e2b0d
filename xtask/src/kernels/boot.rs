//! Booting one kernel of the matrix under QEMU (no network device at all, serial console
//! only, kept in `target/kernels/NAME/console.log`) and what it showed: the guest's report, or
//! why there is none. x86_64 guests run on QEMU's default PC machine (serial ttyS0), arm64
//! guests on its `virt` machine with `-cpu max` (serial ttyAMA0).
//!
//! May use: arch, kernels/guest (the report).

use std::{
    fs::{self, File, OpenOptions},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use clap::ValueEnum;

use super::guest::{self, Report};
use crate::arch::Arch;

/// The QEMU program for `arch`'s guests.
pub fn qemu(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "qemu-system-x86_64",
        Arch::Aarch64 => "qemu-system-aarch64",
    }
}

/// How QEMU runs the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Accel {
    /// Pure emulation: works anywhere (the default: nested KVM, where /dev/kvm exists in a
    /// VM, can fail with "KVM internal error" or unsettable MSRs).
    Tcg,
    /// Hardware virtualisation (needs a working /dev/kvm), with `-cpu host`.
    Kvm,
}

/// Whether /dev/kvm can be opened (`--accel kvm`).
pub fn kvm_usable() -> bool {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// What one VM showed.
pub struct Outcome {
    pub name: &'static str,
    pub seconds: f64,
    /// The report between the markers, when the guest got that far.
    pub report: Option<Report>,
    /// Why there is no report (timeout, QEMU error), with the console's tail.
    problem: Option<String>,
    console: PathBuf,
}

impl Outcome {
    /// The guest's verdict on one check (None: no report).
    pub fn check(&self, name: &str) -> Option<bool> {
        self.report
            .as_ref()
            .map(|r| r.results.get(name).is_some_and(|(ok, _)| *ok))
    }

    pub fn passed(&self) -> bool {
        guest::CHECKS.iter().all(|c| self.check(c) == Some(true))
    }

    pub fn verdict(&self) -> &'static str {
        match (&self.report, self.passed()) {
            (None, _) => "NO REPORT",
            (Some(_), true) => "PASS",
            (Some(_), false) => "FAIL",
        }
    }

    /// How long the sensor took to load and attach, from its `ready in N ms` line.
    pub fn ready_ms(&self) -> Option<u64> {
        let stderr = &self.report.as_ref()?.stderr;
        let at = stderr.find("tunnelwatch: ready in ")? + "tunnelwatch: ready in ".len();
        stderr[at..].split_whitespace().next()?.parse().ok()
    }

    /// The program the kernel refused or could not attach, from the sensor's error.
    pub fn refused(&self) -> Option<String> {
        let stderr = &self.report.as_ref()?.stderr;
        ["the kernel refused program ", "cannot attach "]
            .iter()
            .find_map(|p| {
                let at = stderr.find(p)? + p.len();
                let word = stderr[at..].split_whitespace().next()?;
                Some(word.trim_end_matches(':').to_string())
            })
    }

    pub fn print_failure(&self) {
        eprintln!("\n===== {}: {} =====", self.name, self.verdict());
        if let Some(p) = &self.problem {
            eprintln!("{p}");
        }
        if let Some(r) = &self.report {
            eprintln!("kernel: {}", r.kernel);
            for (name, (ok, detail)) in &r.results {
                eprintln!("{name}: {} {detail}", if *ok { "PASS" } else { "FAIL" });
            }
            eprintln!("----- sensor stderr -----\n{}", r.stderr.trim_end());
            eprintln!("----- sensor stdout -----\n{}", r.stdout.trim_end());
            if !r.kernel_log.trim().is_empty() {
                eprintln!("----- kernel log -----\n{}", r.kernel_log.trim_end());
            }
        }
        eprintln!("(console: {})", self.console.display());
    }
}

/// Boots `vmlinuz` with `initrd` and reads the report off the serial console, kept in
/// `dir/console.log`.
pub fn boot(
    name: &'static str,
    arch: Arch,
    vmlinuz: &Path,
    initrd: &Path,
    dir: &Path,
    accel: Accel,
    timeout: Duration,
) -> Result<Outcome> {
    let console = dir.join("console.log");
    let log = File::create(&console)?;
    let mut qemu = Command::new(self::qemu(arch));
    let tty = match arch {
        Arch::X86_64 => "ttyS0",
        // QEMU's virt machine: the PL011 UART; pointer authentication with QEMU's own cheap
        // algorithm (the architected one is slow to emulate).
        Arch::Aarch64 => {
            qemu.args(["-M", "virt"]);
            if accel == Accel::Tcg {
                qemu.args(["-cpu", "max,pauth-impdef=on"]);
            }
            "ttyAMA0"
        }
    };
    qemu.args(["-m", "1024", "-smp", "1", "-nographic", "-no-reboot"])
        // No network device at all: nothing in the guest can reach a network.
        .args(["-nic", "none"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", &format!("console={tty} panic=-1 quiet")]);
    match accel {
        Accel::Kvm => qemu.args(["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => qemu.args(["-accel", "tcg"]),
    };
    let started = Instant::now();
    let mut child = qemu
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} (`cargo xtask setup` installs qemu-system-x86 and \
                 qemu-system-arm)",
                self::qemu(arch)
            )
        })?;
    let mut problem = None;
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                problem = Some(format!("qemu exited with {status}"));
            }
            break;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            problem = Some(format!("timed out after {} s", timeout.as_secs()));
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let seconds = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&fs::read(&console)?).replace('\r', "");
    let report = guest::parse_report(&text);
    if report.is_none() {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let why = problem.unwrap_or_else(|| "the guest printed no report".into());
        problem = Some(format!("{why}; console tail:\n{}", tail.join("\n")));
    }
    Ok(Outcome {
        name,
        seconds,
        report,
        problem,
        console,
    })
}
