//! The Windows sensor's main loop: check elevation, start the ETW sessions, then map every
//! event, run the engine on it and print alerts (or every event) as JSON lines, until Ctrl-C
//! (or the console closing, the user logging off, the machine shutting down), a service stop,
//! or stdout closing. Stats go to stderr every interval and once at the end, in the Linux
//! sensor's format, and lost events are warned about as they happen.

use std::{
    io::{self, Write},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{RecvTimeoutError, sync_channel},
    },
    time::{Duration, Instant, SystemTime},
};

use tunnelwatch_engine::engine::Engine;

use crate::{
    consumer::{self, CHANNEL_CAPACITY, KERNEL_SESSION, Sessions, StartError, USER_SESSION},
    elevation,
    enrich::Enricher,
    fields::system_time_to_filetime,
    host::WindowsHost,
    instance,
    paths::DeviceMap,
    pipeline::Pipeline,
    stats::{Activity, Losses, loss_warning, stats},
};

/// How the sensor runs (from the command line and the config file).
#[derive(Clone, Debug)]
pub struct Options {
    /// Print every event, not only alerts.
    pub all_events: bool,
    /// `None`: no periodic stats line (the final one is always printed).
    pub stats_interval: Option<Duration>,
    /// Repeats of an alert within it are folded (zero: never).
    pub fold_window: Duration,
    /// Polled every second: a new engine when the rule or config files changed (the binary's
    /// `RuleSource`, as on Linux); `None` when nothing is watched.
    pub reload: Option<Reload>,
}

/// A poll for a reloaded engine (shared, so that [`Options`] stays `Clone`).
#[derive(Clone)]
pub struct Reload(pub Arc<std::sync::Mutex<dyn FnMut() -> Option<Engine> + Send>>);

impl std::fmt::Debug for Reload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reload")
    }
}

/// Why the sensor stopped (all are clean exits).
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// Ctrl-C, Ctrl-Break, console closed, logoff or shutdown, or a service stop.
    Requested,
    StdoutClosed,
}

/// Why the sensor failed.
#[derive(Debug)]
pub enum RunError {
    /// This process may not run the sensor (not elevated).
    Environment(String),
    /// ETW refused to start a session.
    Start(String),
    /// Failure while running.
    Runtime(String),
}

/// Set to ask the main loop to stop (console handler, service control handler).
static STOP: AtomicBool = AtomicBool::new(false);
/// Set by the main loop once the ETW sessions are stopped.
static STOPPED: AtomicBool = AtomicBool::new(false);

/// Asks the running sensor to stop.
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether the sensor has stopped its sessions.
pub fn has_stopped() -> bool {
    STOPPED.load(Ordering::SeqCst)
}

/// Ctrl-C and Ctrl-Break stop the sensor; closing the console, logging off and shutting down
/// too, and the handler then waits (up to 4 s of the 5 s Windows allows) for the sessions to
/// be stopped, since the process is ended when it returns. Console mode only: a service gets
/// logoff events for every user's logoff.
pub fn install_console_handler() -> io::Result<()> {
    use windows_sys::Win32::{
        Foundation::TRUE,
        System::Console::{CTRL_BREAK_EVENT, CTRL_C_EVENT, SetConsoleCtrlHandler},
    };

    unsafe extern "system" fn handler(ctrl: u32) -> windows_sys::core::BOOL {
        request_stop();
        if ctrl != CTRL_C_EVENT && ctrl != CTRL_BREAK_EVENT {
            let deadline = Instant::now() + Duration::from_secs(4);
            while !has_stopped() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        TRUE
    }
    // SAFETY: `handler` is a valid handler routine for the life of the process.
    if unsafe { SetConsoleCtrlHandler(Some(handler), TRUE) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs the sensor until a stop is requested or stdout closes.
pub fn run(opts: &Options, engine: Engine) -> Result<Stop, RunError> {
    elevation::require_elevated().map_err(RunError::Environment)?;
    // Before any session is touched: a second sensor leaves the first one's sessions alone.
    let _instance = instance::acquire().map_err(RunError::Environment)?;
    let started = Instant::now();
    let host_name: Arc<str> = computer_name().into();
    let devices = DeviceMap::query();
    let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
    let sessions = consumer::start(tx).map_err(|e| match e {
        StartError::AccessDenied(m) => {
            RunError::Environment(format!("{m}; {}", elevation::NOT_ELEVATED))
        }
        StartError::Etw(m) => RunError::Start(m),
    })?;
    let sources = match sessions.kernel_refused() {
        None => format!(
            "ETW sessions '{USER_SESSION}' (Microsoft-Windows-Kernel-Process, Microsoft-Windows-DNS-Client) and '{KERNEL_SESSION}' (kernel process events)"
        ),
        Some(why) => {
            log::warn!(
                "{why}; running on Microsoft-Windows-Kernel-Process alone: command lines and users are read from the live processes, and a process gone within a second has none"
            );
            format!(
                "ETW session '{USER_SESSION}' (Microsoft-Windows-Kernel-Process, Microsoft-Windows-DNS-Client; no kernel session)"
            )
        }
    };
    eprintln!(
        "tunnelwatch: ready in {} ms: {sources}; mode {}; {} rules; {} drives",
        started.elapsed().as_millis(),
        sessions.mode().name(),
        engine.rules().len(),
        devices.len(),
    );
    let enricher =
        Enricher::new(host_name, devices, WindowsHost::default()).with_mode(sessions.mode());
    let mut pipeline = Pipeline::new(enricher, engine, io::stdout().lock(), opts.all_events)
        .with_fold_window(opts.fold_window);

    let result = event_loop(&mut pipeline, &rx, &sessions, opts);
    let losses = sessions.losses();
    sessions.stop();
    STOPPED.store(true, Ordering::SeqCst);
    // DNS events still waiting for their process, and what the channel still holds.
    while let Ok(raw) = rx.try_recv() {
        if pipeline.handle(&raw).is_err() {
            break;
        }
    }
    let _ = pipeline.flush();
    let _ = pipeline.out().flush();
    report(&pipeline, &losses, "final");
    result
}

/// A failed write to stdout: a closed pipe ends the sensor cleanly.
fn stdout_error(e: io::Error) -> Result<Stop, RunError> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return Ok(Stop::StdoutClosed);
    }
    Err(RunError::Runtime(format!("cannot write to stdout: {e}")))
}

fn event_loop<W: Write>(
    pipeline: &mut Pipeline<WindowsHost, W>,
    rx: &std::sync::mpsc::Receiver<crate::fields::RawEvent>,
    sessions: &Sessions,
    opts: &Options,
) -> Result<Stop, RunError> {
    let stats_interval = opts.stats_interval;
    let mut last_upkeep = Instant::now();
    let mut last_stats = Instant::now();
    let mut last_devices = Instant::now();
    let mut losses = Losses::default();
    loop {
        if STOP.load(Ordering::SeqCst) {
            return Ok(Stop::Requested);
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(raw) => {
                if let Err(e) = pipeline.handle(&raw) {
                    return stdout_error(e);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(RunError::Runtime("the ETW callbacks are gone".into()));
            }
        }
        if last_upkeep.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last_upkeep = Instant::now();
        if let Err(e) = pipeline.tick(system_time_to_filetime(SystemTime::now())) {
            return stdout_error(e);
        }
        if let Some(why) = sessions.ended() {
            return Err(RunError::Runtime(format!(
                "{why} while the sensor was running"
            )));
        }
        let now = sessions.losses();
        if let Some(w) = loss_warning(&losses, &now) {
            log::warn!("{w}");
        }
        losses = now;
        // Rules and config changed on disk: swapped between two events, as on Linux.
        if let Some(Reload(poll)) = &opts.reload {
            let fresh = (poll.lock().unwrap_or_else(|e| e.into_inner()))();
            if let Some(engine) = fresh {
                pipeline.set_engine(engine);
            }
        }
        // Drives come and go (USB disks, mapped shares).
        if last_devices.elapsed() >= Duration::from_secs(60) {
            last_devices = Instant::now();
            pipeline.enricher.set_devices(DeviceMap::query());
        }
        if let Some(every) = stats_interval
            && last_stats.elapsed() >= every
        {
            last_stats = Instant::now();
            report(pipeline, &losses, "periodic");
        }
    }
}

/// Prints one stats line on stderr: `tunnelwatch: stats {JSON}`.
fn report<W: Write>(pipeline: &Pipeline<WindowsHost, W>, losses: &Losses, which: &str) {
    let written = pipeline.counts();
    let activity = Activity {
        counters: pipeline.enricher.counters(),
        written,
        suppressed: pipeline.engine().suppressed(),
        processes: pipeline.enricher.procs().len(),
        mode: pipeline.enricher.mode().name(),
    };
    eprintln!("{}", stats(which, losses, &activity));
}

/// This machine's DNS host name (CIM `dest`), else `%COMPUTERNAME%`.
fn computer_name() -> String {
    use windows_sys::Win32::System::SystemInformation::{
        ComputerNameDnsHostname, GetComputerNameExW,
    };

    let mut buf = vec![0u16; 256];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` is writable for `len` u16s.
    if unsafe { GetComputerNameExW(ComputerNameDnsHostname, buf.as_mut_ptr(), &mut len) } != 0
        && len > 0
    {
        return String::from_utf16_lossy(&buf[..len as usize]);
    }
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "localhost".into())
}
