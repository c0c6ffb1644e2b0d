//! The evaluate-and-emit step every event takes, whoever made it (the Linux sensor, the
//! Windows sensor, `replay`): the engine evaluates the event, then its lines are written
//! through the emitter: one line per alert, or, with `--all-events`, the event's own line
//! when it raised none. The event then feeds the correlations its matches belong to
//! (`correlation/state.rs`), and each correlation that fires writes its line after it;
//! correlations decided by the end of a window the event's time shows to be over write
//! theirs before it. The step counts what it wrote for the stats line.
//!
//! Floor 7 (the engine and its output): may use `engine`, `emit`, `correlation` and the
//! floors below.

use std::io::{self, Write};

use crate::{
    correlation::{Correlator, Fired, Limits},
    emit::Emitter,
    engine::{Engine, Feed},
    event::Event,
};

/// Lines written so far, and what the correlations dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every line (alerts and, with `--all-events`, events).
    pub lines: u64,
    /// Alert lines (correlations' included).
    pub alerts: u64,
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
            correlator: Correlator::new(limits),
            feeds: Vec::new(),
            fired: Vec::new(),
        }
    }

    /// Evaluates `event` with `engine` and writes its lines. `Err` only when the output
    /// fails; the lines written before are counted.
    pub fn run(&mut self, engine: &Engine, event: &Event) -> io::Result<()> {
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
        if alerts.is_empty() {
            if self.all_events {
                self.emitter.write_event(event)?;
                self.counts.lines += 1;
            }
        } else {
            for alert in &alerts {
                self.emitter.write_alert(event, alert)?;
                self.counts.lines += 1;
                self.counts.alerts += 1;
            }
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

    /// What was written so far, and what the correlations dropped.
    pub fn counts(&self) -> Counts {
        Counts {
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
