//! `tunnelwatch replay [FILE]`: runs the rules over recorded events (the JSON lines the
//! sensor prints: `--all-events` event lines and alert lines alike, from a file or stdin; or
//! an `.etl` trace, recognised by its content, mapped by the Windows sensor's code in
//! `tunnelwatch-etw`) and prints the alerts exactly as the live sensor would have.
//!
//! Uses: the engine (recorded lines, the evaluate-and-emit step) and `tunnelwatch-etw`'s
//! `.etl` replay.

use std::io::{self, BufRead, Write};

use tunnelwatch_engine::{engine::Engine, event::Event, replay::Replay, step::Step};

/// What a replay saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    pub alerts: u64,
}

/// Replays `input` through `engine` onto `out`. With `all_events`, events that raise no alert
/// are printed too, as the sensor's `--all-events` does. A line that is not a recorded event
/// is an error naming its line number; what was printed before it stays printed.
pub fn run<R: BufRead, W: Write>(
    input: R,
    engine: &Engine,
    all_events: bool,
    out: W,
) -> Result<Summary, String> {
    run_events(
        Replay::new(input).map(|e| e.map_err(|e| e.to_string())),
        engine,
        all_events,
        out,
    )
}

/// Replays an `.etl` trace (`tunnelwatch_etw::replay::is_etl` said so) the same way.
pub fn run_etl<R: BufRead, W: Write>(
    input: R,
    engine: &Engine,
    all_events: bool,
    out: W,
) -> Result<Summary, String> {
    let events = tunnelwatch_etw::replay::EtlReplay::new(input, "").map_err(|e| e.to_string())?;
    run_events(
        events.map(|e| e.map_err(|e| e.to_string())),
        engine,
        all_events,
        out,
    )
}

/// The events through the evaluate-and-emit step; the first bad one ends the replay with its
/// error, after what came before it was printed.
fn run_events<W: Write>(
    events: impl Iterator<Item = Result<Event, String>>,
    engine: &Engine,
    all_events: bool,
    out: W,
) -> Result<Summary, String> {
    let mut step = Step::new(out, all_events);
    let mut count = 0;
    for event in events {
        let event = event?;
        count += 1;
        match step.run(engine, &event) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(format!("cannot write to stdout: {e}")),
        }
    }
    Ok(Summary {
        events: count,
        alerts: step.counts().alerts,
    })
}
