//! The stats line both sensors print on stderr, every interval and once at the end:
//! `tunnelwatch: stats {JSON}`, one object of named counters with `"stats"` saying which line
//! it is (`periodic` or `final`). Each sensor sets its platform's counters (what was lost,
//! what was handled); [`Stats::output`] sets the ones every sensor shares. The keys and their
//! meaning are documented in the README.
//!
//! Floor 7 (the engine and its output): may use `step`.

use std::{collections::BTreeMap, fmt};

use serde_json::{Map, Value};

use crate::step::Counts;

/// One stats line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    which: String,
    /// Words that say how the sensor runs (e.g. the Windows sensor's `mode`).
    labels: BTreeMap<&'static str, &'static str>,
    counters: BTreeMap<&'static str, u64>,
}

impl Stats {
    /// An empty stats line; `which`: `periodic` or `final`.
    pub fn new(which: &str) -> Stats {
        Stats {
            which: which.to_owned(),
            labels: BTreeMap::new(),
            counters: BTreeMap::new(),
        }
    }

    /// Sets the word `name` (how the sensor runs, not a count).
    pub fn label(&mut self, name: &'static str, value: &'static str) -> &mut Stats {
        self.labels.insert(name, value);
        self
    }

    /// Sets counter `name`.
    pub fn set(&mut self, name: &'static str, value: u64) -> &mut Stats {
        self.counters.insert(name, value);
        self
    }

    /// The counters every sensor reports: `lines` and `alerts` written (by the step),
    /// `suppressed` (alerts the allowlist let through no line), what the correlations dropped
    /// (`correlation_groups_dropped`, `correlation_values_dropped`, `correlation_late`), and
    /// the folded repeats: `summaries` (summary lines), `folded` (alerts counted into a window
    /// instead of printed), `fold_untracked` (alerts printed unfolded: too many windows open).
    pub fn output(&mut self, written: Counts, suppressed: u64) -> &mut Stats {
        self.set("lines", written.lines)
            .set("alerts", written.alerts)
            .set("suppressed", suppressed)
            .set(
                "correlation_groups_dropped",
                written.correlation_groups_dropped,
            )
            .set(
                "correlation_values_dropped",
                written.correlation_values_dropped,
            )
            .set("correlation_late", written.correlation_late)
            .set("summaries", written.summaries)
            .set("folded", written.folded)
            .set("fold_untracked", written.fold_untracked)
    }

    /// The JSON object.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("stats".into(), self.which.as_str().into());
        for (name, value) in &self.labels {
            obj.insert((*name).into(), (*value).into());
        }
        for (name, value) in &self.counters {
            obj.insert((*name).into(), (*value).into());
        }
        Value::Object(obj)
    }
}

/// The line as printed: `tunnelwatch: stats {JSON}`.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tunnelwatch: stats {}", self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stats_line_names_itself_and_its_counters() {
        let mut s = Stats::new("final");
        s.set("records", 3).output(
            Counts {
                lines: 2,
                alerts: 1,
                correlation_values_dropped: 5,
                ..Counts::default()
            },
            4,
        );
        assert_eq!(
            s.to_string(),
            r#"tunnelwatch: stats {"alerts":1,"correlation_groups_dropped":0,"correlation_late":0,"correlation_values_dropped":5,"fold_untracked":0,"folded":0,"lines":2,"records":3,"stats":"final","summaries":0,"suppressed":4}"#
        );
    }
}
