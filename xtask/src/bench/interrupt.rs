//! Ctrl-C for the bench: SIGINT and SIGTERM set a flag (signal-hook) that every step checks
//! between runs and while it waits, so that the tools it started are stopped in order and the
//! machine's settings restored before it exits.
//!
//! May use: signal-hook, anyhow (a leaf of the bench).

use std::{
    sync::{
        Arc, LazyLock,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use signal_hook::consts::{SIGINT, SIGTERM};

static INTERRUPTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);

/// From now on, SIGINT and SIGTERM set the flag instead of ending the process.
pub fn catch_signals() -> Result<()> {
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&INTERRUPTED))
            .context("cannot catch SIGINT and SIGTERM")?;
    }
    Ok(())
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
