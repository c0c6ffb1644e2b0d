//! The configurations a workload runs in: bare (nothing added), the tunnelwatch sensor (release
//! build, default flags), auditd (an execve rule), bpftrace (a one-liner printing execs and DNS
//! sends) and empty hooks (empty programs on tunnelwatch's hooks: the floor any eBPF sensor on
//! them pays). A configuration is started just before a run and stopped just after it; what its
//! tool reported comes back typed.
//!
//! May use: bench/ctx, bench/tools, serde.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::{
    ctx::Ctx,
    tools::{auditd::Auditd, bpftrace::Bpftrace, floor::Floor, sensor::Sensor},
};

/// Time given to a tool after it is ready before a workload starts.
pub const SETTLE: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Config {
    Bare,
    Tunnelwatch,
    Auditd,
    Bpftrace,
    /// Empty programs (`r0 = 1; exit`) on tunnelwatch's hooks: what the hooks cost by merely
    /// being there, whatever a program does.
    Hooks,
}

/// Every configuration, in the table's order.
pub const CONFIGS: [Config; 5] = [
    Config::Bare,
    Config::Tunnelwatch,
    Config::Auditd,
    Config::Bpftrace,
    Config::Hooks,
];

impl Config {
    /// What the table and results.json call it.
    pub fn name(self) -> &'static str {
        match self {
            Config::Bare => "bare",
            Config::Tunnelwatch => "tunnelwatch",
            Config::Auditd => "auditd",
            Config::Bpftrace => "bpftrace",
            Config::Hooks => "empty hooks",
        }
    }

    /// What `--configs` takes.
    pub fn key(self) -> &'static str {
        match self {
            Config::Hooks => "hooks",
            c => c.name(),
        }
    }
}

/// A started configuration.
pub enum Running {
    Bare,
    Tunnelwatch(Sensor),
    Auditd(Auditd),
    Bpftrace(Bpftrace),
    Hooks(Floor),
}

/// What a tool said when it stopped: its loss counters and the like.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum ToolReport {
    Tunnelwatch {
        #[serde(flatten)]
        stats: Box<super::tools::sensor::SensorStats>,
        lost: u64,
        warnings: usize,
    },
    Auditd {
        lost: u64,
        log_bytes: u64,
    },
    Bpftrace {
        lost: u64,
        lines: u64,
    },
}

impl ToolReport {
    /// Records (or lines) the tool lost.
    pub fn lost(&self) -> u64 {
        match self {
            ToolReport::Tunnelwatch { lost, .. }
            | ToolReport::Auditd { lost, .. }
            | ToolReport::Bpftrace { lost, .. } => *lost,
        }
    }
}

impl Running {
    pub fn start(ctx: &Ctx, config: Config) -> Result<Running> {
        Ok(match config {
            Config::Bare => Running::Bare,
            Config::Tunnelwatch => Running::Tunnelwatch(ctx.start_sensor()?),
            Config::Auditd => Running::Auditd(Auditd::start(&ctx.work)?),
            Config::Bpftrace => Running::Bpftrace(Bpftrace::start(&ctx.work)?),
            Config::Hooks => Running::Hooks(Floor::attach()?),
        })
    }

    /// The tool's process, whose CPU and memory are sampled.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Running::Tunnelwatch(s) => Some(s.pid),
            Running::Auditd(a) => a.pid(),
            Running::Bpftrace(b) => b.pid(),
            Running::Bare | Running::Hooks(_) => None,
        }
    }

    /// Stops it and returns what it reported (nothing, for bare and empty hooks).
    pub fn stop(self) -> Result<Option<ToolReport>> {
        Ok(match self {
            Running::Bare => None,
            // Detached when dropped.
            Running::Hooks(floor) => {
                drop(floor);
                None
            }
            Running::Tunnelwatch(s) => {
                let r = s.stop()?;
                Some(ToolReport::Tunnelwatch {
                    lost: r.stats.lost(),
                    stats: Box::new(r.stats),
                    warnings: r.warnings(),
                })
            }
            Running::Auditd(a) => {
                let r = a.stop();
                Some(ToolReport::Auditd {
                    lost: r.lost,
                    log_bytes: r.log_bytes,
                })
            }
            Running::Bpftrace(b) => {
                let r = b.stop();
                Some(ToolReport::Bpftrace {
                    lost: r.lost,
                    lines: r.lines,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reports_serialise_flat() {
        let a = ToolReport::Auditd {
            lost: 2,
            log_bytes: 10,
        };
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"lost": 2, "log_bytes": 10})
        );
        let t = ToolReport::Tunnelwatch {
            stats: serde_json::from_str(r#"{"dns_lost":1,"records":5}"#).unwrap(),
            lost: 1,
            warnings: 0,
        };
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(
            (v["dns_lost"].clone(), v["records"].clone()),
            (json!(1), json!(5))
        );
        assert_eq!(
            (v["lost"].clone(), v["exec_lost"].clone()),
            (json!(1), json!(null))
        );
        assert_eq!(t.lost(), 1);
    }

    #[test]
    fn keys_name_every_configuration() {
        let keys: Vec<&str> = CONFIGS.iter().map(|c| c.key()).collect();
        assert_eq!(keys, ["bare", "tunnelwatch", "auditd", "bpftrace", "hooks"]);
    }
}
