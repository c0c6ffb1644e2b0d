//! Allowlists, the counterpart of the Splunk analytics' empty `*_filter` macros: entries from
//! the configuration that suppress an alert when every field they list matches the event
//! (any of the globs given for a field; case-insensitive, Sigma wildcards). An entry applies to
//! the rules it names (by id, or by a glob on the title) or, naming none, to every rule. Fields
//! are named as in the alert lines and read through the line schema (`line/`).
//!
//! Floor 6 (rule sets, filters, allowlists): may use `ruleset`, `rule`, `pattern`, `line`,
//! `yaml` and `error`.

use saphyr::YamlData;

use crate::{
    error::SourceError,
    event::Event,
    line,
    pattern::Pattern,
    rule::Rule,
    ruleset::RuleSet,
    yaml::{self, Node, Reader},
};

/// The line fields an allowlist entry may name, for events of any kind: who ran what, and
/// the name looked up.
pub const FIELDS: &[&str] = &[
    "user",
    "user_id",
    "process_name",
    "process_path",
    "parent_process_name",
    "parent_process_path",
    "query",
    "host",
];

/// The allowlist entries of a configuration.
#[derive(Clone, Debug, Default)]
pub struct Allowlist {
    entries: Vec<AllowEntry>,
}

/// One entry: which rules it covers and what an event must look like to be let through.
#[derive(Clone, Debug)]
pub struct AllowEntry {
    /// Rule ids or title globs; empty means every rule.
    rules: Vec<RuleRef>,
    /// A line field (one of [`FIELDS`]) and the globs one of which must match.
    conditions: Vec<(&'static str, Vec<Pattern>)>,
    /// The file the entry was defined in (empty when built in code).
    pub file: String,
    /// Its line (0 when built in code).
    pub line: usize,
}

#[derive(Clone, Debug)]
struct RuleRef {
    text: String,
    title: Pattern,
}

impl RuleRef {
    fn new(text: &str) -> RuleRef {
        RuleRef {
            text: text.to_owned(),
            title: Pattern::glob(text, false),
        }
    }

    fn covers(&self, rule: &Rule) -> bool {
        rule.id
            .as_deref()
            .is_some_and(|id| id.eq_ignore_ascii_case(&self.text))
            || self.title.matches(&rule.title)
    }
}

impl AllowEntry {
    /// Builds an entry in code. `conditions` are `(field name, globs)`, names of [`FIELDS`].
    pub fn new(rules: &[&str], conditions: &[(&str, &[&str])]) -> Result<AllowEntry, String> {
        let mut entry = AllowEntry {
            rules: rules.iter().map(|r| RuleRef::new(r)).collect(),
            conditions: Vec::new(),
            file: String::new(),
            line: 0,
        };
        for (name, globs) in conditions {
            let field = allow_field(name)?;
            entry.add_condition(field, globs.iter().copied())?;
        }
        entry.check()?;
        Ok(entry)
    }

    fn add_condition<'a>(
        &mut self,
        field: &'static str,
        globs: impl Iterator<Item = &'a str>,
    ) -> Result<(), String> {
        let patterns: Vec<Pattern> = globs.map(|g| Pattern::glob(g, false)).collect();
        if patterns.is_empty() {
            return Err(format!("allowlist field '{field}' has no value"));
        }
        if self.conditions.iter().any(|(f, _)| *f == field) {
            return Err(format!("allowlist field '{field}' is given twice"));
        }
        self.conditions.push((field, patterns));
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        if self.conditions.is_empty() {
            Err(format!(
                "allowlist entry lists no field to match (one of {}); it would silence every alert",
                FIELDS.join(", ")
            ))
        } else {
            Ok(())
        }
    }

    /// Whether the entry covers `rule`.
    pub fn applies_to(&self, rule: &Rule) -> bool {
        self.rules.is_empty() || self.rules.iter().any(|r| r.covers(rule))
    }

    /// Whether `event` matches every field of the entry.
    pub fn matches(&self, event: &Event) -> bool {
        self.conditions.iter().all(|(field, patterns)| {
            let mut hit = false;
            line::visit(event, field, &mut |s| {
                hit = hit || patterns.iter().any(|p| p.matches(s));
            });
            hit
        })
    }
}

fn allow_field(name: &str) -> Result<&'static str, String> {
    FIELDS.iter().find(|f| **f == name).copied().ok_or_else(|| {
        format!(
            "unknown key '{name}' in allowlist entry (rules, {})",
            FIELDS.join(", ")
        )
    })
}

impl Allowlist {
    /// An allowlist of these entries.
    pub fn new(entries: Vec<AllowEntry>) -> Allowlist {
        Allowlist { entries }
    }

    /// The entries.
    pub fn entries(&self) -> &[AllowEntry] {
        &self.entries
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Indices of the entries that cover `rule`.
    pub(crate) fn entries_for(&self, rule: &Rule) -> Vec<u32> {
        (0..self.entries.len())
            .filter(|&i| self.entries[i].applies_to(rule))
            .map(|i| i as u32)
            .collect()
    }

    /// Whether entry `i` matches `event`.
    pub(crate) fn entry_matches(&self, i: u32, event: &Event) -> bool {
        self.entries[i as usize].matches(event)
    }

    /// Warnings for rule references that cover no rule of `rules` (likely typos: such an entry
    /// suppresses nothing).
    pub fn unmatched_rule_refs(&self, rules: &RuleSet) -> Vec<SourceError> {
        let mut out = Vec::new();
        for e in &self.entries {
            for r in &e.rules {
                if !rules.rules().iter().any(|rule| r.covers(rule)) {
                    out.push(SourceError::new(
                        &e.file,
                        e.line,
                        format!(
                            "allowlist rule '{}' matches no loaded rule id or title",
                            r.text
                        ),
                    ));
                }
            }
        }
        out
    }

    /// Warnings for entries that match every event of the rules they cover: every field they
    /// list has a value that matches anything (`*`). Such an entry silences those rules
    /// entirely (for every event that has the fields it names).
    pub fn match_everything(&self, rules: &RuleSet) -> Vec<SourceError> {
        let mut out = Vec::new();
        for e in &self.entries {
            let everything = e
                .conditions
                .iter()
                .all(|(_, patterns)| patterns.iter().any(Pattern::matches_any_value));
            if !everything {
                continue;
            }
            let covered = rules.rules().iter().filter(|r| e.applies_to(r)).count();
            if covered == 0 {
                continue;
            }
            let fields: Vec<&str> = e.conditions.iter().map(|(f, _)| *f).collect();
            out.push(SourceError::new(
                &e.file,
                e.line,
                format!(
                    "allowlist entry matches every event of the {covered} rule(s) it covers \
                     ({} = '*'): it silences them all",
                    fields.join(", ")
                ),
            ));
        }
        out
    }

    /// Parses the `allowlist:` list of a configuration file.
    pub(crate) fn parse(r: &Reader<'_>, node: &Node<'_>) -> Result<Allowlist, SourceError> {
        let items = match &r.untagged(node)?.data {
            _ if yaml::is_null(node) => return Ok(Allowlist::default()),
            YamlData::Sequence(items) => items,
            _ => return Err(r.err(node, "allowlist must be a list of entries")),
        };
        let mut entries = Vec::with_capacity(items.len());
        for item in items {
            let mut entry = AllowEntry {
                rules: Vec::new(),
                conditions: Vec::new(),
                file: r.file.to_owned(),
                line: yaml::line(item),
            };
            for (k, v) in r.map(item, "each allowlist entry")? {
                let key = r.key(k)?;
                let values = r.strings(v, &format!("allowlist '{key}'"))?;
                if values.is_empty() {
                    return Err(r.err(v, format!("allowlist '{key}' is an empty list")));
                }
                if key == "rules" {
                    entry.rules = values.iter().map(|s| RuleRef::new(s)).collect();
                    continue;
                }
                let field = allow_field(key).map_err(|e| r.err(k, e))?;
                entry
                    .add_condition(field, values.iter().map(String::as_str))
                    .map_err(|e| r.err(v, e))?;
            }
            entry.check().map_err(|e| r.err(item, e))?;
            entries.push(entry);
        }
        Ok(Allowlist { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{field::Category, line::Body};

    #[test]
    fn allowlist_fields_are_line_fields() {
        for f in FIELDS {
            assert!(
                *f == "host" || Category::ALL.iter().any(|c| Body::keys(*c).contains(f)),
                "{f} is on no line"
            );
        }
    }
}
