//! The windows of the correlations, per group, driven by the evaluate-and-emit step: each
//! event that matched a rule a correlation refers to is counted in that correlation's group
//! (its `group-by` values, and the host: a sensor correlates what one host did), and a
//! correlation whose condition holds fires once and starts its group afresh.
//!
//! Time is the events' (`time`), never the clock, so that `replay` raises what the live
//! sensor raised:
//! - a condition that only asks for "at least" (`gt`, `gte`, the default of the temporal
//!   types) is decided the moment it holds, over a sliding window: the events of the group
//!   at most `timespan` older than the newest. The group then starts afresh and keeps quiet
//!   for one `timespan` (it counts, it does not fire): what goes on raises one alert a
//!   timespan, with the count of the window it fires on;
//! - any other (`lt`, `lte`, `eq`, `neq`, a range) can only be decided once the window is
//!   over: a group's window opens with its first event and closes `timespan` later, when a
//!   later event (of any group) shows that time has passed; it is then decided once.
//!
//! Memory is bounded: at most [`Limits::max_groups`] groups and [`Limits::max_entries`]
//! remembered events or values across all correlations; a group also keeps no more values
//! than its condition needs. What does not fit is dropped and counted
//! ([`Correlator::dropped_groups`], [`Correlator::dropped_values`]), as are events older than
//! every window still open ([`Correlator::late`]). Once a second of event time, windows that
//! have run out are emptied and their groups forgotten.
//!
//! Floor 7 (the engine and its output): may use `engine` (its correlations and what feeds
//! them), `correlation::{rule, resolve}`, `field` and `event`.

use std::{
    collections::{HashMap, VecDeque},
    hash::{BuildHasher, RandomState},
    sync::Arc,
    time::{Duration, SystemTime},
};

use crate::{
    correlation::{
        resolve::Extract,
        rule::{Correlation, CorrelationType, Piece},
    },
    engine::Engine,
    event::Event,
    field::{StackStr, Value},
    template::UNKNOWN,
};

/// How much a correlator may remember.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Groups, across all correlations.
    pub max_groups: usize,
    /// Events and values remembered in windows, across all groups.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_groups: 4096,
            max_entries: 65_536,
        }
    }
}

/// At most this many distinct values are shown on a `value_count` alert line.
const SAMPLES: usize = 5;

/// How often windows that ran out are emptied, in event time.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A correlation that fired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    /// Which correlation (its index in the engine's rule set).
    pub correlation: usize,
    /// When it was decided: the event that completed it, or the end of its window.
    pub time: SystemTime,
    /// The host of the group.
    pub host: Arc<str>,
    /// The group's values, in the order of `group-by` (empty: unknown).
    pub group: Vec<String>,
    /// How many events the window held.
    pub count: u64,
    /// For `value_count`: how many distinct values.
    pub distinct: Option<u64>,
    /// For `value_count`: the first few distinct values.
    pub values: Vec<String>,
    /// The first and last event of the window.
    pub first: SystemTime,
    pub last: SystemTime,
    /// The correlation's message, filled.
    pub message: String,
    /// A correlation referred to by another without `generate: true`: it feeds that one and
    /// writes no line.
    pub silent: bool,
}

/// One remembered event of a window: its time and a tag (the value's hash for `value_count`,
/// the source for the temporal types).
#[derive(Clone, Copy, Debug)]
struct Entry {
    time: SystemTime,
    tag: u64,
}

/// One group's window.
#[derive(Debug)]
struct Group {
    host: Arc<str>,
    key: Box<[String]>,
    /// The window's events, oldest first (for "at least" conditions; for others, only what
    /// the temporal_ordered count needs).
    entries: VecDeque<Entry>,
    /// Events counted in the window.
    count: u64,
    /// `value_count`: how many remembered events have each value.
    distinct: HashMap<u64, u32>,
    /// `value_count`: the first distinct values.
    samples: Vec<String>,
    /// Temporal types: events per source in the window.
    per_source: Vec<u32>,
    /// temporal_ordered in a closing window: how many sources, in order, were seen.
    ordered: usize,
    /// After it fired (sliding windows): it does not fire again before this time.
    quiet_until: Option<SystemTime>,
    first: SystemTime,
    last: SystemTime,
}

impl Group {
    /// What the group holds of the entries' budget: its events (sliding windows) or its
    /// values (closing windows).
    fn held(&self) -> usize {
        if self.entries.is_empty() {
            self.distinct.len()
        } else {
            self.entries.len()
        }
    }
}

/// The groups of one correlation.
#[derive(Debug, Default)]
struct Windows {
    groups: HashMap<u64, Group>,
}

/// What a correlation's windows are made of; a reload that keeps it keeps its groups.
#[derive(Clone, Debug, PartialEq)]
struct Definition {
    id: Option<String>,
    title: String,
    correlation: Correlation,
}

/// The windows of every correlation of an engine.
#[derive(Debug)]
pub struct Correlator {
    limits: Limits,
    /// The engine whose correlations these are.
    engine: Option<u64>,
    definitions: Vec<Definition>,
    windows: Vec<Windows>,
    groups: usize,
    entries: usize,
    /// The latest event time seen.
    watermark: Option<SystemTime>,
    next_sweep: Option<SystemTime>,
    hasher: RandomState,
    /// Groups not opened: the limit was reached.
    pub dropped_groups: u64,
    /// Events or values not remembered: the limit was reached.
    pub dropped_values: u64,
    /// Events older than their correlation's window when they came.
    pub late: u64,
}

impl Default for Correlator {
    fn default() -> Self {
        Correlator::new(Limits::default())
    }
}

/// A source fed by an event or by a correlation that fired: what its names read.
enum Input<'a> {
    Event(&'a Event),
    Fired(&'a Fired),
}

impl Correlator {
    /// A correlator with these limits.
    pub fn new(limits: Limits) -> Correlator {
        Correlator {
            limits,
            engine: None,
            definitions: Vec::new(),
            windows: Vec::new(),
            groups: 0,
            entries: 0,
            watermark: None,
            next_sweep: None,
            hasher: RandomState::new(),
            dropped_groups: 0,
            dropped_values: 0,
            late: 0,
        }
    }

    /// Takes up `engine`'s correlations. After a reload, a correlation with the same id (or
    /// title) and the same definition keeps its groups; the others start empty.
    fn sync(&mut self, engine: &Engine) {
        if self.engine == Some(engine.id()) {
            return;
        }
        self.engine = Some(engine.id());
        let definitions: Vec<Definition> = engine
            .rules()
            .correlations()
            .iter()
            .map(|c| Definition {
                id: c.meta.id.clone(),
                title: c.meta.title.clone(),
                correlation: Correlation {
                    tests: Vec::new(),
                    ..c.clone()
                },
            })
            .collect();
        let mut old_windows = std::mem::take(&mut self.windows);
        let old = std::mem::take(&mut self.definitions);
        self.windows = definitions
            .iter()
            .map(|d| {
                old.iter()
                    .position(|o| {
                        o.id == d.id
                            && (d.id.is_some() || o.title == d.title)
                            && o.correlation.same_windows(&d.correlation)
                    })
                    .map(|i| std::mem::take(&mut old_windows[i]))
                    .unwrap_or_default()
            })
            .collect();
        self.definitions = definitions;
        self.groups = self.windows.iter().map(|w| w.groups.len()).sum();
        self.entries = self
            .windows
            .iter()
            .flat_map(|w| w.groups.values())
            .map(Group::held)
            .sum();
    }

    /// Moves time to `time` (the next event's): windows that ran out are decided or emptied,
    /// once a second of event time. Correlations decided at a window's end are appended to
    /// `out`.
    pub fn advance(&mut self, engine: &Engine, time: SystemTime, out: &mut Vec<Fired>) {
        if engine.rules().correlations().is_empty() {
            return;
        }
        self.sync(engine);
        if self.watermark.is_none_or(|w| time > w) {
            self.watermark = Some(time);
        }
        if self.next_sweep.is_none_or(|n| time >= n) {
            self.sweep(engine, time, out);
            self.next_sweep = Some(time + SWEEP_EVERY);
        }
    }

    /// Counts `event` in the correlations `feeds` names (`(correlation, source)` pairs, as
    /// [`Engine::evaluate_feeding`] gives them) and appends what fires to `out`, with the
    /// correlations that fire in turn from those.
    pub fn observe(
        &mut self,
        engine: &Engine,
        event: &Event,
        feeds: &[(u32, u32)],
        out: &mut Vec<Fired>,
    ) {
        if feeds.is_empty() {
            return;
        }
        self.sync(engine);
        // The sources of one correlation that this one event matched, last first: an event
        // cannot stand for two steps of an ordered sequence.
        let mut feeds = feeds.to_vec();
        feeds.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let start = out.len();
        for &(c, source) in &feeds {
            self.feed(
                engine,
                c as usize,
                source as usize,
                &Input::Event(event),
                out,
            );
        }
        // Correlations of correlations.
        let mut i = start;
        while i < out.len() {
            let fired = out[i].clone();
            for &(parent, source) in engine.feeds_of_correlation(fired.correlation) {
                self.feed(
                    engine,
                    parent as usize,
                    source as usize,
                    &Input::Fired(&fired),
                    out,
                );
            }
            i += 1;
        }
    }

    /// Counts one input of source `source` in correlation `c`.
    fn feed(
        &mut self,
        engine: &Engine,
        c: usize,
        source: usize,
        input: &Input<'_>,
        out: &mut Vec<Fired>,
    ) {
        let set = engine.rules();
        let corr = &set.correlations()[c];
        let resolved = &set.resolved()[c];
        let (time, host) = match input {
            Input::Event(e) => (e.time(), e.host()),
            Input::Fired(f) => (f.time, &*f.host),
        };
        if self.watermark.is_some_and(|w| time + corr.timespan < w) {
            self.late += 1;
            return;
        }
        // The group's key and, for value_count, the value.
        let key: Vec<String> = resolved.group[source]
            .iter()
            .map(|x| {
                let mut s = String::new();
                read(*x, input, &mut s);
                s
            })
            .collect();
        let mut value: Vec<String> = Vec::new();
        let mut tag = match corr.kind {
            CorrelationType::Temporal | CorrelationType::TemporalOrdered => source as u64,
            CorrelationType::EventCount | CorrelationType::ValueCount => 0,
        };
        if corr.kind == CorrelationType::ValueCount {
            for x in &resolved.values[source] {
                let mut s = String::new();
                read(*x, input, &mut s);
                value.push(s);
            }
            tag = self.hasher.hash_one(&value);
        }
        let key_hash = self.hasher.hash_one((host, &key));

        let at_least = corr.condition.at_least();
        let sources = resolved.sources.len();
        // A closing window that ran out is decided before the new event opens the next.
        if !at_least
            && let Some(g) = self.windows[c].groups.get(&key_hash)
            && time > g.first + corr.timespan
        {
            let g = self.windows[c].groups.remove(&key_hash).expect("present");
            self.forget(&g);
            self.decide(engine, c, g, out);
        }
        if !self.windows[c].groups.contains_key(&key_hash) {
            if self.groups >= self.limits.max_groups {
                let now = self.watermark.unwrap_or(time);
                self.sweep(engine, now, out);
                if self.groups >= self.limits.max_groups {
                    self.dropped_groups += 1;
                    return;
                }
            }
            self.groups += 1;
            self.windows[c].groups.insert(
                key_hash,
                Group {
                    host: Arc::from(host),
                    key: key.clone().into_boxed_slice(),
                    entries: VecDeque::new(),
                    count: 0,
                    distinct: HashMap::new(),
                    samples: Vec::new(),
                    per_source: vec![0; sources],
                    ordered: 0,
                    quiet_until: None,
                    first: time,
                    last: time,
                },
            );
        }
        let g = self.windows[c]
            .groups
            .get_mut(&key_hash)
            .expect("inserted above");
        if *g.key != *key || &*g.host != host {
            // Two groups with one hash: one in 2^64. Counted, not merged.
            self.dropped_groups += 1;
            return;
        }
        if at_least {
            // A sliding window: forget what is older than the window, remember the event.
            while let Some(e) = g.entries.front() {
                if e.time + corr.timespan >= time {
                    break;
                }
                let e = g.entries.pop_front().expect("front");
                untrack(corr.kind, g, e);
                self.entries -= 1;
            }
            if self.entries >= self.limits.max_entries {
                self.dropped_values += 1;
                return;
            }
            self.entries += 1;
            g.entries.push_back(Entry { time, tag });
            g.count += 1;
            track(corr.kind, g, tag, &value);
            g.first = g.entries.front().map_or(time, |e| e.time);
        } else {
            // A closing window: only what its count needs, up to where the answer can no
            // longer change.
            g.count += 1;
            match corr.kind {
                CorrelationType::EventCount => {}
                CorrelationType::ValueCount => {
                    if !g.distinct.contains_key(&tag)
                        && (g.distinct.len() as u64) < corr.condition.saturation()
                    {
                        if self.entries >= self.limits.max_entries {
                            self.dropped_values += 1;
                        } else {
                            self.entries += 1;
                            track(corr.kind, g, tag, &value);
                        }
                    }
                }
                CorrelationType::Temporal | CorrelationType::TemporalOrdered => {
                    track(corr.kind, g, tag, &value);
                    if source == g.ordered {
                        g.ordered += 1;
                    }
                }
            }
        }
        if time > g.last {
            g.last = time;
        }
        let quiet = g.quiet_until.is_some_and(|q| time <= q);
        if at_least && !quiet && corr.condition.holds(measure(corr.kind, g, sources)) {
            // Fires, then starts afresh and stays quiet for one timespan: a tunnel that goes
            // on raises one alert a timespan, not one every few events.
            self.entries -= g.held();
            let fired = fire(engine, c, g, time);
            g.entries.clear();
            g.distinct.clear();
            g.samples.clear();
            g.per_source.iter_mut().for_each(|n| *n = 0);
            g.count = 0;
            g.ordered = 0;
            (g.first, g.last) = (time, time);
            g.quiet_until = Some(time + corr.timespan);
            out.push(fired);
        }
    }

    /// Empties sliding windows of what ran out and decides closing windows that ended.
    fn sweep(&mut self, engine: &Engine, now: SystemTime, out: &mut Vec<Fired>) {
        let set = engine.rules();
        for (c, corr) in set.correlations().iter().enumerate() {
            let span = corr.timespan;
            let at_least = corr.condition.at_least();
            let mut ended = Vec::new();
            for (&k, g) in self.windows[c].groups.iter_mut() {
                if at_least {
                    while let Some(e) = g.entries.front() {
                        if e.time + span >= now {
                            break;
                        }
                        let e = g.entries.pop_front().expect("front");
                        untrack(corr.kind, g, e);
                        self.entries -= 1;
                    }
                    if g.entries.is_empty() && g.quiet_until.is_none_or(|q| now > q) {
                        ended.push(k);
                    }
                } else if now > g.first + span {
                    ended.push(k);
                }
            }
            ended.sort_by_key(|k| {
                let g = &self.windows[c].groups[k];
                (g.first, g.host.clone(), g.key.clone())
            });
            for k in ended {
                let g = self.windows[c].groups.remove(&k).expect("present");
                self.forget(&g);
                if !at_least {
                    self.decide(engine, c, g, out);
                }
            }
        }
    }

    /// Gives back what a group held.
    fn forget(&mut self, g: &Group) {
        self.groups -= 1;
        self.entries -= g.held();
    }

    /// A closing window ended: fires when its condition holds.
    fn decide(&mut self, engine: &Engine, c: usize, g: Group, out: &mut Vec<Fired>) {
        let corr = &engine.rules().correlations()[c];
        let sources = engine.rules().resolved()[c].sources.len();
        if corr.condition.holds(measure(corr.kind, &g, sources)) {
            out.push(fire(engine, c, &g, g.first + corr.timespan));
        }
    }
}

/// What group `g` of correlation `c` says when it fires at `time`.
fn fire(engine: &Engine, c: usize, g: &Group, time: SystemTime) -> Fired {
    let corr = &engine.rules().correlations()[c];
    let distinct = (corr.kind == CorrelationType::ValueCount).then_some(g.distinct.len() as u64);
    let mut fired = Fired {
        correlation: c,
        time,
        host: g.host.clone(),
        group: g.key.to_vec(),
        count: g.count,
        distinct,
        values: g.samples.clone(),
        first: g.first,
        last: g.last,
        message: String::new(),
        silent: engine.correlation_is_silent(c),
    };
    if !fired.silent {
        fired.message = render(corr, &fired);
    }
    fired
}

/// Reads one name of a source: a field of the event, or a group value of the correlation
/// that fired. Numbers and addresses as text; several answers joined by commas.
fn read(x: Extract, input: &Input<'_>, out: &mut String) {
    match (x, input) {
        (Extract::Field(f), Input::Event(e)) => match f.value(e) {
            Value::Absent => {}
            Value::Str(s) => out.push_str(s),
            Value::Int(n) => out.push_str(StackStr::render(n).as_str()),
            Value::Float(v) => out.push_str(StackStr::render(v).as_str()),
            Value::Ip(ip) => out.push_str(StackStr::render(ip).as_str()),
            Value::Strs(list) => {
                for (i, s) in list.iter().filter(|s| !s.is_empty()).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(s);
                }
            }
        },
        (Extract::Group(i), Input::Fired(f)) => out.push_str(&f.group[i]),
        // The resolver ties a rule's names to fields and a correlation's to its groups.
        _ => {}
    }
}

/// Counts a remembered event in the window's tallies.
fn track(kind: CorrelationType, g: &mut Group, tag: u64, value: &[String]) {
    match kind {
        CorrelationType::EventCount => {}
        CorrelationType::ValueCount => {
            let n = g.distinct.entry(tag).or_insert(0);
            if *n == 0 && g.samples.len() < SAMPLES {
                g.samples.push(value.join(","));
            }
            *n += 1;
        }
        CorrelationType::Temporal | CorrelationType::TemporalOrdered => {
            g.per_source[tag as usize] += 1;
        }
    }
}

/// Takes an event that ran out of a sliding window out of its tallies.
fn untrack(kind: CorrelationType, g: &mut Group, e: Entry) {
    g.count = g.count.saturating_sub(1);
    match kind {
        CorrelationType::EventCount => {}
        CorrelationType::ValueCount => {
            if let Some(n) = g.distinct.get_mut(&e.tag) {
                *n -= 1;
                if *n == 0 {
                    g.distinct.remove(&e.tag);
                }
            }
        }
        CorrelationType::Temporal | CorrelationType::TemporalOrdered => {
            g.per_source[e.tag as usize] -= 1;
        }
    }
}

/// What the condition compares: events, distinct values, or rules seen (in order).
fn measure(kind: CorrelationType, g: &Group, sources: usize) -> u64 {
    match kind {
        CorrelationType::EventCount => g.count,
        CorrelationType::ValueCount => g.distinct.len() as u64,
        CorrelationType::Temporal => g.per_source.iter().filter(|&&n| n > 0).count() as u64,
        CorrelationType::TemporalOrdered if g.entries.is_empty() => g.ordered as u64,
        CorrelationType::TemporalOrdered => {
            // The longest prefix of the rules seen in order in the window (the earliest
            // match of each step leaves the most room for the next).
            let mut next = 0;
            for e in &g.entries {
                if next < sources && e.tag == next as u64 {
                    next += 1;
                }
            }
            next as u64
        }
    }
}

/// The correlation's message with its placeholders filled.
fn render(corr: &Correlation, f: &Fired) -> String {
    let mut out = String::with_capacity(128);
    for piece in &corr.pieces {
        let before = out.len();
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Group(i) => out.push_str(&f.group[*i]),
            Piece::Key("host") => out.push_str(&f.host),
            Piece::Key("count") => out.push_str(&f.count.to_string()),
            Piece::Key("distinct_count") => {
                if let Some(d) = f.distinct {
                    out.push_str(&d.to_string())
                }
            }
            Piece::Key("firstTime") => {
                out.push_str(&humantime::format_rfc3339_micros(f.first).to_string())
            }
            Piece::Key("lastTime") => {
                out.push_str(&humantime::format_rfc3339_micros(f.last).to_string())
            }
            Piece::Key("timespan") => out.push_str(&corr.timespan_text),
            Piece::Key(_) => {}
        }
        if out.len() == before && !matches!(piece, Piece::Text(_)) {
            out.push_str(UNKNOWN);
        }
    }
    out
}
