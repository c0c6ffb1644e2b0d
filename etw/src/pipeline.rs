//! One ETW event in, JSON lines out: the enricher, then the engine's evaluate-and-emit step
//! (the same the Linux sensor and `replay` take). The Windows main loop and the tests drive
//! this same code.
//!
//! Uses: `enrich`, `fields`, `host` (this crate) and the engine's step.

use std::{
    io::{self, Write},
    time::Duration,
};

use tunnelwatch_engine::{
    engine::Engine,
    event::Event,
    step::{Counts, Step},
};

use crate::{
    enrich::Enricher,
    fields::{RawEvent, filetime_to_system_time},
    host::Host,
};

pub struct Pipeline<H: Host, W: Write> {
    pub enricher: Enricher<H>,
    engine: Engine,
    step: Step<W>,
    events: Vec<Event>,
}

impl<H: Host, W: Write> Pipeline<H, W> {
    /// With `all_events`, every event is printed, not only alerts (`--all-events`).
    pub fn new(enricher: Enricher<H>, engine: Engine, out: W, all_events: bool) -> Self {
        Pipeline {
            enricher,
            engine,
            step: Step::new(out, all_events),
            events: Vec::new(),
        }
    }

    /// Folds repeats of an alert within `window` (zero: never), as the Linux sensor does.
    pub fn with_fold_window(self, window: Duration) -> Self {
        Pipeline {
            step: self.step.with_fold_window(window),
            ..self
        }
    }

    /// Maps `raw`, runs the rules on what it made and writes the lines, as the Linux sensor
    /// does: every alert, and with `all_events` also each event that raised none. `Err` only
    /// when the output fails.
    pub fn handle(&mut self, raw: &RawEvent) -> io::Result<()> {
        self.enricher.handle(raw, &mut self.events);
        self.write_events()
    }

    /// The enricher's upkeep at `now` (FILETIME): DNS events that waited long enough for their
    /// process go out.
    pub fn tick(&mut self, now: i64) -> io::Result<()> {
        self.enricher.tick(now, &mut self.events);
        self.write_events()?;
        // Folded repeats whose window the clock has closed.
        self.step.tick(filetime_to_system_time(now))
    }

    /// Every DNS event still waiting goes out (at the end).
    pub fn flush(&mut self) -> io::Result<()> {
        self.enricher.flush(&mut self.events);
        self.write_events()?;
        self.step.finish()
    }

    fn write_events(&mut self) -> io::Result<()> {
        for event in self.events.drain(..) {
            self.step.run(&self.engine, &event)?;
        }
        Ok(())
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Swaps in a reloaded engine, between two events.
    pub fn set_engine(&mut self, engine: Engine) {
        self.engine = engine;
    }

    /// Lines and alerts written.
    pub fn counts(&self) -> Counts {
        self.step.counts()
    }

    /// The output.
    pub fn out(&mut self) -> &mut W {
        self.step.get_mut()
    }
}
