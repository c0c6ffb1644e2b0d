//! The engine: a rule set compiled into a matcher, its Sigma filters, and the allowlist. It
//! takes events and returns alerts; it knows no operating system. It also says which
//! correlations each match feeds (their windows are `correlation/state.rs`'s, driven by the
//! step): a rule referred to by a correlation without `generate: true` feeds it and raises no
//! alert of its own.
//!
//! Floor 7 (the engine and its output): may use `matcher`, `ruleset`, `filter`, `allowlist`,
//! `correlation`, `alert` and the floors below. Running rule test cases (`rule_tests`) is the
//! only file above.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{
    alert::Alert,
    allowlist::Allowlist,
    correlation::Source,
    event::Event,
    matcher::{EventCtx, Matcher},
    ruleset::RuleSet,
};

/// Numbers engines, so that a correlator knows when it is handed a new one (a reload).
static ENGINES: AtomicU64 = AtomicU64::new(1);

/// `(correlation, source)`: a correlation and which of its sources a match stands for.
pub type Feed = (u32, u32);

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
    /// For each rule, the correlations its matches feed.
    feeds_by_rule: Vec<Box<[Feed]>>,
    /// For each correlation, the correlations it feeds when it fires.
    feeds_by_correlation: Vec<Box<[Feed]>>,
    /// For each rule, whether it only feeds correlations.
    rule_silent: Vec<bool>,
    /// For each correlation, whether it only feeds others.
    correlation_silent: Vec<bool>,
    /// For each correlation, the allowlist entries that name it.
    allow_by_correlation: Vec<Box<[u32]>>,
    id: u64,
}

impl Engine {
    /// Compiles `rules` (with their filters) and `allowlist`.
    pub fn new(rules: RuleSet, allowlist: Allowlist) -> Engine {
        Self::compile(rules, allowlist, true)
    }

    /// Compiles `rules` without their filters, every rule raising its own alerts (for rule
    /// test cases, which describe rules).
    pub(crate) fn for_tests(rules: RuleSet, allowlist: Allowlist) -> Engine {
        Self::compile(rules, allowlist, false)
    }

    fn compile(rules: RuleSet, allowlist: Allowlist, filters: bool) -> Engine {
        let n = rules.rules().len();
        let m = rules.correlations().len();
        let mut feeds_by_rule: Vec<Vec<Feed>> = vec![Vec::new(); n];
        let mut feeds_by_correlation: Vec<Vec<Feed>> = vec![Vec::new(); m];
        let mut rule_silent = vec![false; n];
        let mut correlation_silent = vec![false; m];
        for (c, (corr, resolved)) in rules
            .correlations()
            .iter()
            .zip(rules.resolved())
            .enumerate()
        {
            for (k, source) in resolved.sources.iter().enumerate() {
                let feed = (c as u32, k as u32);
                match *source {
                    Source::Rule(i) => {
                        feeds_by_rule[i].push(feed);
                        rule_silent[i] |= filters && !corr.generate;
                    }
                    Source::Correlation(j) => {
                        feeds_by_correlation[j].push(feed);
                        correlation_silent[j] |= filters && !corr.generate;
                    }
                }
            }
        }
        let allow_by_correlation = rules
            .correlations()
            .iter()
            .map(|c| {
                allowlist
                    .entries_naming(c.meta.id.as_deref(), &c.meta.title)
                    .into_boxed_slice()
            })
            .collect();
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
            feeds_by_rule: feeds_by_rule
                .into_iter()
                .map(Vec::into_boxed_slice)
                .collect(),
            feeds_by_correlation: feeds_by_correlation
                .into_iter()
                .map(Vec::into_boxed_slice)
                .collect(),
            rule_silent,
            correlation_silent,
            allow_by_correlation,
            id: ENGINES.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Appends to `out` an alert for every rule that matches `event`, passes its filters and is
    /// not allowlisted, in rule order. Allocates nothing when no rule matches (once this
    /// thread's buffers have grown to the event's size).
    pub fn evaluate<'e>(&'e self, event: &Event, out: &mut Vec<Alert<'e>>) {
        self.matcher
            .for_each_match(self.rules.rules(), event, |i, cx| {
                self.raise(i, cx, out, None)
            });
    }

    /// [`Engine::evaluate`], and appends to `feeds` the correlations the event feeds (a
    /// match that passed its filters and the allowlist, not kept out of the correlation by an
    /// allowlist entry naming it).
    pub fn evaluate_feeding<'e>(
        &'e self,
        event: &Event,
        out: &mut Vec<Alert<'e>>,
        feeds: &mut Vec<Feed>,
    ) {
        self.matcher
            .for_each_match(self.rules.rules(), event, |i, cx| {
                self.raise(i, cx, out, Some(&mut *feeds))
            });
    }

    /// The same as [`Engine::evaluate`], evaluating every rule that applies to the event one
    /// after the other, without the literal prefilter: the reference the compiled matcher is
    /// checked and measured against.
    pub fn evaluate_rule_by_rule<'e>(&'e self, event: &Event, out: &mut Vec<Alert<'e>>) {
        self.matcher
            .for_each_match_rule_by_rule(self.rules.rules(), event, |i, cx| {
                self.raise(i, cx, out, None)
            });
    }

    /// Rule `i` matched the context's event: applies its filters and the allowlist, raises its
    /// alert unless it only feeds correlations, and says which correlations it feeds.
    fn raise<'e>(
        &'e self,
        i: usize,
        cx: &mut EventCtx<'_>,
        out: &mut Vec<Alert<'e>>,
        feeds: Option<&mut Vec<Feed>>,
    ) {
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
            if !self.rule_silent[i] {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        if !self.rule_silent[i] {
            out.push(Alert::new(&self.rules.rules()[i], event));
        }
        if let Some(feeds) = feeds {
            for &(c, k) in &self.feeds_by_rule[i] {
                let kept_out = self.allow_by_correlation[c as usize]
                    .iter()
                    .any(|&entry| self.allowlist.entry_matches(entry, event));
                if !kept_out {
                    feeds.push((c, k));
                }
            }
        }
    }

    /// The correlations correlation `c` feeds when it fires.
    pub(crate) fn feeds_of_correlation(&self, c: usize) -> &[Feed] {
        &self.feeds_by_correlation[c]
    }

    /// Whether correlation `c` only feeds others (writes no line).
    pub(crate) fn correlation_is_silent(&self, c: usize) -> bool {
        self.correlation_silent[c]
    }

    /// Whether rule `i` only feeds correlations (raises no alert of its own).
    pub fn rule_is_silent(&self, i: usize) -> bool {
        self.rule_silent[i]
    }

    /// This engine's number, different for every engine built in the process.
    pub(crate) fn id(&self) -> u64 {
        self.id
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
