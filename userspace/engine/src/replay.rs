//! Recorded events back into [`Event`]s: the JSON lines the sensor prints (`--all-events`
//! event lines and alert lines, which carry the same CIM fields), so that `tunnelwatch replay`
//! can run the rules again and print alerts exactly as the live sensor would.
//!
//! A line keeps everything the engine matches and the emitter writes: for every event `e`,
//! emitting the event parsed from `e`'s line gives `e`'s line again, byte for byte. What a
//! line does not carry is lost: the platform (inferred, see [`infer_platform`]), the parent's
//! user, and for DNS events the parent's command line and the process's original file name.
//!
//! The sensor writes an event either as one event line (no alert) or as one alert line per
//! alert, the event repeated on each. [`Replay`] reads such a stream and yields each event
//! once. A correlation's alert line stands for several events and carries none: it is
//! skipped (a correlation is raised again by the events it stands for, which an
//! `--all-events` recording holds; an alerts-only recording lacks those of a correlation's
//! rules that raise no alert of their own). A summary line (`"kind":"summary"`, repeats of an
//! alert folded by the step) stands for `count` alerts of its event that were not printed:
//! [`Replay::next_recorded`] yields it so that the replay command folds them again
//! (`Step::run_summary`); iterated as events, summary lines are skipped and counted
//! ([`Replay::summaries`]). What a line may hold and how each field reads is the line
//! schema's (`line/`).
//!
//! Floor 1 (events, fields and lines): may use `line`, `field` and `event`.

use std::{fmt, io::BufRead, time::SystemTime};

use serde_json::Value;

pub use crate::line::infer_platform;
use crate::{
    event::{Event, Platform},
    field::Category,
    line::{
        AlertFields, Body, CORRELATION_TYPE, ContainerLine, Context, Head, JsonMap, Part,
        READ_ONLY_KEYS, Repeats, Source, value::FieldValue,
    },
};

/// Why a recorded line could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayError {
    /// 1-based line of the input; 0 when parsing a single line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

impl std::error::Error for ReplayError {}

/// What kind of line a recorded line was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// An `--all-events` line (`"kind":"event"`).
    Event,
    /// An alert line (`"kind":"alert"`), with the id of the rule that raised it.
    Alert { rule_id: Option<String> },
    /// A correlation's alert line (it has `correlation_type`), which stands for several
    /// events and carries none.
    Correlation { rule_id: Option<String> },
    /// A summary line (`"kind":"summary"`): `count` more alerts of the rule on events like
    /// this one, the first at `first`, the last at `last`.
    Summary {
        rule_id: Option<String>,
        count: u64,
        first: SystemTime,
        last: SystemTime,
    },
}

/// A parsed line: its kind and its event (none for a correlation's line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub kind: LineKind,
    pub event: Option<Event>,
}

/// One recorded line: its kind and its event.
pub fn parse_line(line: &str) -> Result<Recorded, ReplayError> {
    let err = |reason: String| ReplayError { line: 0, reason };
    let value: Value =
        serde_json::from_str(line).map_err(|e| err(format!("not a JSON object: {e}")))?;
    let Value::Object(map) = value else {
        return Err(err("not a JSON object".into()));
    };
    let rule_id = || {
        map.get("rule_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let kind = match map.get("kind").and_then(Value::as_str) {
        Some("event") => LineKind::Event,
        Some("alert") if map.contains_key(CORRELATION_TYPE) => {
            return Ok(Recorded {
                kind: LineKind::Correlation { rule_id: rule_id() },
                event: None,
            });
        }
        Some("alert") => LineKind::Alert { rule_id: rule_id() },
        Some("summary") => {
            let r = Repeats::read(&map).map_err(err)?;
            let (Some(count), Some(first), Some(last)) = (r.count, r.firstTime, r.lastTime) else {
                return Err(err(
                    "a summary line needs 'count', 'firstTime' and 'lastTime'".into(),
                ));
            };
            LineKind::Summary {
                rule_id: rule_id(),
                count,
                first,
                last,
            }
        }
        Some(other) => {
            return Err(err(format!(
                "unknown kind '{other}' (event, alert or summary)"
            )));
        }
        None => return Err(err("no 'kind' (event, alert or summary)".into())),
    };
    let event = build_event(&map, &BuildOptions::default()).map_err(err)?;
    Ok(Recorded {
        kind,
        event: Some(event),
    })
}

/// Reads recorded lines and yields each event once: an event line, or the first of the
/// consecutive alert lines that repeat the same event. Blank lines are skipped.
pub struct Replay<R> {
    lines: std::io::Lines<R>,
    line: usize,
    /// The event of the last alert line, whose repeats are skipped.
    last_alert: Option<Event>,
    /// Summary lines skipped when iterating events, and the alerts they stood for.
    summaries: (u64, u64),
}

impl<R: BufRead> Replay<R> {
    /// Replays `input`.
    pub fn new(input: R) -> Self {
        Replay {
            lines: input.lines(),
            line: 0,
            last_alert: None,
            summaries: (0, 0),
        }
    }

    /// Summary lines skipped so far by the iterator of events, and the alerts they stood for
    /// (the sum of their counts).
    pub fn summaries(&self) -> (u64, u64) {
        self.summaries
    }

    /// The next line as recorded: an event once (an event line, or the first of the alert
    /// lines of one event), or a summary line.
    pub fn next_recorded(&mut self) -> Option<Result<Recorded, ReplayError>> {
        loop {
            let text = match self.lines.next()? {
                Ok(t) => t,
                Err(e) => {
                    self.line += 1;
                    return Some(Err(ReplayError {
                        line: self.line,
                        reason: format!("cannot read: {e}"),
                    }));
                }
            };
            self.line += 1;
            if text.trim().is_empty() {
                continue;
            }
            let rec = match parse_line(&text) {
                Ok(r) => r,
                Err(mut e) => {
                    e.line = self.line;
                    return Some(Err(e));
                }
            };
            if rec.event.is_none() {
                // A correlation's line: its events come (or came) on their own lines.
                continue;
            }
            match rec.kind {
                LineKind::Alert { .. } => {
                    if self.last_alert == rec.event {
                        continue;
                    }
                    self.last_alert = rec.event.clone();
                }
                _ => self.last_alert = None,
            }
            return Some(Ok(rec));
        }
    }
}

impl<R: BufRead> Iterator for Replay<R> {
    type Item = Result<Event, ReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_recorded()? {
                Ok(Recorded {
                    kind: LineKind::Summary { count, .. },
                    ..
                }) => {
                    self.summaries.0 += 1;
                    self.summaries.1 = self.summaries.1.saturating_add(count);
                }
                Ok(Recorded {
                    event: Some(event), ..
                }) => return Some(Ok(event)),
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// How to read an event from fields.
#[derive(Clone, Debug, Default)]
pub(crate) struct BuildOptions {
    /// Refuse keys that are not event fields, and fill conveniences (a process name from its
    /// path); for rule test cases, written by hand.
    pub strict: bool,
    /// The platform when the fields do not name one (else it is inferred).
    pub platform: Option<Platform>,
    /// The kind of event when neither `datamodel` nor the fields tell.
    pub category: Option<Category>,
}

/// Builds an event from the fields of a line (or of a rule test case). The keys a line may
/// have are the line schema's: its head, source and body, an alert's fields (not in test
/// cases), and [`READ_ONLY_KEYS`].
pub(crate) fn build_event(map: &JsonMap, opts: &BuildOptions) -> Result<Event, String> {
    let common = |k: &str| {
        Head::KEYS.contains(&k)
            || Source::KEYS.contains(&k)
            || READ_ONLY_KEYS.contains(&k)
            || ContainerLine::KEYS.contains(&k)
    };
    let category = match <Option<&str>>::read(map.get("datamodel"), "datamodel")? {
        Some(d) => Category::ALL
            .into_iter()
            .find(|c| c.datamodel() == d)
            .ok_or_else(|| unknown_datamodel(d))?,
        None => {
            // The kind asked for when its lines have every key; else the kind whose lines
            // alone have one of the keys; else the kind asked for, or a process.
            let fits = |c: Category| {
                map.keys().all(|k| {
                    common(k)
                        || AlertFields::KEYS.contains(&k.as_str())
                        || Body::keys(c).contains(&k.as_str())
                })
            };
            match opts.category {
                Some(c) if fits(c) => c,
                _ => [Category::NetworkConnection, Category::Dns]
                    .into_iter()
                    .find(|c| map.keys().any(|k| only_in(*c, k)))
                    .or(opts.category)
                    .unwrap_or(Category::ProcessCreation),
            }
        }
    };
    let body = Body::keys(category);
    if opts.strict
        && let Some(k) = map
            .keys()
            .find(|k| !common(k) && !body.contains(&k.as_str()))
    {
        let kind = match category {
            Category::ProcessCreation => "process",
            Category::Dns => "DNS",
            Category::NetworkConnection => "connection",
        };
        return Err(format!(
            "unknown field '{k}' for a {kind} event (one of {})",
            body.iter()
                .chain(ContainerLine::KEYS)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !opts.strict
        && let Some(k) = map.keys().find(|k| {
            !common(k)
                && !AlertFields::KEYS.contains(&k.as_str())
                && !Repeats::KEYS.contains(&k.as_str())
                && !body.contains(&k.as_str())
        })
    {
        return Err(format!("unknown field '{k}'"));
    }
    let time = match <Option<SystemTime>>::read(map.get("time"), "time")? {
        Some(t) => t,
        None if opts.strict => SystemTime::UNIX_EPOCH,
        None => return Err("no 'time'".into()),
    };
    let platform = match <Option<&str>>::read(map.get("platform"), "platform")? {
        Some("linux") => Some(Platform::Linux),
        Some("windows") => Some(Platform::Windows),
        Some(p) => return Err(format!("unknown platform '{p}' (linux or windows)")),
        None => opts.platform,
    };
    let context = Context {
        time,
        host: <&str>::read(map.get("host"), "host")?,
        platform,
        strict: opts.strict,
    };
    let mut event = Body::read(category, map)?.into_event(&context)?;
    let container = ContainerLine::read(map)?;
    if !container.is_empty() {
        container.apply(event.process_mut());
    }
    Ok(event)
}

fn unknown_datamodel(d: &str) -> String {
    let known: Vec<&str> = Category::ALL.iter().map(|c| c.datamodel()).collect();
    format!("unknown datamodel '{d}' ({})", known.join(" or "))
}

/// Whether only lines of `category` have `key` (`dest` is the host of process lines, the
/// server of DNS ones, the destination's name of connections), so that a line without
/// `datamodel` that has it is such a line.
fn only_in(category: Category, key: &str) -> bool {
    Category::ALL
        .into_iter()
        .all(|c| Body::keys(c).contains(&key) == (c == category))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("[1]", "not a JSON object"),
            (
                r#"{"time":"2026-01-01T00:00:00Z"}"#,
                "no 'kind' (event, alert or summary)",
            ),
            (
                r#"{"kind":"event","datamodel":"Endpoint.Processes"}"#,
                "no 'time'",
            ),
            (
                r#"{"kind":"event","time":"x","datamodel":"Endpoint.Processes"}"#,
                "'time' is not an RFC 3339 time ('x'): ",
            ),
            (
                r#"{"kind":"event","time":"2026-01-01T00:00:00Z","datamodel":"Endpoint.Processes","process_id":-1}"#,
                "'process_id' must be a whole number from 0 to 4294967295",
            ),
            (
                r#"{"kind":"event","time":"2026-01-01T00:00:00Z","datamodel":"Network_Resolution","transport":"sctp"}"#,
                "unknown transport 'sctp' (udp or tcp)",
            ),
            (
                r#"{"kind":"event","time":"2026-01-01T00:00:00Z","datamodel":"Network_Resolution","src":"nope"}"#,
                "'src' must be an IP address, not 'nope'",
            ),
            (
                r#"{"kind":"event","time":"2026-01-01T00:00:00Z","datamodel":"Network_Resolution","frobnicate":1}"#,
                "unknown field 'frobnicate'",
            ),
            (
                r#"{"kind":"warning","time":"2026-01-01T00:00:00Z"}"#,
                "unknown kind 'warning' (event, alert or summary)",
            ),
        ];
        for (line, want) in cases {
            let e = parse_line(line).unwrap_err();
            assert!(e.reason.starts_with(want), "{line}: {e}");
        }
    }
}
