//! The evaluate-and-emit step every event takes, whoever made it (the Linux sensor, the
//! Windows sensor, `replay`): the engine evaluates the event, then its lines are written
//! through the emitter: one line per alert, or, with `--all-events`, the event's own line
//! when it raised none. With a fold window (and without `--all-events`), repeats of an alert
//! are folded (`fold.rs`): the first prints, the others are counted, and the window's summary
//! line is written when an event's time, the clock ([`Step::tick`]) or the end
//! ([`Step::finish`]) closes it. The step counts what it wrote for the stats line.
//!
//! Floor 7 (the engine and its output): may use `engine`, `emit`, `fold` and the floors below.

use std::{
    io::{self, Write},
    time::{Duration, SystemTime},
};

use crate::{
    emit::Emitter,
    engine::Engine,
    event::Event,
    fold::{Admit, Folder, Summary},
};

/// Most lines a replayed summary prints when it cannot be folded (its `count` comes from a
/// file, which may be hostile).
const MAX_UNFOLDED: u64 = 1000;

/// Lines written so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every line (alerts and, with `--all-events`, events).
    pub lines: u64,
    /// Alert lines.
    pub alerts: u64,
    /// Summary lines of folded repeats.
    pub summaries: u64,
    /// Alerts folded into a window (printed as part of a summary's `count`, not one by one).
    pub folded: u64,
    /// Alerts printed unfolded because too many windows were open.
    pub fold_untracked: u64,
}

/// The step, writing lines to `W` (which sees each line as one write, then a flush).
pub struct Step<W: Write> {
    emitter: Emitter<W>,
    all_events: bool,
    counts: Counts,
    folder: Option<Folder>,
    closed: Vec<Summary>,
}

impl<W: Write> Step<W> {
    /// A step writing to `out`; with `all_events`, events without alerts are written too.
    pub fn new(out: W, all_events: bool) -> Self {
        Step {
            emitter: Emitter::new(out),
            all_events,
            counts: Counts::default(),
            folder: None,
            closed: Vec::new(),
        }
    }

    /// Folds repeats of an alert within `window` (zero: never). `--all-events` is not
    /// folded: every event and alert prints.
    pub fn with_fold_window(mut self, window: Duration) -> Self {
        self.folder = (!window.is_zero() && !self.all_events).then(|| Folder::new(window));
        self
    }

    /// Evaluates `event` with `engine` and writes its lines. `Err` only when the output
    /// fails; the lines written before are counted.
    pub fn run(&mut self, engine: &Engine, event: &Event) -> io::Result<()> {
        self.tick(event.time())?;
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
            if let Some(folder) = &mut self.folder
                && folder.admit(alert, event) == Admit::Folded
            {
                continue;
            }
            self.emitter.write_alert(event, alert)?;
            self.counts.lines += 1;
            self.counts.alerts += 1;
        }
        Ok(())
    }

    /// A recorded summary line, replayed: the alerts `engine` raises on its `event` are
    /// counted `count` times, between `first` and `last`, into their windows, so that the
    /// summary is written again when the window closes (without folding, they print once
    /// each, as the recorded ones did not).
    pub fn run_summary(
        &mut self,
        engine: &Engine,
        event: &Event,
        count: u64,
        (first, last): (SystemTime, SystemTime),
    ) -> io::Result<()> {
        self.tick(event.time())?;
        let mut alerts = Vec::new();
        engine.evaluate(event, &mut alerts);
        for alert in &alerts {
            let folded = match &mut self.folder {
                Some(folder) => folder.add_recorded(alert, event, count, first, last),
                None => Admit::Print,
            };
            if folded == Admit::Print {
                for _ in 0..count.min(MAX_UNFOLDED) {
                    self.emitter.write_alert(event, alert)?;
                    self.counts.lines += 1;
                    self.counts.alerts += 1;
                }
            }
        }
        Ok(())
    }

    /// Writes the summaries of the windows that ended by `now` (the live sensor calls it
    /// every second with the clock; events call it with their own time).
    pub fn tick(&mut self, now: SystemTime) -> io::Result<()> {
        if let Some(folder) = &mut self.folder {
            folder.close_due(now, &mut self.closed);
        }
        self.write_closed()
    }

    /// Writes the summaries of every open window (at the end: nothing folded is lost).
    pub fn finish(&mut self) -> io::Result<()> {
        if let Some(folder) = &mut self.folder {
            folder.close_all(&mut self.closed);
        }
        self.write_closed()
    }

    fn write_closed(&mut self) -> io::Result<()> {
        for summary in std::mem::take(&mut self.closed) {
            self.emitter.write_summary(&summary)?;
            self.counts.lines += 1;
            self.counts.summaries += 1;
        }
        Ok(())
    }

    /// What was written and folded so far.
    pub fn counts(&self) -> Counts {
        Counts {
            folded: self.folder.as_ref().map_or(0, |f| f.folded),
            fold_untracked: self.folder.as_ref().map_or(0, |f| f.untracked),
            ..self.counts
        }
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
