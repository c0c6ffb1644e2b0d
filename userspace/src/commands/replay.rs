//! `tunnelwatch replay [FILE]`: runs the rules over recorded events (the JSON lines the
//! sensor prints: `--all-events` event lines and alert lines alike, from a file or stdin; or
//! an `.etl` trace, recognised by its content, mapped by the Windows sensor's code in
//! `tunnelwatch-etw`) and prints the alerts exactly as the live sensor would have: repeats
//! folded within the same window, and a recorded summary line's `count` folded again into
//! the window of its alert, so that the summary comes out as it was recorded.
//!
//! Uses: the engine (recorded lines, the evaluate-and-emit step) and `tunnelwatch-etw`'s
//! `.etl` replay.

use std::{
    io::{self, BufRead, Write},
    time::Duration,
};

use tunnelwatch_engine::{
    engine::Engine,
    event::Event,
    replay::{LineKind, Recorded, Replay},
    step::Step,
};

/// What a replay saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    pub alerts: u64,
    /// Summary lines written.
    pub summaries: u64,
}

/// Replays `input` through `engine` onto `out`. With `all_events`, events that raise no alert
/// are printed too, as the sensor's `--all-events` does; repeats of an alert are folded
/// within `fold_window` (zero: never). A line that is not a recorded event is an error naming
/// its line number; what was printed before it stays printed.
pub fn run<R: BufRead, W: Write>(
    input: R,
    engine: &Engine,
    all_events: bool,
    fold_window: Duration,
    out: W,
) -> Result<Summary, String> {
    let mut replay = Replay::new(input);
    let recorded = std::iter::from_fn(move || replay.next_recorded());
    run_recorded(
        recorded.map(|r| r.map_err(|e| e.to_string())),
        engine,
        Step::new(out, all_events).with_fold_window(fold_window),
    )
}

/// Replays an `.etl` trace (`tunnelwatch_etw::replay::is_etl` said so) the same way.
pub fn run_etl<R: BufRead, W: Write>(
    input: R,
    engine: &Engine,
    all_events: bool,
    fold_window: Duration,
    out: W,
) -> Result<Summary, String> {
    let events = tunnelwatch_etw::replay::EtlReplay::new(input, "").map_err(|e| e.to_string())?;
    run_recorded(
        events.map(|e| {
            e.map(|event: Event| Recorded {
                kind: LineKind::Event,
                event: Some(event),
            })
            .map_err(|e| e.to_string())
        }),
        engine,
        Step::new(out, all_events).with_fold_window(fold_window),
    )
}

/// The recorded lines through the evaluate-and-emit step; the first bad one ends the replay
/// with its error, after what came before it was printed. The windows still open at the end
/// write their summaries.
fn run_recorded<W: Write>(
    recorded: impl Iterator<Item = Result<Recorded, String>>,
    engine: &Engine,
    mut step: Step<W>,
) -> Result<Summary, String> {
    let mut count = 0;
    let mut result = Ok(());
    for rec in recorded {
        let rec = rec?;
        // A correlation's line carries no event (the reader skips those).
        let Some(event) = &rec.event else {
            continue;
        };
        count += 1;
        result = match rec.kind {
            LineKind::Summary {
                count: n,
                first,
                last,
                ..
            } => step.run_summary(engine, event, n, (first, last)),
            _ => step.run(engine, event),
        };
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = step.finish();
    }
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(format!("cannot write to stdout: {e}")),
    }
    Ok(Summary {
        events: count,
        alerts: step.counts().alerts,
        summaries: step.counts().summaries,
    })
}
