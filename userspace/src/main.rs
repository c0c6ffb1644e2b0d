//! `tunnelwatch`: watch this host for reverse-proxy tunnels (ngrok and kin) and print an alert,
//! as one JSON line on stdout, the moment one starts.
//!
//! Uses: `commands`, `rule_source`, `linux::sensor` and `linux::settings` (Linux), the Windows
//! sensor (`tunnelwatch-etw`), and the engine's configuration and rule loading. Nothing uses it.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use tunnelwatch::{
    commands,
    linux::settings::LinuxSettings,
    rule_source::{Loaded, RuleSource},
};
use tunnelwatch_engine::{config::Config, engine::Engine, ruleset::LoadOptions};

/// Exit codes, documented in the README.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod exit {
    /// Bad flags, config file or rules.
    pub const USAGE: u8 = 2;
    /// The host cannot run the sensor: not root, no BTF, no cgroup v2, not Linux.
    pub const ENVIRONMENT: u8 = 3;
    /// The kernel refused to load or attach a program (the verifier's log is printed).
    pub const LOAD: u8 = 4;
    /// Failure while running.
    pub const RUNTIME: u8 = 1;
}

#[derive(Debug, Parser)]
#[command(
    name = "tunnelwatch",
    version,
    about = "Real-time host sensor for reverse-proxy tunnels (ngrok and kin): alerts as JSON lines on stdout",
    long_about = "Real-time host sensor for reverse-proxy tunnels (ngrok and kin).\n\n\
        Run as root with no arguments: watches every exec and every DNS packet on this host with \
        eBPF, matches them against the embedded rules and prints each alert as one JSON line (Splunk \
        CIM field names) on stdout. Logs and stats go to stderr. SIGINT/SIGTERM detach everything."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Print every exec and DNS event as a JSON line, not only alerts.
    #[arg(long, global = true)]
    all_events: bool,

    /// Configuration file (YAML): allowlists, DNS ports, ring buffer size, stats interval.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,

    /// A directory (or file) of Sigma rules and filters to load on top of the embedded pack
    /// (repeatable). A rule with the id of an embedded one replaces it.
    #[arg(long = "rules", value_name = "DIR", global = true)]
    rules: Vec<PathBuf>,

    /// Skip rules that do not load, with a warning, instead of refusing them all.
    #[arg(long, global = true)]
    skip_invalid: bool,

    /// Run with a config file, rule file or rule directory that a user other than root could
    /// change (owned by another user, or writable by group or others), which the sensor
    /// otherwise refuses. For development only: whoever can write them can silence alerts.
    #[arg(long)]
    allow_untrusted_config: bool,

    /// Kernel-to-user ring buffer size, e.g. 16MiB or 16777216 (a power of two, 64KiB to 1GiB). Default: 8MiB.
    #[arg(long, value_name = "SIZE")]
    ring_buffer_size: Option<String>,

    /// A port to watch for DNS (repeatable; up to 8). Default: 53.
    #[arg(long = "dns-port", value_name = "PORT")]
    dns_ports: Vec<u16>,

    /// Lines queued for a slow stdout before further lines are dropped (and counted).
    #[arg(long, value_name = "LINES", default_value_t = tunnelwatch::output::QUEUE_LINES)]
    output_queue: usize,

    /// Seconds between stats lines on stderr (0: only the final one). Default: 60.
    #[arg(long, value_name = "SECONDS")]
    stats_interval: Option<u64>,

    /// More logging on stderr (-v: info, -vv: debug, with the kernel side's aya-log; -vvv: all).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the rules over recorded events (the JSON lines `--all-events` prints, alert lines
    /// included, or an .etl trace of Windows' kernel process events, Kernel-Process and
    /// DNS-Client) and print the alerts exactly as the live sensor would.
    Replay {
        /// The recording; `-` or nothing reads stdin.
        file: Option<PathBuf>,
    },
    /// Check or list rules.
    #[command(subcommand)]
    Rules(RulesCommand),
}

#[derive(Debug, clap::Subcommand)]
enum RulesCommand {
    /// Validate rules and run their test cases (the embedded pack when no DIR is given).
    Check {
        /// Rule directories or files.
        dirs: Vec<PathBuf>,
    },
    /// List the loaded rules: id, level, category, product, family, title.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // -v and -vv raise tunnelwatch's own logs (the kernel side's aya-log records carry the
    // `tunnelwatch_ebpf` target); -vvv also shows the libraries' (aya's loader, ...).
    let (ours, theirs) = match cli.verbose {
        0 => (log::LevelFilter::Warn, log::LevelFilter::Warn),
        1 => (log::LevelFilter::Info, log::LevelFilter::Warn),
        2 => (log::LevelFilter::Debug, log::LevelFilter::Warn),
        _ => (log::LevelFilter::Trace, log::LevelFilter::Debug),
    };
    env_logger::Builder::new()
        .filter_level(theirs)
        .filter_module("tunnelwatch", ours)
        .parse_env("TUNNELWATCH_LOG")
        .target(env_logger::Target::Stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("tunnelwatch: error: {msg}");
            ExitCode::from(code)
        }
    }
}

/// Loads the configuration and the rules (the same on every platform), then runs the
/// subcommand or this platform's sensor.
fn run(cli: Cli) -> Result<(), (u8, String)> {
    let source = RuleSource {
        config: cli.config.clone(),
        rule_dirs: cli.rules.clone(),
        skip_invalid: cli.skip_invalid,
        // The live sensor's inputs decide what it reports; `replay` and `rules` only read.
        trusted_only: cli.command.is_none() && !cli.allow_untrusted_config,
    };
    let options = LoadOptions {
        skip_invalid: cli.skip_invalid,
    };
    match &cli.command {
        Some(Command::Rules(RulesCommand::Check { dirs })) => {
            let mut dirs = dirs.clone();
            dirs.extend(cli.rules.iter().cloned());
            let passed = commands::rules::check(&dirs, options, &mut std::io::stdout())
                .map_err(|e| (exit::USAGE, e))?;
            return if passed {
                Ok(())
            } else {
                Err((exit::RUNTIME, "rule test cases failed".into()))
            };
        }
        Some(Command::Rules(RulesCommand::List)) => {
            return commands::rules::list(&cli.rules, options, &mut std::io::stdout())
                .map_err(|e| (exit::USAGE, e));
        }
        _ => {}
    }
    let Loaded {
        config,
        engine,
        fingerprint,
    } = source.load().map_err(|e| (exit::USAGE, e))?;
    if let Some(Command::Replay { file }) = &cli.command {
        let mut input: Box<dyn std::io::BufRead> = match file {
            Some(path) if path.as_os_str() != "-" => Box::new(std::io::BufReader::new(
                std::fs::File::open(path)
                    .map_err(|e| (exit::USAGE, format!("{}: {e}", path.display())))?,
            )),
            _ => Box::new(std::io::stdin().lock()),
        };
        let etl = tunnelwatch_etw::replay::is_etl(input.fill_buf().unwrap_or_default());
        let replay = if etl {
            commands::replay::run_etl
        } else {
            commands::replay::run
        };
        let summary = replay(input, &engine, cli.all_events, std::io::stdout().lock())
            .map_err(|e| (exit::USAGE, e))?;
        eprintln!(
            "tunnelwatch: replayed {} events, {} alerts",
            summary.events, summary.alerts
        );
        return Ok(());
    }
    run_sensor(&cli, &config, engine, (source, fingerprint))
}

#[cfg(target_os = "linux")]
fn run_sensor(
    cli: &Cli,
    config: &Config<LinuxSettings>,
    engine: Engine,
    source: (RuleSource, u64),
) -> Result<(), (u8, String)> {
    use tunnelwatch::linux::sensor::{self, RunError, StartError, Stop};

    let opts = options(cli, config).map_err(|e| (exit::USAGE, e))?;
    match sensor::run(&opts, engine, source) {
        Ok(Stop::Signal(sig)) => {
            eprintln!("tunnelwatch: {sig}: programs detached, exiting");
            Ok(())
        }
        Ok(Stop::StdoutClosed) => {
            eprintln!("tunnelwatch: stdout closed: programs detached, exiting");
            Ok(())
        }
        Err(RunError::Start(StartError::Environment(e))) => {
            Err((exit::ENVIRONMENT, format!("{e:#}")))
        }
        Err(RunError::Start(StartError::Load(e))) => Err((exit::LOAD, format!("{e:#}"))),
        Err(RunError::Run(e)) => Err((exit::RUNTIME, format!("{e:#}"))),
    }
}

/// The Windows sensor: ETW, in etw/ (crate `tunnelwatch-etw`). Started by the service control
/// manager it runs as the `tunnelwatch` service, else in this console until Ctrl-C.
/// `--ring-buffer-size` and `--dns-port` are Linux-only and refused here; the config file's
/// `ring_buffer_size` and `dns_ports` are ignored (one file can serve both platforms).
#[cfg(windows)]
fn run_sensor(
    cli: &Cli,
    config: &Config<LinuxSettings>,
    engine: Engine,
    source: (RuleSource, u64),
) -> Result<(), (u8, String)> {
    use std::{
        sync::{Arc, Mutex},
        time::Duration,
    };

    use tunnelwatch_etw::{
        sensor::{self, Options, Reload, RunError, Stop},
        service::{self, Outcome},
    };

    if cli.ring_buffer_size.is_some() || !cli.dns_ports.is_empty() {
        return Err((
            exit::USAGE,
            "--ring-buffer-size and --dns-port apply to the Linux sensor only (on Windows ETW \
             sizes its own buffers, and DNS-Client events are not tied to a port)"
                .into(),
        ));
    }
    let interval = cli
        .stats_interval
        .unwrap_or(config.stats_interval.as_secs());
    // A change to a --rules file or the config file reloads them, polled every second by the
    // sensor, with the same RuleSource (load and fingerprint) as the Linux sensor.
    let (source, mut fingerprint) = source;
    let watching = source.config.is_some() || !source.rule_dirs.is_empty();
    let reload = watching.then(|| {
        let poll = move || {
            let now = source.fingerprint();
            if now == fingerprint {
                return None;
            }
            let why = "a changed rule or config file";
            match source.reload(why) {
                Some(loaded) => {
                    fingerprint = loaded.fingerprint;
                    Some(loaded.engine)
                }
                // A refused set is not retried until the files change again.
                None => {
                    fingerprint = now;
                    None
                }
            }
        };
        Reload(Arc::new(Mutex::new(poll)))
    });
    let opts = Options {
        all_events: cli.all_events,
        stats_interval: (interval > 0).then(|| Duration::from_secs(interval)),
        reload,
    };
    let result = match service::run(opts, engine) {
        Outcome::Service(result) => result,
        Outcome::Console(opts, engine) => {
            if let Err(e) = sensor::install_console_handler() {
                log::warn!("cannot handle Ctrl-C: {e}");
            }
            sensor::run(&opts, *engine)
        }
    };
    match result {
        Ok(Stop::Requested) => {
            eprintln!("tunnelwatch: stop requested: ETW sessions stopped, exiting");
            Ok(())
        }
        Ok(Stop::StdoutClosed) => {
            eprintln!("tunnelwatch: stdout closed: ETW sessions stopped, exiting");
            Ok(())
        }
        Err(RunError::Environment(m)) => Err((exit::ENVIRONMENT, m)),
        Err(RunError::Start(m)) => Err((exit::LOAD, m)),
        Err(RunError::Runtime(m)) => Err((exit::RUNTIME, m)),
    }
}

#[cfg(not(any(target_os = "linux", windows)))]
fn run_sensor(
    _cli: &Cli,
    _config: &Config<LinuxSettings>,
    _engine: Engine,
    _source: (RuleSource, u64),
) -> Result<(), (u8, String)> {
    Err((
        exit::ENVIRONMENT,
        "tunnelwatch runs on Linux (eBPF) and Windows (ETW) only".into(),
    ))
}

/// Sensor options from flags, then the config file, then defaults.
#[cfg(target_os = "linux")]
fn options(
    cli: &Cli,
    config: &Config<LinuxSettings>,
) -> Result<tunnelwatch::linux::sensor::Options, String> {
    use std::time::Duration;

    let settings = config
        .sensor
        .with_flags(cli.ring_buffer_size.as_deref(), &cli.dns_ports)?;
    let interval = cli
        .stats_interval
        .unwrap_or(config.stats_interval.as_secs());
    Ok(tunnelwatch::linux::sensor::Options {
        all_events: cli.all_events,
        ring_buffer_bytes: settings.ring_buffer_size,
        dns_ports: settings.dns_ports,
        stats_interval: (interval > 0).then(|| Duration::from_secs(interval)),
        kernel_log_level: if cli.verbose >= 2 { 4 } else { 0 },
        output_queue: cli.output_queue.max(1),
    })
}
