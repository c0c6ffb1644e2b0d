//! `tunnelwatch replay [FILE]`: runs the rules over recorded events (the JSON lines the
//! sensor prints: `--all-events` event lines and alert lines alike, from a file or stdin) and
//! prints the alerts exactly as the live sensor would have.
//!
//! Uses: the engine (recorded lines, the evaluate-and-emit step).

use std::io::{self, BufRead, Write};

use tunnelwatch_engine::{engine::Engine, replay::Replay, step::Step};

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
    let mut step = Step::new(out, all_events);
    let mut events = 0;
    for event in Replay::new(input) {
        let event = event.map_err(|e| e.to_string())?;
        events += 1;
        match step.run(engine, &event) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(format!("cannot write to stdout: {e}")),
        }
    }
    Ok(Summary {
        events,
        alerts: step.counts().alerts,
    })
}
