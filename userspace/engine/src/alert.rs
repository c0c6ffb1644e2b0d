//! Alerts: a rule that matched an event, carrying the rule (its metadata) and the rule's
//! message filled from the event.
//!
//! Floor 7 (the engine and its output): may use `rule` and `event`.

use crate::{event::Event, rule::Rule};

/// A rule fired on an event.
#[derive(Clone, Debug)]
pub struct Alert<'r> {
    /// The rule that matched: id, title, level, risk score, MITRE ids, ...
    pub rule: &'r Rule,
    /// The rule's message with `$field$` placeholders filled from the event.
    pub message: String,
}

impl<'r> Alert<'r> {
    /// The alert `rule` raises on `event`.
    pub fn new(rule: &'r Rule, event: &Event) -> Alert<'r> {
        Alert {
            rule,
            message: rule.template.render(event),
        }
    }
}
