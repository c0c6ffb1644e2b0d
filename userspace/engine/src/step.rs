//! The evaluate-and-emit step every event takes, whoever made it (the Linux sensor, the
//! Windows sensor, `replay`): the engine evaluates the event, then its lines are written
//! through the emitter: one line per alert, or, with `--all-events`, the event's own line
//! when it raised none. With a fold window (and without `--all-events`), repeats of an alert
//! are folded (`fold.rs`): the first prints, the others are counted, and the window's summary
//! line is written when an event's time, the clock ([`Step::tick`]) or the end
//! ([`Step::finish`]) closes it. The event then feeds the correlations its matches belong to
//! (`correlation/state.rs`), and each correlation that fires writes its line after it;
//! correlations decided by the end of a window the event's time shows to be over write theirs
//! before it. Correlation alerts are not folded: a correlation that fired keeps quiet for its
//! timespan by itself. The step counts what it wrote for the stats line.
//!
//! Floor 7 (the engine and its output): may use `engine`, `emit`, `fold`, `correlation` and
//! the floors below.

use std::{
    io::{self, Write},
    time::{Duration, SystemTime},
};

use crate::{
    correlation::{Correlator, Fired, Limits},
    emit::Emitter,
    engine::{Engine, Feed},
    event::Event,
    fold::{Admit, Folder, Summary},
};

/// Most lines a replayed summary prints when it cannot be folded (its `count` comes from a
/// file, which may be hostile).
const MAX_UNFOLDED: u64 = 1000;

/// Lines written so far, what was folded, and what the correlations dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every line (alerts and, with `--all-events`, events).
    pub lines: u64,
    /// Alert lines (correlations' included).
    pub alerts: u64,
    /// Summary lines of folded repeats.
    pub summaries: u64,
    /// Alerts folded into a window (printed as part of a summary's `count`, not one by one).
    pub folded: u64,
    /// Alerts printed unfolded because too many windows were open.
    pub fold_untracked: u64,
    /// Correlation groups not opened: the limit on groups was reached.
    pub correlation_groups_dropped: u64,
    /// Events or values a correlation window did not remember: the limit was reached.
    pub correlation_values_dropped: u64,
    /// Events older than their correlation's window when they came.
    pub correlation_late: u64,
}

/// The step, writing lines to `W` (which sees each line as one write, then a flush).
pub struct Step<W: Write> {
    emitter: Emitter<W>,
    all_events: bool,
    counts: Counts,
    folder: Option<Folder>,
    closed: Vec<Summary>,
    correlator: Correlator,
    feeds: Vec<Feed>,
    fired: Vec<Fired>,
}

impl<W: Write> Step<W> {
    /// A step writing to `out`; with `all_events`, events without alerts are written too.
    pub fn new(out: W, all_events: bool) -> Self {
        Self::with_limits(out, all_events, Limits::default())
    }

    /// A step whose correlations remember at most what `limits` allow.
    pub fn with_limits(out: W, all_events: bool, limits: Limits) -> Self {
        Step {
            emitter: Emitter::new(out),
            all_events,
            counts: Counts::default(),
            folder: None,
            closed: Vec::new(),
            correlator: Correlator::new(limits),
            feeds: Vec::new(),
            fired: Vec::new(),
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
        let correlations = !engine.rules().correlations().is_empty();
        if correlations {
            self.fired.clear();
            self.correlator
                .advance(engine, event.time(), &mut self.fired);
            self.write_fired(engine)?;
        }
        let mut alerts = Vec::new();
        self.feeds.clear();
        engine.evaluate_feeding(event, &mut alerts, &mut self.feeds);
        if alerts.is_empty() && self.all_events {
            self.emitter.write_event(event)?;
            self.counts.lines += 1;
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
        if correlations && !self.feeds.is_empty() {
            self.fired.clear();
            self.correlator
                .observe(engine, event, &self.feeds, &mut self.fired);
            self.write_fired(engine)?;
        }
        Ok(())
    }

    /// Writes the lines of the correlations that fired (those that only feed others write
    /// none).
    fn write_fired(&mut self, engine: &Engine) -> io::Result<()> {
        for fired in &self.fired {
            if fired.silent {
                continue;
            }
            let corr = &engine.rules().correlations()[fired.correlation];
            self.emitter.write_correlation(corr, fired)?;
            self.counts.lines += 1;
            self.counts.alerts += 1;
        }
        Ok(())
    }

    /// A recorded summary line, replayed: the alerts `engine` raises on its `event` are
    /// counted `count` times, between `first` and `last`, into their windows, so that the
    /// summary is written again when the window closes (without folding, they print once
    /// each, as the recorded ones did not). The repeats do not feed correlations: a recording
    /// of alerts lacks the events of rules that raise none, so correlations are raised again
    /// from `--all-events` recordings only (which are never folded).
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

    /// What was written and folded so far, and what the correlations dropped.
    pub fn counts(&self) -> Counts {
        Counts {
            folded: self.folder.as_ref().map_or(0, |f| f.folded),
            fold_untracked: self.folder.as_ref().map_or(0, |f| f.untracked),
            correlation_groups_dropped: self.correlator.dropped_groups,
            correlation_values_dropped: self.correlator.dropped_values,
            correlation_late: self.correlator.late,
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
