//! The compiled rule set, evaluated per event. Rules are indexed by what they can match
//! (platform × process / DNS query / DNS response), so an event only meets the rules that
//! apply to it. Evaluation borrows everything from the event and the rules and allocates
//! nothing: ASCII values are compared ignoring ASCII case in place; a non-ASCII value that a
//! case-insensitive pattern reads is lower-cased once per event into a buffer that the thread
//! reuses from event to event.
//!
//! Where the literal prefilter goes: [`Matcher::for_each_match`] is the single entry point.
//! An Aho-Corasick automaton over the required literals of every rule
//! ([`Pattern::required_literal`](crate::pattern::Pattern)) would run there once per event over
//! the event's string fields, and mark the candidate rules whose literals are present; only
//! those would then be evaluated below.

use crate::{
    condition::Cond,
    detection::{Detection, FieldTest, Selection, Test, Values},
    event::{DnsMessageType, Event, Platform},
    field::{Category, Field, StackStr, Value},
    pattern::lowercase_into,
    rule::{DnsPhase, Rule},
};

/// Rule indices by event shape.
#[derive(Clone, Debug, Default)]
pub(crate) struct Matcher {
    /// `[platform * 3 + shape]`, shape 0 = process, 1 = DNS query, 2 = DNS response.
    buckets: [Vec<u32>; 6],
}

/// The bucket of events of `platform` and `shape`.
fn bucket_of(platform: Platform, shape: usize) -> usize {
    let p = match platform {
        Platform::Linux => 0,
        Platform::Windows => 1,
    };
    p * 3 + shape
}

impl Matcher {
    /// Indexes `rules` (their order is kept within each bucket).
    pub(crate) fn new(rules: &[Rule]) -> Matcher {
        let mut m = Matcher::default();
        for (i, rule) in rules.iter().enumerate() {
            for &platform in &rule.platforms {
                let shapes: &[usize] = match (rule.category, rule.dns_phase) {
                    (Category::ProcessCreation, _) => &[0],
                    (Category::Dns, DnsPhase::Query) => &[1],
                    (Category::Dns, DnsPhase::Response) => &[2],
                    (Category::Dns, DnsPhase::Both) => &[1, 2],
                };
                for &s in shapes {
                    m.buckets[bucket_of(platform, s)].push(i as u32);
                }
            }
        }
        m
    }

    /// The indices of the rules that apply to `event`.
    pub(crate) fn candidates(&self, event: &Event) -> &[u32] {
        let shape = match event {
            Event::Process(_) => 0,
            Event::Dns(d) if d.message_type == DnsMessageType::Query => 1,
            Event::Dns(_) => 2,
        };
        &self.buckets[bucket_of(event.platform(), shape)]
    }

    /// Calls `hit` with the index of each rule of `rules` (the slice this matcher was built
    /// from) whose detection matches `event`, in rule order.
    pub(crate) fn for_each_match(&self, rules: &[Rule], event: &Event, mut hit: impl FnMut(usize)) {
        let candidates = self.candidates(event);
        if candidates.is_empty() {
            return;
        }
        // (The literal prefilter would narrow `candidates` here.)
        let mut cx = EventCtx::new(event);
        for &i in candidates {
            let i = i as usize;
            if rules[i].detection.matches(&mut cx) {
                hit(i);
            }
        }
    }
}

/// Lower-cased values: (field, index in a multi-valued field, text).
type Lowered = Vec<(Field, usize, String)>;

thread_local! {
    /// Buffers for lower-cased values, reused from event to event on this thread so that
    /// steady-state evaluation does not allocate.
    static SCRATCH: std::cell::Cell<Lowered> = const { std::cell::Cell::new(Vec::new()) };
}

/// At most this many buffers are kept for the next event.
const SCRATCH_KEEP: usize = 16;

/// What evaluation of one event keeps between rules.
pub(crate) struct EventCtx<'e> {
    event: &'e Event,
    /// Buffers; the first `used` hold this event's lower-cased values.
    lowered: Lowered,
    used: usize,
}

impl<'e> EventCtx<'e> {
    pub(crate) fn new(event: &'e Event) -> Self {
        EventCtx {
            event,
            lowered: SCRATCH.try_with(|s| s.take()).unwrap_or_default(),
            used: 0,
        }
    }

    /// `s` (value `idx` of `field`) lower-cased, computed once per event.
    fn lower(&mut self, field: Field, idx: usize, s: &str) -> &str {
        let pos = match self.lowered[..self.used]
            .iter()
            .position(|(f, i, _)| *f == field && *i == idx)
        {
            Some(pos) => pos,
            None => {
                if self.used == self.lowered.len() {
                    self.lowered.push((field, idx, String::new()));
                }
                let slot = &mut self.lowered[self.used];
                slot.0 = field;
                slot.1 = idx;
                slot.2.clear();
                lowercase_into(s, &mut slot.2);
                self.used += 1;
                self.used - 1
            }
        };
        &self.lowered[pos].2
    }
}

impl Drop for EventCtx<'_> {
    fn drop(&mut self) {
        let mut buffers = std::mem::take(&mut self.lowered);
        buffers.truncate(SCRATCH_KEEP);
        let _ = SCRATCH.try_with(|s| s.set(buffers));
    }
}

impl Detection {
    /// Whether the detection matches the context's event.
    pub(crate) fn matches(&self, cx: &mut EventCtx<'_>) -> bool {
        eval_cond(&self.condition, &self.selections, cx)
    }
}

fn eval_cond(c: &Cond, sels: &[Selection], cx: &mut EventCtx<'_>) -> bool {
    match c {
        Cond::Sel(i) => eval_selection(&sels[*i], cx),
        Cond::Not(inner) => !eval_cond(inner, sels, cx),
        Cond::And(terms) => terms.iter().all(|t| eval_cond(t, sels, cx)),
        Cond::Or(terms) => terms.iter().any(|t| eval_cond(t, sels, cx)),
    }
}

fn eval_selection(sel: &Selection, cx: &mut EventCtx<'_>) -> bool {
    sel.alternatives
        .iter()
        .any(|tests| tests.iter().all(|t| eval_field(t, cx)))
}

fn eval_field(t: &FieldTest, cx: &mut EventCtx<'_>) -> bool {
    let value = t.field.value(cx.event);
    match value {
        Value::Absent => t.matches_absent,
        Value::Str(s) => eval_one(t, s, 0, cx),
        Value::Int(n) => eval_one(t, StackStr::render(n).as_str(), 0, cx),
        Value::Ip(ip) => eval_one(t, StackStr::render(ip).as_str(), 0, cx),
        Value::Strs(list) => {
            let mut items = list.iter().enumerate().filter(|(_, s)| !s.is_empty());
            match &t.values {
                Values::Any(tests) => {
                    items.any(|(i, s)| tests.iter().any(|x| test_str(x, s, t.field, i, cx)))
                }
                Values::All(groups) => groups.iter().all(|g| {
                    list.iter()
                        .enumerate()
                        .filter(|(_, s)| !s.is_empty())
                        .any(|(i, s)| g.iter().any(|x| test_str(x, s, t.field, i, cx)))
                }),
            }
        }
    }
}

/// A single-valued field with value `s`.
fn eval_one(t: &FieldTest, s: &str, idx: usize, cx: &mut EventCtx<'_>) -> bool {
    match &t.values {
        Values::Any(tests) => tests.iter().any(|x| test_str(x, s, t.field, idx, cx)),
        Values::All(groups) => groups
            .iter()
            .all(|g| g.iter().any(|x| test_str(x, s, t.field, idx, cx))),
    }
}

/// One test against a present, non-empty value.
fn test_str(t: &Test, s: &str, field: Field, idx: usize, cx: &mut EventCtx<'_>) -> bool {
    match t {
        Test::Absent => false,
        Test::Present => true,
        Test::Regex(re) => re.is_match(s),
        Test::Pattern(p) => {
            if p.cased() {
                p.matches_prepared(s, false)
            } else if s.is_ascii() {
                p.matches_prepared(s, true)
            } else {
                p.matches_prepared(cx.lower(field, idx, s), false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::{DnsEvent, ProcessEvent},
        ruleset::RuleSet,
    };
    use std::{sync::Arc, time::SystemTime};

    const RULES: &str = r#"
title: proc-any
logsource: {category: process_creation}
detection: {s: {CommandLine: x}, condition: s}
---
title: proc-win
logsource: {category: process_creation, product: windows}
detection: {s: {CommandLine: x}, condition: s}
---
title: dns-query
logsource: {category: dns_query, product: linux}
detection: {s: {query: x}, condition: s}
---
title: dns-response
logsource: {category: dns}
detection: {s: {answer: x}, condition: s}
---
title: dns-both
logsource: {category: dns}
detection: {s: {message_type: x}, condition: s}
"#;

    fn events() -> Vec<Event> {
        let mut out = Vec::new();
        for platform in [Platform::Linux, Platform::Windows] {
            out.push(Event::Process(ProcessEvent {
                time: SystemTime::UNIX_EPOCH,
                host: Arc::from("h"),
                platform,
                process: Default::default(),
                parent: Default::default(),
                args_truncated: false,
            }));
            for message_type in [DnsMessageType::Query, DnsMessageType::Response] {
                out.push(Event::Dns(DnsEvent {
                    time: SystemTime::UNIX_EPOCH,
                    host: Arc::from("h"),
                    platform,
                    message_type,
                    query: String::new(),
                    query_type: String::new(),
                    transaction_id: 0,
                    reply_code: String::new(),
                    reply_code_id: None,
                    answers: vec![],
                    src: None,
                    dest: None,
                    transport: "",
                    process: None,
                    parent: None,
                }));
            }
        }
        out
    }

    #[test]
    fn the_index_agrees_with_applies_to() {
        let set = RuleSet::from_str("m.yml", RULES).unwrap();
        let m = Matcher::new(set.rules());
        for e in events() {
            let candidates: Vec<&str> = m
                .candidates(&e)
                .iter()
                .map(|&i| set.rules()[i as usize].title.as_str())
                .collect();
            let expected: Vec<&str> = set
                .rules()
                .iter()
                .filter(|r| r.applies_to(&e))
                .map(|r| r.title.as_str())
                .collect();
            assert_eq!(candidates, expected, "{e:?}");
        }
        let linux_query = &events()[1];
        let names: Vec<&str> = m
            .candidates(linux_query)
            .iter()
            .map(|&i| set.rules()[i as usize].title.as_str())
            .collect();
        assert_eq!(names, ["dns-query", "dns-both"]);
    }

    #[test]
    fn non_ascii_values_are_lowered_once_per_event() {
        let e = events().remove(0);
        let mut cx = EventCtx::new(&e);
        assert_eq!(cx.lower(Field::CommandLine, 0, "ÄB"), "äb");
        assert_eq!(cx.lower(Field::CommandLine, 0, "ignored: cached"), "äb");
        assert_eq!(cx.lower(Field::CommandLine, 1, "Ö"), "ö");
        assert_eq!(cx.used, 2);
        drop(cx);
        // The buffers are kept for the next event, which starts empty.
        let mut cx = EventCtx::new(&e);
        assert_eq!((cx.used, cx.lowered.len()), (0, 2));
        assert_eq!(cx.lower(Field::CommandLine, 0, "É"), "é");
    }
}
