//! One ETW event in, JSON lines out: the enricher, then the shared engine, then the shared
//! emitter. The Windows main loop and the tests drive this same code.

use std::io::{self, Write};

use tunnelwatch_engine::{emit::Emitter, engine::Engine, event::Event};

use crate::{enrich::Enricher, fields::RawEvent, host::Host};

pub struct Pipeline<H: Host, W: Write> {
    pub enricher: Enricher<H>,
    engine: Engine,
    emitter: Emitter<W>,
    /// Print every event, not only alerts (`--all-events`).
    all_events: bool,
    events: Vec<Event>,
    /// Lines written.
    pub lines: u64,
    /// Alert lines written.
    pub alerts: u64,
}

impl<H: Host, W: Write> Pipeline<H, W> {
    pub fn new(enricher: Enricher<H>, engine: Engine, out: W, all_events: bool) -> Self {
        Pipeline {
            enricher,
            engine,
            emitter: Emitter::new(out),
            all_events,
            events: Vec::new(),
            lines: 0,
            alerts: 0,
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
        self.write_events()
    }

    /// Every DNS event still waiting goes out (at the end).
    pub fn flush(&mut self) -> io::Result<()> {
        self.enricher.flush(&mut self.events);
        self.write_events()
    }

    fn write_events(&mut self) -> io::Result<()> {
        let mut alerts = Vec::new();
        for event in self.events.drain(..) {
            alerts.clear();
            self.engine.evaluate(&event, &mut alerts);
            if self.all_events && alerts.is_empty() {
                self.emitter.write_event(&event)?;
                self.lines += 1;
            }
            for alert in &alerts {
                self.emitter.write_alert(&event, alert)?;
                self.alerts += 1;
                self.lines += 1;
            }
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

    /// The output.
    pub fn out(&mut self) -> &mut W {
        self.emitter.get_mut()
    }

    pub fn into_out(self) -> W {
        self.emitter.into_inner()
    }
}
