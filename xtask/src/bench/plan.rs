//! What a bench run does and how much of it: the command line of `cargo xtask bench` and the
//! plan drawn from it (repetitions, seconds per storm, rates of the sweep, which workloads,
//! configurations and phases).
//!
//! May use: clap, bench/workloads, bench/configs, bench/worker (the hidden worker command).

use std::path::PathBuf;

use anyhow::{Result, bail};

use super::{
    configs::{CONFIGS, Config},
    worker::Worker,
    workloads::{self, Workload},
};

#[derive(clap::Args)]
pub struct Args {
    /// A smoke run of about two minutes: fewer repetitions, shorter storms.
    #[arg(long)]
    pub quick: bool,
    /// Alternating pairs of each workload with each configuration (default 7, 2 with --quick).
    #[arg(long)]
    pub reps: Option<usize>,
    /// Seconds per storm (default 2, 1 with --quick).
    #[arg(long)]
    pub secs: Option<f64>,
    /// Skip `cargo build --release` (use the binaries already in target/release).
    #[arg(long)]
    pub no_build: bool,
    /// The sensor binary to measure (default: target/release/tunnelwatch), e.g. an older build
    /// kept for a before/after comparison.
    #[arg(long, value_name = "PATH")]
    pub sensor: Option<PathBuf>,
    /// Rates (queries/s) of the zero-loss DNS sweep, comma-separated (default: 10k to 200k).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub dns_rates: Vec<u64>,
    /// Rates (connections/s) of the zero-loss connection sweep, comma-separated (default: 5k to
    /// 40k).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub conn_rates: Vec<u64>,
    /// Before starting, wait (up to 30 minutes) until the 1-minute load average is below LOAD.
    #[arg(long, value_name = "LOAD")]
    pub wait_load: Option<f64>,
    /// Workloads of the overhead phase, comma-separated: exec, udp, tcp, dns, build, connect,
    /// tls, udpflow, quic (default: all).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub workloads: Vec<String>,
    /// Configurations of the overhead phase besides bare, comma-separated: tunnelwatch, auditd,
    /// bpftrace, hooks (default: all).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub configs: Vec<String>,
    /// Phases to run, comma-separated: overhead, kernel, sweep, connsweep, latency (default:
    /// all).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub phases: Vec<String>,
    #[command(subcommand)]
    pub internal: Option<Internal>,
}

/// Commands the bench runs itself.
#[derive(clap::Subcommand)]
pub enum Internal {
    /// One load generator, in a process of its own (see worker.rs).
    #[command(hide = true, subcommand)]
    Worker(Worker),
}

/// The phases, in the order they run.
pub const PHASES: [&str; 5] = ["overhead", "kernel", "sweep", "connsweep", "latency"];

/// How much of everything.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Alternating pairs per (workload, configuration).
    pub reps: usize,
    /// Seconds per storm in the overhead phase.
    pub secs: f64,
    /// Pairs of a slow workload (the build).
    pub slow_reps: usize,
    pub latency_count: u64,
    pub sweep_rates: Vec<u64>,
    /// Rates of the connection sweep.
    pub conn_rates: Vec<u64>,
    pub sweep_secs: f64,
    pub kernel_secs: f64,
    /// Workloads of the overhead phase.
    pub workloads: Vec<Workload>,
    /// Configurations of the overhead phase, bare excepted.
    pub configs: Vec<Config>,
    pub phases: Vec<&'static str>,
}

impl Plan {
    pub fn new(args: &Args) -> Result<Plan> {
        let quick = args.quick;
        Ok(Plan {
            reps: args.reps.unwrap_or(if quick { 2 } else { 7 }).max(1),
            secs: args.secs.unwrap_or(if quick { 1.0 } else { 2.0 }),
            slow_reps: if quick { 1 } else { 3 },
            latency_count: if quick { 300 } else { 3000 },
            sweep_rates: if !args.dns_rates.is_empty() {
                args.dns_rates.clone()
            } else if quick {
                vec![20_000, 50_000, 100_000]
            } else {
                vec![
                    10_000, 20_000, 30_000, 40_000, 50_000, 75_000, 100_000, 150_000, 200_000,
                ]
            },
            conn_rates: if !args.conn_rates.is_empty() {
                args.conn_rates.clone()
            } else if quick {
                vec![10_000, 20_000]
            } else {
                vec![5_000, 10_000, 20_000, 30_000, 40_000]
            },
            sweep_secs: if quick { 2.0 } else { 8.0 },
            kernel_secs: if quick { 1.0 } else { 3.0 },
            workloads: select(&args.workloads, "--workloads", &workloads::ALL, |w| w.key)?,
            configs: select(&args.configs, "--configs", &CONFIGS[1..], |c| c.key())?,
            phases: select(&args.phases, "--phases", &PHASES, |p| *p)?,
        })
    }

    pub fn phase(&self, name: &str) -> bool {
        self.phases.contains(&name)
    }
}

/// Those of `all` that `names` names (all when `names` is empty); an unknown name is an error.
fn select<T: Copy>(
    names: &[String],
    flag: &str,
    all: &[T],
    key: impl Fn(&T) -> &'static str,
) -> Result<Vec<T>> {
    for n in names {
        if !all.iter().any(|t| key(t) == n) {
            let keys: Vec<&str> = all.iter().map(&key).collect();
            bail!("{flag}: no {n:?} (choose from {})", keys.join(", "));
        }
    }
    Ok(all
        .iter()
        .copied()
        .filter(|t| names.is_empty() || names.iter().any(|n| n == key(t)))
        .collect())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn plan(argv: &[&str]) -> Result<Plan> {
        Plan::new(&Cli::try_parse_from(argv)?.args)
    }

    #[test]
    fn defaults_and_quick() {
        let p = plan(&["bench"]).unwrap();
        assert_eq!((p.reps, p.secs, p.slow_reps), (7, 2.0, 3));
        assert_eq!(p.workloads.len(), workloads::ALL.len());
        assert_eq!(p.configs, CONFIGS[1..]);
        assert_eq!(p.phases, PHASES);
        let q = plan(&["bench", "--quick", "--reps", "3"]).unwrap();
        assert_eq!(
            (q.reps, q.secs, q.slow_reps, q.sweep_rates.len()),
            (3, 1.0, 1, 3)
        );
    }

    #[test]
    fn selections_keep_the_tables_order_and_refuse_unknown_names() {
        let p = plan(&[
            "bench",
            "--workloads",
            "udp,exec",
            "--configs",
            "hooks,tunnelwatch",
            "--phases",
            "overhead",
        ])
        .unwrap();
        let keys: Vec<&str> = p.workloads.iter().map(|w| w.key).collect();
        assert_eq!(keys, ["exec", "udp"]);
        assert_eq!(p.configs, [Config::Tunnelwatch, Config::Hooks]);
        assert!(p.phase("overhead") && !p.phase("kernel"));
        let e = plan(&["bench", "--configs", "bare"]).unwrap_err();
        assert!(e.to_string().contains("--configs: no \"bare\""), "{e}");
        assert!(plan(&["bench", "--workloads", "fork"]).is_err());
    }
}
