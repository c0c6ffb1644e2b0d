//! The compiled rule set, evaluated per event, in three ideas: choosing each rule's gating
//! literals (`gate.rs`), building and scanning the automata that find them (`scan.rs`), and
//! evaluating an event's candidate rules (`eval.rs`). This file ties them: the buckets and the
//! walk over one event.
//!
//! Rules are first indexed by what they can match (platform × process / DNS query / DNS
//! response), so an event only meets the rules that apply to it. Within each of these six
//! buckets, only the rules whose literals the event contains, plus the few without a usable
//! literal, have their condition evaluated, in rule order. The cost per event grows with the
//! event's size and the matches, barely with the number of rules.
//!
//! Floor 5 (the compiled matcher): may use `rule`, `detection`, `condition`, `pattern`,
//! `field` and `event`.

mod eval;
mod gate;
mod scan;

pub(crate) use eval::EventCtx;
use scan::Bucket;

use crate::{
    event::{DnsMessageType, Event, Platform},
    field::{Category, Value},
    rule::{DnsPhase, Rule},
};

/// Rule indices by event shape, each bucket with its literal prefilter.
#[derive(Clone, Debug, Default)]
pub(crate) struct Matcher {
    /// `[platform * 3 + shape]`, shape 0 = process, 1 = DNS query, 2 = DNS response.
    buckets: [Bucket; 6],
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
    /// Indexes `rules` (their order is kept within each bucket) and compiles each bucket's
    /// prefilter.
    pub(crate) fn new(rules: &[Rule]) -> Matcher {
        let mut members: [Vec<u32>; 6] = Default::default();
        for (i, rule) in rules.iter().enumerate() {
            for &platform in &rule.platforms {
                let shapes: &[usize] = match (rule.category, rule.dns_phase) {
                    (Category::ProcessCreation, _) => &[0],
                    (Category::Dns, DnsPhase::Query) => &[1],
                    (Category::Dns, DnsPhase::Response) => &[2],
                    (Category::Dns, DnsPhase::Both) => &[1, 2],
                };
                for &s in shapes {
                    members[bucket_of(platform, s)].push(i as u32);
                }
            }
        }
        Matcher {
            buckets: members.map(|m| Bucket::build(rules, m)),
        }
    }

    fn bucket(&self, event: &Event) -> &Bucket {
        let shape = match event {
            Event::Process(_) => 0,
            Event::Dns(d) if d.message_type == DnsMessageType::Query => 1,
            Event::Dns(_) => 2,
        };
        &self.buckets[bucket_of(event.platform(), shape)]
    }

    /// How many rules of each bucket have no gate and are evaluated on every event:
    /// `(bucket rules, ungated rules)` summed over the buckets.
    pub(crate) fn gate_stats(&self) -> (usize, usize) {
        self.buckets
            .iter()
            .fold((0, 0), |(r, a), b| (r + b.rules.len(), a + b.always.len()))
    }

    /// Calls `hit` with the index of each rule of `rules` (the slice this matcher was built
    /// from) whose detection matches `event`, in rule order.
    pub(crate) fn for_each_match(
        &self,
        rules: &[Rule],
        event: &Event,
        hit: impl FnMut(usize, &mut EventCtx<'_>),
    ) {
        self.walk::<true>(rules, event, hit)
    }

    /// The reference evaluation, without the prefilter: every rule that applies to `event`
    /// is evaluated in turn. Same results as [`Matcher::for_each_match`], slower.
    pub(crate) fn for_each_match_rule_by_rule(
        &self,
        rules: &[Rule],
        event: &Event,
        hit: impl FnMut(usize, &mut EventCtx<'_>),
    ) {
        self.walk::<false>(rules, event, hit)
    }

    /// Evaluates the rules of `event`'s bucket: with the `PREFILTER`, only the candidates it
    /// finds and the rules without a gate; without, every rule of the bucket.
    fn walk<const PREFILTER: bool>(
        &self,
        rules: &[Rule],
        event: &Event,
        mut hit: impl FnMut(usize, &mut EventCtx<'_>),
    ) {
        let b = self.bucket(event);
        if b.rules.is_empty() {
            return;
        }
        let mut cx = EventCtx::new(event);
        let mut check = |i: u32, cx: &mut EventCtx<'_>| {
            let i = i as usize;
            if rules[i].detection.matches(cx) {
                hit(i, cx);
            }
        };
        if !PREFILTER || b.scanners.is_empty() {
            // Rule by rule, or no prefilter (a handful of rules, or none with a literal).
            for &i in if PREFILTER { &b.always } else { &b.rules } {
                check(i, &mut cx);
            }
            return;
        }
        for s in &b.scanners {
            match s.field.value(event) {
                Value::Str(v) => s.scan(v, 0, &mut cx),
                Value::Strs(list) => {
                    for (i, v) in list.iter().enumerate() {
                        if !v.is_empty() {
                            s.scan(v, i, &mut cx);
                        }
                    }
                }
                _ => {}
            }
        }
        if !cx.has_hits() && b.always.is_empty() {
            return;
        }
        let mut hits = cx.take_hits();
        hits.sort_unstable();
        hits.dedup();
        // The next rule all of whose gate groups were found.
        let mut h = 0;
        let mut next_gated = || {
            while h < hits.len() {
                let rule = hits.get(h) >> 2;
                let mut found = 0u8;
                while h < hits.len() && hits.get(h) >> 2 == rule {
                    found |= 1 << (hits.get(h) & 3);
                    h += 1;
                }
                if found == (1u8 << b.groups[rule as usize]) - 1 {
                    return Some(rule);
                }
            }
            None
        };
        // Gated candidates and ungated rules, merged in rule order.
        let mut gated = next_gated();
        let mut a = 0;
        loop {
            let next = match (b.always.get(a), gated) {
                (Some(&x), Some(y)) if x <= y => {
                    a += 1;
                    if x == y {
                        gated = next_gated();
                    }
                    x
                }
                (_, Some(y)) => {
                    gated = next_gated();
                    y
                }
                (Some(&x), None) => {
                    a += 1;
                    x
                }
                (None, None) => break,
            };
            check(next, &mut cx);
        }
        cx.give_hits(hits);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::event::{DnsEvent, ProcessEvent};
    use std::{sync::Arc, time::SystemTime};

    /// The rules of a YAML text, one per document, parsed as a rule set does.
    pub(crate) fn rules_of(name: &str, text: &str) -> Vec<Rule> {
        crate::yaml::parse(name, text)
            .unwrap()
            .iter()
            .map(|doc| Rule::parse(name, doc).unwrap())
            .collect()
    }

    /// The indices of the rules that apply to `event`.
    fn candidates<'m>(m: &'m Matcher, event: &Event) -> &'m [u32] {
        &m.bucket(event).rules
    }

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

    pub(crate) fn events() -> Vec<Event> {
        let mut out = Vec::new();
        for platform in [Platform::Linux, Platform::Windows] {
            out.push(Event::Process(ProcessEvent {
                time: SystemTime::UNIX_EPOCH,
                host: Arc::from("h"),
                platform,
                process: Default::default(),
                parent: Default::default(),
                args_truncated: false,
                fileless: "".into(),
                loader: "".into(),
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
                    inferred_from_response: false,
                }));
            }
        }
        out
    }

    #[test]
    fn the_index_agrees_with_applies_to() {
        let rules = rules_of("m.yml", RULES);
        let m = Matcher::new(&rules);
        for e in events() {
            let candidates: Vec<&str> = candidates(&m, &e)
                .iter()
                .map(|&i| rules[i as usize].title.as_str())
                .collect();
            let expected: Vec<&str> = rules
                .iter()
                .filter(|r| r.applies_to(&e))
                .map(|r| r.title.as_str())
                .collect();
            assert_eq!(candidates, expected, "{e:?}");
        }
        let linux_query = &events()[1];
        let names: Vec<&str> = candidates(&m, linux_query)
            .iter()
            .map(|&i| rules[i as usize].title.as_str())
            .collect();
        assert_eq!(names, ["dns-query", "dns-both"]);
    }
}
