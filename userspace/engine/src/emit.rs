//! Alert and event output: one JSON object per line with Splunk CIM field names, flushed per
//! line. The emitter is the only writer of stdout; it takes any [`Write`] so tests and other
//! sinks can use it too. What a line holds, in which order, and which unknown fields it leaves
//! out is the line schema's (`line/`); the emitter fills an alert's part from its rule.
//!
//! Floor 7 (the engine and its output): may use `alert`, `rule`, `fold`, `correlation` and
//! the floors below.

use std::{
    borrow::Cow,
    io::{self, Write},
};

use crate::{
    alert::Alert,
    correlation::{Correlation, Fired},
    event::Event,
    fold,
    line::{AlertFields, CorrelationLine, Head, Line, Required, Summary},
};

pub use crate::line::VENDOR_PRODUCT;

/// Writes JSON lines to `W`.
pub struct Emitter<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> Emitter<W> {
    /// An emitter writing to `out`.
    pub fn new(out: W) -> Self {
        Emitter {
            out,
            buf: Vec::with_capacity(1024),
        }
    }

    /// Writes and flushes the line of `alert`, raised on `event`.
    pub fn write_alert(&mut self, event: &Event, alert: &Alert<'_>) -> io::Result<()> {
        let rule = alert.rule;
        let fields = AlertFields {
            rule_id: rule.id.as_deref(),
            rule_name: Required(&rule.title),
            rule_type: rule.analytic_type.as_deref(),
            severity: rule.level.map(|l| l.as_str()),
            mitre_technique_id: Cow::Borrowed(&rule.mitre_technique_ids),
            risk_score: rule.risk_score,
            message: Required(&alert.message),
            falsepositives: Cow::Borrowed(&rule.falsepositives),
        };
        self.write_line(&Line::new(event, Some(fields)))
    }

    /// Writes and flushes the line of correlation `corr` that fired.
    pub fn write_correlation(&mut self, corr: &Correlation, fired: &Fired) -> io::Result<()> {
        let line = CorrelationLine {
            head: Head {
                time: Some(fired.time),
                host: &fired.host,
                kind: Required("alert"),
            },
            alert: AlertFields {
                rule_id: corr.meta.id.as_deref(),
                rule_name: Required(&corr.meta.title),
                rule_type: corr.analytic_type.as_deref(),
                severity: corr.meta.level.map(|l| l.as_str()),
                mitre_technique_id: Cow::Borrowed(&corr.meta.mitre_technique_ids),
                risk_score: corr.risk_score,
                message: Required(&fired.message),
                falsepositives: Cow::Borrowed(&corr.meta.falsepositives),
            },
            correlation_type: corr.kind.as_str(),
            group: corr
                .group_by
                .iter()
                .map(String::as_str)
                .zip(fired.group.iter().map(String::as_str))
                .collect(),
            summary: Summary {
                count: Some(fired.count),
                distinct_count: fired.distinct,
                values: Cow::Borrowed(&fired.values),
                firstTime: Some(fired.first),
                lastTime: Some(fired.last),
            },
        };
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &line).map_err(io::Error::other)?;
        self.finish_line()
    }

    /// Writes and flushes the summary line of folded repeats.
    pub fn write_summary(&mut self, summary: &fold::Summary) -> io::Result<()> {
        self.write_line(&Line::summary(
            &summary.event,
            summary.alert.fields(),
            summary.repeats(),
        ))
    }

    /// Writes and flushes the line of `event` (for `--all-events`).
    pub fn write_event(&mut self, event: &Event) -> io::Result<()> {
        self.write_line(&Line::new(event, None))
    }

    /// The writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// The writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Gives the writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn write_line(&mut self, line: &Line<'_>) -> io::Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, line).map_err(io::Error::other)?;
        self.finish_line()
    }

    /// Ends the line in the buffer, writes it and flushes.
    fn finish_line(&mut self) -> io::Result<()> {
        self.buf.push(b'\n');
        self.out.write_all(&self.buf)?;
        self.out.flush()
    }
}
