//! One Sigma correlation document, read as written: its metadata (as a rule's), the
//! `correlation` block (type, the rules it refers to, `group-by`, `timespan`, `condition`,
//! `field`, `aliases`, `generate`), our `tunnelwatch:` block (message, risk, test cases) and
//! anything the sensor cannot do refused with `file:line: reason`. The references are tied
//! to rules by `resolve.rs`.
//!
//! Facts from the Sigma correlation specification 2.1.0 (SigmaHQ/sigma-specification,
//! `specification/sigma-correlation-rules-specification.md`) and from pySigma, the reference
//! implementation (`sigma/correlations.py`): `generate` may be written at the top or inside
//! `correlation`; `group-by` may be one string; `timespan` is a count and one of `s`, `m`,
//! `h`, `d`, `w`, `M`, `y`; a temporal correlation without a condition needs all its rules;
//! a condition may hold several comparisons, all of which must hold (a range).
//!
//! Floor 4 (one rule): may use `rule` (metadata and the extension block), `template`,
//! `test_case`, `replay` and the floors below.

use std::time::{Duration, SystemTime};

use saphyr::{Scalar, YamlData};
use serde_json::Value;

use crate::{
    error::SourceError,
    event::Event,
    line,
    replay::{self, BuildOptions},
    rule::{Extension, Meta, find},
    template::{self, Segment},
    test_case,
    yaml::{self, Node, Reader},
};

/// What a correlation counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CorrelationType {
    /// Matches of its rules per group.
    EventCount,
    /// Distinct values of `field` per group.
    ValueCount,
    /// How many of its rules matched per group (all, by default), in any order.
    Temporal,
    /// The same, in the order the rules are listed.
    TemporalOrdered,
}

impl CorrelationType {
    /// The Sigma spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CorrelationType::EventCount => "event_count",
            CorrelationType::ValueCount => "value_count",
            CorrelationType::Temporal => "temporal",
            CorrelationType::TemporalOrdered => "temporal_ordered",
        }
    }
}

/// A comparison of a correlation's condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Neq,
}

const OPS: &[(&str, Op)] = &[
    ("gt", Op::Gt),
    ("gte", Op::Gte),
    ("lt", Op::Lt),
    ("lte", Op::Lte),
    ("eq", Op::Eq),
    ("neq", Op::Neq),
];

/// The largest number a condition may name: a group keeps at most this many events or
/// values (plus one) to decide it.
pub const MAX_LIMIT: u64 = 10_000;

/// When a correlation matches: every comparison holds for the count.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Condition {
    pub terms: Vec<(Op, u64)>,
}

impl Condition {
    /// Whether `n` satisfies every comparison.
    pub fn holds(&self, n: u64) -> bool {
        self.terms.iter().all(|&(op, limit)| match op {
            Op::Gt => n > limit,
            Op::Gte => n >= limit,
            Op::Lt => n < limit,
            Op::Lte => n <= limit,
            Op::Eq => n == limit,
            Op::Neq => n != limit,
        })
    }

    /// Whether the condition only asks for "at least" (`gt`, `gte`): once it holds, more
    /// events cannot undo it, so it is decided the moment it holds. Any other condition is
    /// decided when a group's window closes.
    pub fn at_least(&self) -> bool {
        self.terms
            .iter()
            .all(|(op, _)| matches!(op, Op::Gt | Op::Gte))
    }

    /// A count beyond which nothing changes the answer: counting stops there.
    pub fn saturation(&self) -> u64 {
        self.terms.iter().map(|&(_, l)| l).max().unwrap_or(0) + 1
    }
}

/// A field name alias: the name `group-by` uses, and the field it stands for in the events of
/// each rule (by the rule's `name`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Alias {
    pub name: String,
    pub fields: Vec<(String, String)>,
}

/// A test case of a correlation: events in order, and whether the correlation fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorrelationTest {
    pub name: String,
    pub line: usize,
    /// Whether the correlation must fire (at least once).
    pub alert: bool,
    /// The first alert's message, exactly, when given.
    pub message: Option<String>,
    /// The first alert's `count`, when given.
    pub count: Option<u64>,
    /// The events, in the order they happen.
    pub events: Vec<Event>,
}

/// A piece of a correlation's message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Piece {
    Text(String),
    /// The value of the `group-by` key at this index.
    Group(usize),
    /// A key of the correlation's line besides its groups: `host`, `count`, ...
    Key(&'static str),
}

/// Keys of a correlation's line a message may name besides its `group-by` keys.
const MESSAGE_KEYS: &[&str] = &[
    "host",
    "count",
    "distinct_count",
    "firstTime",
    "lastTime",
    "timespan",
];

/// A loaded correlation, its references not yet tied to rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Correlation {
    pub meta: Meta,
    pub kind: CorrelationType,
    /// The rules and correlations it refers to, by id or name, as written.
    pub rules: Vec<String>,
    /// The names its groups are made of (fields, or aliases).
    pub group_by: Vec<String>,
    pub timespan: Duration,
    /// As written (`5m`).
    pub timespan_text: String,
    pub condition: Condition,
    /// For `value_count`: the fields whose distinct values are counted (together).
    pub fields: Vec<String>,
    pub aliases: Vec<Alias>,
    /// Whether the rules it refers to raise their own alerts too.
    pub generate: bool,
    /// `tunnelwatch.type` (Splunk analytic type).
    pub analytic_type: Option<String>,
    pub impact: Option<u32>,
    pub confidence: Option<u32>,
    pub risk_score: Option<u32>,
    /// The message template as written; the title when absent.
    pub message: String,
    pub family: Option<String>,
    pub tests: Vec<CorrelationTest>,
    pub file: String,
    pub line: usize,
    pub(crate) pieces: Vec<Piece>,
}

/// The keys the emitter writes on every correlation line itself, which a `group-by` name may
/// not take.
pub(crate) const OWN_KEYS: &[&str] = &[
    "correlation_type",
    "count",
    "distinct_count",
    "values",
    "firstTime",
    "lastTime",
];

impl Correlation {
    /// Whether the YAML document `doc` is a correlation (it has a `correlation` block).
    pub(crate) fn is_correlation(doc: &Node<'_>) -> bool {
        matches!(&doc.data, YamlData::Mapping(m) if find(m, "correlation").is_some())
    }

    /// Parses one correlation document of `file`.
    pub(crate) fn parse(file: &str, doc: &Node<'_>) -> Result<Correlation, SourceError> {
        let r = Reader::new(file);
        let map = r.map(doc, "a correlation")?;
        for refused in ["logsource", "detection"] {
            if let Some((k, _)) = find(map, refused) {
                return Err(r.err(
                    k,
                    format!("a correlation has no '{refused}': it refers to rules that have one"),
                ));
            }
        }
        if let Some((k, v)) = find(map, "taxonomy") {
            let t = r.string(v, "taxonomy")?;
            if t != "sigma" {
                return Err(r.err(
                    k,
                    format!("taxonomy '{t}' is not supported (only Sigma's own field names)"),
                ));
            }
        }
        let meta = Meta::parse(&r, doc)?;
        let (_, cv) = find(map, "correlation").expect("is_correlation");
        let cmap = r.map(cv, "correlation")?;
        let get = |key: &str| find(cmap, key);
        for (k, _) in cmap.iter() {
            let key = r.key(k)?;
            if ![
                "type",
                "rules",
                "group-by",
                "timespan",
                "condition",
                "aliases",
                "generate",
            ]
            .contains(&key)
            {
                return Err(r.err(
                    k,
                    format!(
                        "unknown key '{key}' in correlation (type, rules, group-by, timespan, condition, aliases, generate)"
                    ),
                ));
            }
        }

        let (tk, tv) = get("type").ok_or_else(|| r.err(cv, "correlation has no 'type'"))?;
        let type_name = r.string(tv, "correlation type")?;
        let kind = match type_name {
            "event_count" => CorrelationType::EventCount,
            "value_count" => CorrelationType::ValueCount,
            "temporal" => CorrelationType::Temporal,
            "temporal_ordered" => CorrelationType::TemporalOrdered,
            "value_sum" | "value_avg" | "value_percentile" | "value_median" => {
                return Err(r.err(
                    tv,
                    format!(
                        "correlation type '{type_name}' is not supported (event_count, value_count, temporal, temporal_ordered)"
                    ),
                ));
            }
            other => {
                return Err(r.err(
                    tk,
                    format!(
                        "unknown correlation type '{other}' (event_count, value_count, temporal, temporal_ordered)"
                    ),
                ));
            }
        };

        let (rk, rv) = get("rules").ok_or_else(|| r.err(cv, "correlation has no 'rules'"))?;
        let rules = r.strings(rv, "correlation rules")?;
        if rules.is_empty() {
            return Err(r.err(rk, "correlation 'rules' is empty"));
        }
        for (i, a) in rules.iter().enumerate() {
            if rules[..i].contains(a) {
                return Err(r.err(rv, format!("correlation rule '{a}' is listed twice")));
            }
        }

        let group_by = match get("group-by") {
            None => Vec::new(),
            Some((_, v)) => r.strings(v, "group-by")?,
        };
        for (i, g) in group_by.iter().enumerate() {
            let (_, v) = get("group-by").expect("has group-by");
            if group_by[..i].contains(g) {
                return Err(r.err(v, format!("group-by field '{g}' is listed twice")));
            }
            if OWN_KEYS.contains(&g.as_str()) || (g != "host" && line::is_own_key(g)) {
                return Err(r.err(
                    v,
                    format!(
                        "group-by field '{g}' takes the name of a key every alert line has itself"
                    ),
                ));
            }
        }

        let (_, sv) = get("timespan").ok_or_else(|| r.err(cv, "correlation has no 'timespan'"))?;
        let timespan_text = match &r.untagged(sv)?.data {
            YamlData::Value(Scalar::String(s)) => s.to_string(),
            _ => return Err(r.err(sv, "timespan must be a string such as '5m'")),
        };
        let timespan = parse_timespan(&timespan_text).map_err(|e| r.err(sv, e))?;

        let (condition, fields) = match get("condition") {
            Some((_, v)) => parse_condition(&r, v)?,
            None => match kind {
                CorrelationType::Temporal | CorrelationType::TemporalOrdered => (
                    Condition {
                        terms: vec![(Op::Gte, rules.len() as u64)],
                    },
                    Vec::new(),
                ),
                _ => {
                    return Err(r.err(
                        cv,
                        format!("correlation type '{}' needs a 'condition'", kind.as_str()),
                    ));
                }
            },
        };
        if kind == CorrelationType::ValueCount && fields.is_empty() {
            return Err(r.err(
                get("condition").map_or(cv, |(_, v)| v),
                "a value_count correlation needs the 'field' whose values it counts in its condition",
            ));
        }

        let aliases = match get("aliases") {
            None => Vec::new(),
            Some((_, v)) => parse_aliases(&r, v)?,
        };

        let generate = match (find(map, "generate"), get("generate")) {
            (Some((_, v)), _) | (None, Some((_, v))) => match &r.untagged(v)?.data {
                YamlData::Value(Scalar::Boolean(b)) => *b,
                _ => return Err(r.err(v, "generate must be true or false")),
            },
            (None, None) => false,
        };

        let ext = Extension::parse(&r, doc)?;
        let (message, pieces) = match &ext.message {
            Some((text, node)) => (
                text.clone(),
                parse_message(text, &group_by).map_err(|e| r.err(node, e))?,
            ),
            None => (meta.title.clone(), vec![Piece::Text(meta.title.clone())]),
        };
        let tests = match ext.tests {
            None => Vec::new(),
            Some(node) => parse_tests(&r, node)?,
        };
        Ok(Correlation {
            risk_score: ext.risk_score(meta.level),
            meta,
            kind,
            rules,
            group_by,
            timespan,
            timespan_text,
            condition,
            fields,
            aliases,
            generate,
            analytic_type: ext.analytic_type,
            impact: ext.impact,
            confidence: ext.confidence,
            message,
            family: ext.family,
            tests,
            file: file.to_owned(),
            line: yaml::line(doc),
            pieces,
        })
    }

    /// Whether `reference` (from another correlation's `rules`) names this correlation.
    pub fn is_named(&self, reference: &str) -> bool {
        self.meta
            .id
            .as_deref()
            .is_some_and(|id| id.eq_ignore_ascii_case(reference))
            || self.meta.name.as_deref() == Some(reference)
    }

    /// The definition that decides its windows: a correlation reloaded with the same keeps
    /// its groups.
    pub(crate) fn same_windows(&self, other: &Correlation) -> bool {
        self.kind == other.kind
            && self.rules == other.rules
            && self.group_by == other.group_by
            && self.timespan == other.timespan
            && self.condition == other.condition
            && self.fields == other.fields
            && self.aliases == other.aliases
    }
}

/// `5m`, `90s`, `1h`, `2d`, `1w`, `1M`, `1y`: a positive count and a unit.
fn parse_timespan(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "timespan '{text}' is not a positive number followed by s, m, h, d, w, M or y (e.g. '5m')"
        )
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = text.split_at(split);
    let count: u64 = digits.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        // pySigma's month and year.
        "M" => 2_629_746,
        "y" => 31_556_952,
        _ => return Err(bad()),
    };
    if count == 0 {
        return Err(format!("timespan '{text}' must be greater than zero"));
    }
    count
        .checked_mul(seconds)
        .filter(|s| *s <= 100 * 31_556_952)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("timespan '{text}' is longer than a hundred years"))
}

fn parse_condition(
    r: &Reader<'_>,
    node: &Node<'_>,
) -> Result<(Condition, Vec<String>), SourceError> {
    if let YamlData::Value(Scalar::String(_)) = &r.untagged(node)?.data {
        return Err(r.err(
            node,
            "extended correlation conditions (a boolean expression over rules) are not supported: write the rules under 'rules'",
        ));
    }
    let mut terms = Vec::new();
    let mut fields = Vec::new();
    for (k, v) in r.map(node, "condition")? {
        let key = r.key(k)?;
        if key == "field" {
            fields = r.strings(v, "condition field")?;
            if fields.is_empty() {
                return Err(r.err(v, "condition 'field' is empty"));
            }
            continue;
        }
        let Some(&(_, op)) = OPS.iter().find(|(n, _)| *n == key) else {
            return Err(r.err(
                k,
                format!("unknown key '{key}' in condition (gt, gte, lt, lte, eq, neq, field)"),
            ));
        };
        let limit = r.int(v, &format!("condition '{key}'"), 0, MAX_LIMIT as i64)? as u64;
        terms.push((op, limit));
    }
    if terms.is_empty() {
        return Err(r.err(
            node,
            "condition has no comparison (gt, gte, lt, lte, eq or neq)",
        ));
    }
    Ok((Condition { terms }, fields))
}

fn parse_aliases(r: &Reader<'_>, node: &Node<'_>) -> Result<Vec<Alias>, SourceError> {
    let mut out = Vec::new();
    for (k, v) in r.map(node, "aliases")? {
        let name = r.key(k)?.to_owned();
        let mut fields = Vec::new();
        for (rk, fv) in r.map(v, &format!("alias '{name}'"))? {
            fields.push((
                r.key(rk)?.to_owned(),
                r.string(fv, &format!("alias '{name}' field"))?.to_owned(),
            ));
        }
        out.push(Alias { name, fields });
    }
    Ok(out)
}

fn parse_message(text: &str, group_by: &[String]) -> Result<Vec<Piece>, String> {
    template::segments(text)
        .into_iter()
        .map(|s| match s {
            Segment::Text(t) => Ok(Piece::Text(t)),
            Segment::Name(name) => {
                if let Some(i) = group_by.iter().position(|g| g == name) {
                    Ok(Piece::Group(i))
                } else if let Some(k) = MESSAGE_KEYS.iter().find(|k| **k == name) {
                    Ok(Piece::Key(k))
                } else {
                    Err(format!(
                        "message names unknown field '${name}$' (a group-by field, or one of {})",
                        MESSAGE_KEYS.join(", ")
                    ))
                }
            }
        })
        .collect()
}

/// Where test events start when they give no time.
const TEST_START: Duration = Duration::from_secs(1_798_761_600); // 2027-01-01T00:00:00Z

/// Parses `tunnelwatch.tests` of a correlation: `events` is a list of events (the keys of the
/// event lines, `time` optional) or of `{repeat: N, every: 1s, event: {...}}` (`{n}` in a
/// value becomes the repetition's number). An event without `time` comes one second (or
/// `every`) after the one before.
fn parse_tests(r: &Reader<'_>, node: &Node<'_>) -> Result<Vec<CorrelationTest>, SourceError> {
    let YamlData::Sequence(items) = &r.untagged(node)?.data else {
        return Err(r.err(node, "tunnelwatch.tests must be a list of test cases"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let mut t = CorrelationTest {
            name: format!("test {}", n + 1),
            line: yaml::line(item),
            alert: false,
            message: None,
            count: None,
            events: Vec::new(),
        };
        let (mut alert, mut events) = (None, None);
        for (k, v) in r.map(item, "each test case")? {
            match r.key(k)? {
                "name" => t.name = r.string(v, "a test's name")?.to_owned(),
                "alert" => match &r.untagged(v)?.data {
                    YamlData::Value(Scalar::Boolean(b)) => alert = Some(*b),
                    _ => return Err(r.err(v, "a test's 'alert' must be true or false")),
                },
                "message" => t.message = Some(r.string(v, "a test's message")?.to_owned()),
                "count" => t.count = Some(r.int(v, "a test's count", 0, i64::MAX)? as u64),
                "events" => events = Some(v),
                other => {
                    return Err(r.err(
                        k,
                        format!(
                            "unknown key '{other}' in a correlation test case (name, alert, message, count, events)"
                        ),
                    ));
                }
            }
        }
        t.alert = alert
            .ok_or_else(|| r.err(item, "a test case needs 'alert: true' or 'alert: false'"))?;
        let events = events.ok_or_else(|| r.err(item, "a correlation test case needs 'events'"))?;
        if (t.message.is_some() || t.count.is_some()) && !t.alert {
            return Err(r.err(
                item,
                "a test case with 'alert: false' cannot expect a message or a count",
            ));
        }
        t.events = parse_events(r, events)?;
        out.push(t);
    }
    Ok(out)
}

fn parse_events(r: &Reader<'_>, node: &Node<'_>) -> Result<Vec<Event>, SourceError> {
    let YamlData::Sequence(items) = &r.untagged(node)?.data else {
        return Err(r.err(node, "a test's 'events' must be a list"));
    };
    let mut clock = SystemTime::UNIX_EPOCH + TEST_START;
    let mut out = Vec::new();
    for item in items {
        let map = r.map(item, "each test event")?;
        let (repeat, every, event_node) = if let Some((_, ev)) = find(map, "event") {
            let mut repeat = 1;
            let mut every = Duration::from_secs(1);
            for (k, v) in map.iter() {
                match r.key(k)? {
                    "event" => {}
                    "repeat" => repeat = r.int(v, "repeat", 1, 100_000)? as u64,
                    "every" => {
                        let text = r.string(v, "every")?;
                        every = humantime::parse_duration(text)
                            .map_err(|e| r.err(v, format!("every: {e}")))?;
                    }
                    other => {
                        return Err(r.err(
                            k,
                            format!("unknown key '{other}' beside 'event' (repeat, every)"),
                        ));
                    }
                }
            }
            (repeat, every, ev)
        } else {
            (1, Duration::from_secs(1), item)
        };
        let fields = test_case::to_json_map(r, event_node)?;
        for i in 0..repeat {
            let mut fields = fields.clone();
            for v in fields.values_mut() {
                if let Value::String(s) = v
                    && s.contains("{n}")
                {
                    *s = s.replace("{n}", &i.to_string());
                }
            }
            if !fields.contains_key("time") {
                fields.insert(
                    "time".into(),
                    Value::String(humantime::format_rfc3339_micros(clock).to_string()),
                );
            }
            let opts = BuildOptions {
                strict: true,
                platform: None,
                category: None,
            };
            let event = replay::build_event(&fields, &opts)
                .map_err(|e| r.err(event_node, format!("bad test event: {e}")))?;
            clock = event.time() + every;
            out.push(event);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timespan("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_timespan("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_timespan("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_timespan("1w"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_timespan("1M"), Ok(Duration::from_secs(2_629_746)));
        for bad in ["", "5", "m", "5 m", "-5m", "5min", "1.5h", "5S"] {
            assert!(parse_timespan(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_timespan("0s").unwrap_err(),
            "timespan '0s' must be greater than zero"
        );
        assert!(parse_timespan("99999999999y").is_err());
    }

    #[test]
    fn conditions() {
        let c = |terms: &[(Op, u64)]| Condition {
            terms: terms.to_vec(),
        };
        let range = c(&[(Op::Gt, 100), (Op::Lte, 200)]);
        assert!(!range.holds(100) && range.holds(101) && range.holds(200) && !range.holds(201));
        assert!(!range.at_least());
        assert_eq!(range.saturation(), 201);
        let gte = c(&[(Op::Gte, 3)]);
        assert!(gte.at_least() && gte.holds(3) && !gte.holds(2));
        assert!(c(&[(Op::Eq, 2)]).holds(2) && !c(&[(Op::Eq, 2)]).holds(3));
        assert!(c(&[(Op::Neq, 2)]).holds(3) && !c(&[(Op::Neq, 2)]).holds(2));
        assert!(c(&[(Op::Lt, 2)]).holds(1) && !c(&[(Op::Lt, 2)]).holds(2));
    }
}
