//! auditd as an admin would run it to see execs: foreground, its log in the bench's
//! temporary directory, Debian's backlog settings (`-b 8192`, `--backlog_wait_time 60000`, as
//! /etc/audit/rules.d/audit.rules has) and an execve rule. The audit settings it changes are
//! restored, and the rule deleted, when it stops or is dropped.
//!
//! May use: shell, bench/process, bench/interrupt.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use nix::sys::signal::Signal;

use crate::{
    bench::{
        interrupt::check_interrupted,
        process::{detached, stop_child},
    },
    shell::capture,
};

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
            stop_child(&mut c, Signal::SIGTERM, Duration::from_secs(10));
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
