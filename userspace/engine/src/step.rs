//! The evaluate-and-emit step every event takes, whoever made it (the Linux sensor, the
//! Windows sensor, `replay`): the engine evaluates the event, then its lines are written
//! through the emitter: one line per alert, or, with `--all-events`, the event's own line
//! when it raised none. The step counts what it wrote for the stats line.
//!
//! Floor 7 (the engine and its output): may use `engine`, `emit` and the floors below.

use std::io::{self, Write};

use crate::{emit::Emitter, engine::Engine, event::Event};

/// Lines written so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every line (alerts and, with `--all-events`, events).
    pub lines: u64,
    /// Alert lines.
    pub alerts: u64,
}

/// The step, writing lines to `W` (which sees each line as one write, then a flush).
pub struct Step<W: Write> {
    emitter: Emitter<W>,
    all_events: bool,
    counts: Counts,
}

impl<W: Write> Step<W> {
    /// A step writing to `out`; with `all_events`, events without alerts are written too.
    pub fn new(out: W, all_events: bool) -> Self {
        Step {
            emitter: Emitter::new(out),
            all_events,
            counts: Counts::default(),
        }
    }

    /// Evaluates `event` with `engine` and writes its lines. `Err` only when the output
    /// fails; the lines written before are counted.
    pub fn run(&mut self, engine: &Engine, event: &Event) -> io::Result<()> {
        let mut alerts = Vec::new();
        engine.evaluate(event, &mut alerts);
        if alerts.is_empty() {
            if self.all_events {
                self.emitter.write_event(event)?;
                self.counts.lines += 1;
            }
            return Ok(());
        }
        for alert in &alerts {
            self.emitter.write_alert(event, alert)?;
            self.counts.lines += 1;
            self.counts.alerts += 1;
        }
        Ok(())
    }

    /// What was written so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The writer.
    pub fn get_ref(&self) -> &W {
        self.emitter.get_ref()
    }

    /// The writer.
    pub fn get_mut(&mut self) -> &mut W {
        self.emitter.get_mut()
    }
}
