//! The engine: a rule set compiled into a matcher, plus the allowlist. It takes events and
//! returns alerts; it knows no operating system.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{
    alert::Alert,
    allowlist::Allowlist,
    builtin,
    config::Config,
    event::Event,
    matcher::Matcher,
    ruleset::{RuleSet, RuleSetError},
};

/// Rules, their matcher and the allowlist.
#[derive(Debug)]
pub struct Engine {
    rules: RuleSet,
    matcher: Matcher,
    allowlist: Allowlist,
    /// For each rule, the allowlist entries that cover it.
    allow_by_rule: Vec<Box<[u32]>>,
    /// Alerts the allowlist suppressed so far.
    suppressed: AtomicU64,
}

impl Engine {
    /// Compiles `rules` with `allowlist`.
    pub fn new(rules: RuleSet, allowlist: Allowlist) -> Engine {
        let matcher = Matcher::new(rules.rules());
        let allow_by_rule = rules
            .rules()
            .iter()
            .map(|r| allowlist.entries_for(r).into_boxed_slice())
            .collect();
        Engine {
            rules,
            matcher,
            allowlist,
            allow_by_rule,
            suppressed: AtomicU64::new(0),
        }
    }

    /// The built-in rules with the allowlist of `config`.
    pub fn from_config(config: &Config) -> Result<Engine, RuleSetError> {
        Ok(Engine::new(builtin::rules()?, config.allowlist.clone()))
    }

    /// Appends to `out` an alert for every rule that matches `event` and is not allowlisted.
    /// Allocates nothing when no rule matches (once this thread's lower-casing buffers have
    /// grown to the event's non-ASCII values).
    pub fn evaluate<'e>(&'e self, event: &Event, out: &mut Vec<Alert<'e>>) {
        let rules = self.rules.rules();
        self.matcher.for_each_match(rules, event, |i| {
            let allowed = self.allow_by_rule[i]
                .iter()
                .any(|&entry| self.allowlist.entry_matches(entry, event));
            if allowed {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
            } else {
                out.push(Alert::new(&rules[i], event));
            }
        });
    }

    /// The rules.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The allowlist.
    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    /// How many alerts the allowlist has suppressed.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
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

    #[test]
    fn from_config_uses_the_builtin_rules_and_the_allowlist() {
        let cfg = Config::from_str("c.yml", "allowlist:\n  - user: [root]\n").unwrap();
        let engine = Engine::from_config(&cfg).unwrap();
        assert_eq!(engine.rules().len(), builtin::SOURCES.len());
        assert_eq!(engine.allowlist().entries().len(), 1);
    }
}
