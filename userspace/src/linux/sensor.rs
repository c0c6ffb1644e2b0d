//! The sensor's main loop: attach, seed the process table, then turn every ring-buffer record
//! into events, run the engine on them and print alerts (or every event) as JSON lines, until
//! SIGINT or SIGTERM, or until stdout closes. Stats go to stderr every interval and once at
//! the end. Every second it also checks that the cgroup programs are still attached, and
//! attaches again (with a warning, counted in `links_restored`) any that was detached.
//!
//! Uses: `loader`, `btf_offsets`, `preflight`, `enrich`, `proc_table` (this folder), `output`,
//! `rule_source`, and the engine (the engine, the evaluate-and-emit step, the stats line).

use std::{
    io,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};
use tunnelwatch_common::stats;
use tunnelwatch_engine::{engine::Engine, event::Event, stats::Stats, step::Step};

use crate::{
    linux::{
        btf_offsets,
        enrich::{Counters, Enricher},
        loader::{self, KernelStats, LoadOptions},
        preflight,
        proc_table::ProcTable,
    },
    output::Output,
    rule_source::RuleSource,
};

/// How the sensor runs (from the command line and the config file).
#[derive(Clone, Debug)]
pub struct Options {
    /// Print every event, not only alerts.
    pub all_events: bool,
    pub ring_buffer_bytes: u32,
    pub dns_ports: Vec<u16>,
    /// `None`: no periodic stats line (the final one is always printed).
    pub stats_interval: Option<Duration>,
    /// aya-log level for the kernel side (0 off, 4 debug).
    pub kernel_log_level: u8,
    /// Lines queued for stdout at most (see `output`).
    pub output_queue: usize,
}

/// Why the sensor stopped (all are clean exits).
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    Signal(&'static str),
    StdoutClosed,
}

/// A failure before the sensor could start, sorted for the exit code.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Not root, no BTF, no cgroup v2: the host cannot run the sensor as it is.
    #[error("{0:#}")]
    Environment(anyhow::Error),
    /// The kernel refused to load or attach a program.
    #[error("{0:#}")]
    Load(anyhow::Error),
}

/// Runs the sensor until a signal or a closed stdout.
/// `source` is where `engine` came from, with the fingerprint it was loaded at: the sensor
/// reloads from it on SIGHUP and when its files change.
pub fn run(opts: &Options, engine: Engine, source: (RuleSource, u64)) -> Result<Stop, RunError> {
    let (source, loaded_fingerprint) = source;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the event loop")
        .map_err(RunError::Run)?;
    // Before anything is loaded: a signal that comes while loading, or right after `ready`,
    // is handled by the event loop (detach, exit 0), not by the default action.
    let signals = {
        let _context = runtime.enter();
        Signals::install().map_err(RunError::Run)?
    };
    let host = preflight::check().map_err(|e| RunError::Start(StartError::Environment(e)))?;
    let started = Instant::now();
    let offsets =
        btf_offsets::read(&host.btf).map_err(|e| RunError::Start(StartError::Environment(e)))?;
    let mut probes = loader::load(&LoadOptions {
        offsets,
        cgroup_root: host.cgroup_root.clone(),
        ring_buffer_bytes: opts.ring_buffer_bytes,
        dns_ports: opts.dns_ports.clone(),
        kernel_log_level: opts.kernel_log_level,
    })
    .map_err(|e| RunError::Start(StartError::Load(e)))?;
    let ring = probes.take_events().map_err(RunError::Run)?;
    let lazy = take_lazy(&mut probes).map_err(RunError::Run)?;
    let kstats = probes.take_stats().map_err(RunError::Run)?;
    let logger = probes.logger.take();

    let mut procs = ProcTable::new();
    procs.seed_from_proc();
    let hostname: Arc<str> = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into())
        .into();
    let enricher = Enricher::new(hostname, procs);
    eprintln!(
        "tunnelwatch: ready in {} ms: exec, fork and exit via raw tracepoints; DNS (ports {}) via cgroup_skb on {}; {} rules; programs {:?}",
        started.elapsed().as_millis(),
        opts.dns_ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(","),
        host.cgroup_root.display(),
        engine.rules().len(),
        probes.program_ids,
    );

    let mut state = State {
        engine,
        enricher,
        step: Step::new(
            Queue {
                line: Vec::with_capacity(1024),
                output: Output::start(io::stdout(), opts.output_queue),
            },
            opts.all_events,
        ),
        events: Vec::new(),
        links_restored: 0,
    };
    let result = runtime.block_on(event_loop(
        &mut state,
        &mut probes,
        signals,
        (&source, loaded_fingerprint),
        ring,
        lazy,
        logger,
        &kstats,
        opts.stats_interval,
    ));
    // Detach everything before the final report: the programs are gone once this returns.
    drop(probes);
    // What is already queued is written before the final report (unless stdout is stuck).
    state.step.get_mut().output.finish(Duration::from_secs(2));
    report(&kstats, &state, "final");
    result.map_err(RunError::Run)
}

/// A start failure or a failure while running.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Start(StartError),
    #[error("{0:#}")]
    Run(anyhow::Error),
}

struct State {
    engine: Engine,
    enricher: Enricher,
    step: Step<Queue>,
    events: Vec<Event>,
    /// Cgroup links attached again after they were detached from outside.
    links_restored: u64,
}

/// Where the step writes: each line, once flushed, goes to the output queue.
struct Queue {
    line: Vec<u8>,
    output: Output,
}

impl io::Write for Queue {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            let line = std::mem::replace(&mut self.line, Vec::with_capacity(1024));
            self.output.send(line);
        }
        Ok(())
    }
}

impl State {
    /// Handles one record. `Err` only when a line cannot be formatted.
    fn record(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.enricher.handle(bytes, &mut self.events);
        for event in self.events.drain(..) {
            self.step.run(&self.engine, &event)?;
        }
        Ok(())
    }

    /// Whether the reader of stdout has gone away.
    fn stdout_closed(&self) -> bool {
        self.step.get_ref().output.stats().closed()
    }
}

/// After handling a wake-up, user space waits this long and drains the ring once more: the
/// kernel side does not wake it for records submitted within this time of the last wake-up
/// (ebpf/src/maps.rs), so one wake-up (an irq_work in the kernel, several µs) serves every
/// record of a burst, and none waits longer than about this.
const SECOND_PASS: Duration = Duration::from_nanos(tunnelwatch_common::limits::WAKE_COALESCE_NS);

/// The ring of fork and exit records, which do not wake user space (ebpf/src/maps.rs): it is
/// drained before every record of the main ring (a child's fork is committed before its exec
/// or packets, so the process table knows the child first), when it fills, and every second.
fn take_lazy(probes: &mut loader::Probes) -> Result<RingBuf<MapData>> {
    let map = probes
        .ebpf
        .take_map("LAZY")
        .context("the eBPF object has no LAZY map")?;
    RingBuf::try_from(map).context("LAZY is not a ring buffer")
}

/// Handles every record waiting in the main ring (and, before each, the fork/exit ring's);
/// returns how many main records there were.
fn drain_main(
    state: &mut State,
    ring: &mut RingBuf<MapData>,
    lazy: &mut RingBuf<MapData>,
) -> Result<usize> {
    let mut n = 0;
    while let Some(item) = ring.next() {
        drain_lazy(state, lazy)?;
        state
            .record(&item)
            .context("cannot format an output line")?;
        n += 1;
    }
    drain_lazy(state, lazy)?;
    Ok(n)
}

/// Handles every record waiting in the fork/exit ring.
fn drain_lazy(state: &mut State, lazy: &mut RingBuf<MapData>) -> Result<()> {
    while let Some(item) = lazy.next() {
        state
            .record(&item)
            .context("cannot format an output line")?;
    }
    Ok(())
}

/// The signals the sensor handles.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Replaces the default actions (must run within the runtime's context).
    fn install() -> Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            hup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
        })
    }
}

#[allow(clippy::too_many_arguments)]
async fn event_loop(
    state: &mut State,
    probes: &mut loader::Probes,
    signals: Signals,
    source: (&RuleSource, u64),
    ring: RingBuf<MapData>,
    lazy: RingBuf<MapData>,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    kstats: &KernelStats,
    stats_interval: Option<Duration>,
) -> Result<Stop> {
    // SAFETY: the ring buffer and the logger own their map fds, which stay open and the same
    // for as long as the AsyncFd owns them.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("cannot poll the ring buffer")?;
    // SAFETY: as above.
    let mut lazy = unsafe { AsyncFd::register_with_interest(lazy, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("cannot poll the fork/exit ring buffer")?;
    let mut logger = match logger {
        Some(l) => Some(
            // SAFETY: as above.
            unsafe { AsyncFd::register_with_interest(l, tokio::io::Interest::READABLE) }
                .map_err(|e| e.into_parts().1)
                .context("cannot poll the kernel log ring")?,
        ),
        None => None,
    };
    let Signals {
        int: mut sigint,
        term: mut sigterm,
        hup: mut sighup,
    } = signals;
    // Reload without a signal when a rule or config file changes (polled: cheap, portable).
    let (source, mut fingerprint) = source;
    let watching = source.config.is_some() || !source.rule_dirs.is_empty();
    let mut upkeep = tokio::time::interval(Duration::from_secs(1));
    upkeep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_stats = Instant::now();
    let mut last_lost = 0u64;

    loop {
        tokio::select! {
            biased;
            _ = sigint.recv() => return Ok(Stop::Signal("SIGINT")),
            _ = sigterm.recv() => return Ok(Stop::Signal("SIGTERM")),
            _ = sighup.recv() => {
                if let Some(f) = reload(state, source, "SIGHUP") {
                    fingerprint = f;
                }
            }
            guard = ring.readable_mut() => {
                let mut guard = guard.context("ring buffer poll failed")?;
                guard.clear_ready();
                if drain_main(state, guard.get_inner_mut(), lazy.get_mut())? > 0 {
                    // The records that did not wake us (see `SECOND_PASS`). Blocking is
                    // deliberate: it is short, and signals wait for it at most this long.
                    std::thread::sleep(SECOND_PASS);
                    drain_main(state, guard.get_inner_mut(), lazy.get_mut())?;
                }
                if state.stdout_closed() {
                    return Ok(Stop::StdoutClosed);
                }
            }
            guard = lazy.readable_mut() => {
                let mut guard = guard.context("fork/exit ring buffer poll failed")?;
                drain_lazy(state, guard.get_inner_mut())?;
                guard.clear_ready();
            }
            guard = async {
                match logger.as_mut() {
                    Some(l) => l.readable_mut().await,
                    None => std::future::pending().await,
                }
            } => {
                let mut guard = guard.context("kernel log poll failed")?;
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
            _ = upkeep.tick() => {
                if state.stdout_closed() {
                    return Ok(Stop::StdoutClosed);
                }
                // A record whose commit raced with the second pass after a wake-up, and the
                // fork/exit ring's records.
                drain_main(state, ring.get_mut(), lazy.get_mut())?;
                state.enricher.tick();
                restore_links(state, probes);
                if watching {
                    let now = source.fingerprint();
                    if now != fingerprint {
                        // A refused set is not retried until the files change again.
                        fingerprint = reload(state, source, "a changed rule or config file")
                            .unwrap_or(now);
                    }
                }
                let k = kstats.read();
                let lost = k[stats::EXEC_LOST as usize] + k[stats::FORK_LOST as usize]
                    + k[stats::EXIT_LOST as usize] + k[stats::DNS_LOST as usize];
                if lost > last_lost {
                    log::warn!(
                        "ring buffer full: {} records lost since the last check ({} in all); raise --ring-buffer-size",
                        lost - last_lost, lost
                    );
                    last_lost = lost;
                }
                if let Some(every) = stats_interval
                    && last_stats.elapsed() >= every
                {
                    last_stats = Instant::now();
                    report(kstats, state, "periodic");
                }
            }
        }
    }
}

/// Attaches again the cgroup programs someone detached (`bpftool link detach`): DNS detection
/// would otherwise die silently. Warns and counts each.
fn restore_links(state: &mut State, probes: &mut loader::Probes) {
    match probes.restore_links() {
        Ok(restored) => {
            for name in restored {
                state.links_restored += 1;
                log::warn!(
                    "the link of program {name} was detached from outside: attached again ({} restored in all)",
                    state.links_restored
                );
            }
        }
        Err(e) => log::warn!("cannot check or restore the cgroup links: {e:#}"),
    }
}

/// Swaps in the engine `source` loads now, between two records (nothing is dropped or
/// matched twice); a set that does not load leaves the running one in place. Returns the
/// fingerprint of what was loaded.
fn reload(state: &mut State, source: &RuleSource, why: &str) -> Option<u64> {
    let loaded = source.reload(why)?;
    state.engine = loaded.engine;
    Some(loaded.fingerprint)
}

/// Prints one stats line on stderr: the kernel side's counters, then user space's.
fn report(kstats: &KernelStats, state: &State, which: &str) {
    let k = kstats.read();
    let mut line = Stats::new(which);
    for (i, name) in stats::NAMES.iter().enumerate() {
        if !name.starts_with("unused") {
            line.set(name, k[i]);
        }
    }
    let Counters {
        records,
        decode_errors,
        dns_messages,
        dns_undecodable,
        args_completed,
        dns_inferred,
    } = state.enricher.counters;
    let out = state.step.get_ref().output.stats();
    let files = state.enricher.identify_counters();
    line.set("records", records)
        .set("decode_errors", decode_errors)
        .set("dns_messages", dns_messages)
        .set("dns_undecodable", dns_undecodable)
        .set("args_completed", args_completed)
        .set("dns_inferred", dns_inferred)
        .set("dns_tcp_dropped", state.enricher.dns_tcp_dropped())
        .set("lines_written", out.written.load(Ordering::Relaxed))
        .set("output_dropped", out.dropped.load(Ordering::Relaxed))
        .output(state.step.counts(), state.engine.suppressed())
        .set("processes", state.enricher.procs().len() as u64)
        .set("files_identified", files.files_read)
        .set("files_unread", files.files_unread)
        .set("files_over_limit", files.files_over_limit)
        .set("links_restored", state.links_restored);
    eprintln!("{line}");
}
