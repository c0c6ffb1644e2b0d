//! The engine: a rule set compiled into a matcher, its Sigma filters, and the allowlist. It
//! takes events and returns alerts; it knows no operating system.
//!
//! Floor 7 (the engine and its output): may use `matcher`, `ruleset`, `filter`, `allowlist`,
//! `alert` and the floors below. Running rule test cases (`rule_tests`) is the only file above.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{
    alert::Alert,
    allowlist::Allowlist,
    event::Event,
    matcher::{EventCtx, Matcher},
    ruleset::RuleSet,
};

/// Rules, their matcher, their filters and the allowlist.
#[derive(Debug)]
pub struct Engine {
    rules: RuleSet,
    matcher: Matcher,
    allowlist: Allowlist,
    /// For each rule, the allowlist entries that cover it.
    allow_by_rule: Vec<Box<[u32]>>,
    /// For each rule, the filters that cover it.
    filters_by_rule: Vec<Box<[u32]>>,
    /// Alerts the allowlist suppressed so far.
    suppressed: AtomicU64,
    /// Alerts the Sigma filters suppressed so far.
    filtered: AtomicU64,
}

impl Engine {
    /// Compiles `rules` (with their filters) and `allowlist`.
    pub fn new(rules: RuleSet, allowlist: Allowlist) -> Engine {
        Self::compile(rules, allowlist, true)
    }

    /// Compiles `rules` without their filters (for rule test cases, which describe rules).
    pub(crate) fn without_filters(rules: RuleSet, allowlist: Allowlist) -> Engine {
        Self::compile(rules, allowlist, false)
    }

    fn compile(rules: RuleSet, allowlist: Allowlist, filters: bool) -> Engine {
        let matcher = Matcher::new(rules.rules());
        let allow_by_rule = rules
            .rules()
            .iter()
            .map(|r| allowlist.entries_for(r).into_boxed_slice())
            .collect();
        let filters_by_rule = rules
            .rules()
            .iter()
            .map(|r| {
                (0..rules.filters().len() as u32)
                    .filter(|&f| filters && rules.filters()[f as usize].covers(r))
                    .collect()
            })
            .collect();
        Engine {
            rules,
            matcher,
            allowlist,
            allow_by_rule,
            filters_by_rule,
            suppressed: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
        }
    }

    /// Appends to `out` an alert for every rule that matches `event`, passes its filters and is
    /// not allowlisted, in rule order. Allocates nothing when no rule matches (once this
    /// thread's buffers have grown to the event's size).
    pub fn evaluate<'e>(&'e self, event: &Event, out: &mut Vec<Alert<'e>>) {
        self.matcher
            .for_each_match(self.rules.rules(), event, |i, cx| self.raise(i, cx, out));
    }

    /// The same as [`Engine::evaluate`], evaluating every rule that applies to the event one
    /// after the other, without the literal prefilter: the reference the compiled matcher is
    /// checked and measured against.
    pub fn evaluate_rule_by_rule<'e>(&'e self, event: &Event, out: &mut Vec<Alert<'e>>) {
        self.matcher
            .for_each_match_rule_by_rule(self.rules.rules(), event, |i, cx| self.raise(i, cx, out));
    }

    /// Rule `i` matched the context's event: applies its filters and the allowlist.
    fn raise<'e>(&'e self, i: usize, cx: &mut EventCtx<'_>, out: &mut Vec<Alert<'e>>) {
        let filters = self.rules.filters();
        if !self.filters_by_rule[i]
            .iter()
            .all(|&f| filters[f as usize].passes(cx))
        {
            self.filtered.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let event = cx.event();
        let allowed = self.allow_by_rule[i]
            .iter()
            .any(|&entry| self.allowlist.entry_matches(entry, event));
        if allowed {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        } else {
            out.push(Alert::new(&self.rules.rules()[i], event));
        }
    }

    /// How many rules the literal prefilter gates, out of how many (summed over the six
    /// platform × event-shape buckets a rule may belong to): the others are evaluated on
    /// every event of their bucket.
    pub fn gated_rules(&self) -> (usize, usize) {
        let (total, ungated) = self.matcher.gate_stats();
        (total - ungated, total)
    }

    /// The rules.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// How many alerts the allowlist has suppressed.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }

    /// How many alerts the Sigma filters have suppressed.
    pub fn filtered(&self) -> u64 {
        self.filtered.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_is_shareable_between_threads() {
        fn check<T: Send + Sync>() {}
        check::<Engine>();
    }
}
