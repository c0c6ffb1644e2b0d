//! Choosing each rule's gate: literals one of which any event it matches must contain,
//! derived from the condition tree (a selection needs one of its alternatives, an
//! alternative one of its field tests, `and` the cheapest of its terms, `or` all of its terms,
//! `not` nothing). "Cheapest" weighs how often a literal should open the gate: its field (an
//! exact process name is rare, a command line is full of flags), its letters and digits, and
//! how many rules of the bucket share it.
//!
//! Floor 5 (the compiled matcher): may use `detection`, `condition` and `field`.

use std::collections::HashMap;

use crate::{
    condition::Cond,
    detection::{Detection, FieldTest, Selection, Test, Values},
    field::Field,
};

/// A literal a field's value must contain (lower-cased).
pub(super) type Atom = (Field, Box<[u8]>);

/// Literals one of which a matching event contains; empty when no event can match.
pub(super) type Group = Vec<Atom>;

/// Groups of literals that must all be found for a rule to be a candidate.
pub(super) type Gate = Vec<Group>;

/// At most this many groups per rule (a candidate entry holds the group in two bits).
const MAX_GROUPS: usize = 3;

/// A group beyond a rule's cheapest is kept when it costs at most this much (see
/// [`Costs::of`]): rarer literals narrow the candidates, common ones only add work.
const EXTRA_GROUP_COST: f64 = 4.0;

/// Whether the prefilter may gate on `field`: a text field with many distinct values (not
/// `message_type`, `transport`, ... whose few values would open the gate for most events), or
/// a connection's destination port or address (searched as text: the rules that watch ports
/// and addresses have no other literal).
fn gates_on(field: Field) -> bool {
    matches!(field, Field::DestPort | Field::DestIp)
        || field.is_text()
            && !matches!(
                field,
                Field::Initiated
                    | Field::MessageType
                    | Field::Transport
                    | Field::QueryType
                    | Field::ReplyCode
                    | Field::NameSource
                    | Field::App
                    | Field::DestIsIpv6
                    | Field::SrcIsIpv6
            )
}

/// How often a literal of `field` is expected to open the gate, relatively: an exact process
/// or file name is rare and its field is short; a command line is long and full of flags.
fn field_weight(field: Field) -> f64 {
    match field {
        Field::ProcessName
        | Field::OriginalFileName
        | Field::ParentName
        | Field::ParentUser
        | Field::User
        | Field::UserId
        | Field::Host => 0.05,
        Field::ProcessPath | Field::ParentPath | Field::Query | Field::Answer => 0.5,
        _ => 1.0,
    }
}

/// What the gate choice knows: how many rules of the bucket use each literal anywhere.
pub(super) struct Costs {
    popularity: HashMap<Atom, u32>,
}

impl Costs {
    /// Counts the literals of `rules`: a literal many rules share opens the gate of all of
    /// them at once, so a rule should rather gate on one of its own.
    pub(super) fn new<'r>(rules: impl Iterator<Item = &'r Detection>) -> Costs {
        let mut popularity: HashMap<Atom, u32> = HashMap::new();
        for d in rules {
            let mut mine: Vec<Atom> = Vec::new();
            for test in d
                .selections
                .iter()
                .flat_map(|s| s.alternatives.iter().flatten())
            {
                let tests: Vec<&Test> = match &test.values {
                    Values::Any(t) => t.iter().collect(),
                    Values::All(g) => g.iter().flatten().collect(),
                };
                for t in tests {
                    if let Test::Pattern(p) = t
                        && let Some(lit) = p.prefilter_literal()
                    {
                        let atom = (test.field, lit);
                        if !mine.contains(&atom) {
                            mine.push(atom);
                        }
                    }
                }
            }
            for atom in mine {
                *popularity.entry(atom).or_default() += 1;
            }
        }
        Costs { popularity }
    }

    /// What a set of atoms costs the prefilter: how often each is expected to open the gate
    /// (letters and digits make a literal selective; spaces, dashes and dots hardly do), times
    /// how many rules it opens.
    fn of(&self, atoms: &[Atom]) -> f64 {
        atoms
            .iter()
            .map(|atom| {
                let (field, lit) = atom;
                let selective = lit
                    .iter()
                    .filter(|b| b.is_ascii_alphanumeric() || !b.is_ascii())
                    .count() as f64;
                let shared = f64::from(self.popularity.get(atom).copied().unwrap_or(1).max(1));
                field_weight(*field) * (1.0 + 16.0 / (selective * selective).max(0.01)) * shared
            })
            .sum()
    }

    /// The cheapest of several groups (`None` ones give no gate).
    fn cheapest(&self, needs: impl Iterator<Item = Option<Group>>) -> Option<Group> {
        needs
            .flatten()
            .min_by(|a, b| self.of(a).total_cmp(&self.of(b)))
    }

    /// Gates that must all hold: their groups together, the cheapest first. Beyond the first,
    /// only groups selective enough to be worth searching for are kept.
    fn conjoin(&self, gates: impl Iterator<Item = Option<Gate>>) -> Option<Gate> {
        let mut groups: Gate = Vec::new();
        for g in gates.flatten().flatten() {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        if groups.is_empty() {
            return None;
        }
        groups.sort_by(|a, b| self.of(a).total_cmp(&self.of(b)));
        let mut kept = 1;
        while kept < groups.len().min(MAX_GROUPS) && self.of(&groups[kept]) <= EXTRA_GROUP_COST {
            kept += 1;
        }
        groups.truncate(kept);
        Some(groups)
    }

    /// Gates one of which holds: each reduced to its cheapest group, all of those together
    /// in one group; no gate if one of them has none.
    fn disjoin(&self, gates: impl Iterator<Item = Option<Gate>>) -> Option<Gate> {
        let mut gates: Vec<Gate> = gates.collect::<Option<_>>()?;
        if gates.len() == 1 {
            return gates.pop();
        }
        union(
            gates
                .into_iter()
                .map(|g| self.cheapest(g.into_iter().map(Some))),
        )
        .map(|group| vec![group])
    }

    /// The literals one of which every event matching `test` contains. An empty group means
    /// no event matches it (a field no sensor reports, tested for a value).
    fn need_test(&self, test: &FieldTest) -> Option<Group> {
        if test.field.is_unreported() {
            return (!test.matches_absent).then(Vec::new);
        }
        if !gates_on(test.field) || test.matches_absent {
            return None;
        }
        let lit = |t: &Test| match t {
            Test::Pattern(p) => p.prefilter_literal().map(|l| vec![(test.field, l)]),
            Test::Absent | Test::Present | Test::Regex(_) | Test::Cidr(_) | Test::Compare(..) => {
                None
            }
        };
        match &test.values {
            Values::Any(tests) => union(tests.iter().map(lit)),
            Values::All(groups) => self.cheapest(groups.iter().map(|g| union(g.iter().map(lit)))),
        }
    }

    fn need_selection(&self, sel: &Selection) -> Option<Gate> {
        self.disjoin(
            sel.alternatives.iter().map(|tests| {
                self.conjoin(tests.iter().map(|t| self.need_test(t).map(|g| vec![g])))
            }),
        )
    }

    fn need_cond(&self, c: &Cond, sels: &[Selection]) -> Option<Gate> {
        match c {
            Cond::Sel(i) => self.need_selection(&sels[*i]),
            Cond::Not(_) => None,
            Cond::And(terms) => self.conjoin(terms.iter().map(|t| self.need_cond(t, sels))),
            Cond::Or(terms) => self.disjoin(terms.iter().map(|t| self.need_cond(t, sels))),
        }
    }

    /// The gate of a detection: groups of literals, one literal of each group being in every
    /// event the detection matches.
    pub(super) fn gate(&self, d: &Detection) -> Option<Gate> {
        self.need_cond(&d.condition, &d.selections)
    }
}

/// All of several alternatives one of which holds: no gate if one of them has none, nothing
/// (no event can match) if none has a literal. A literal that contains another of the same
/// field adds nothing (wherever it occurs, the shorter one does) and is dropped.
fn union(needs: impl Iterator<Item = Option<Group>>) -> Option<Group> {
    let mut all: Vec<Atom> = Vec::new();
    for n in needs {
        all.extend(n?);
    }
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    let mut out: Vec<Atom> = Vec::new();
    for (i, (f, lit)) in all.iter().enumerate() {
        let redundant = all.iter().enumerate().any(|(j, (g, other))| {
            g == f
                && contains(lit, other)
                && (other.len() < lit.len() || (other.len() == lit.len() && j < i))
        });
        if !redundant {
            out.push((*f, lit.clone()));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::tests::rules_of;

    /// Each rule's gate, a group per string (`Field:literal|Field:literal`).
    fn gates_of(yaml: &str) -> Vec<Vec<String>> {
        let rules = rules_of("g.yml", yaml);
        let costs = Costs::new(rules.iter().map(|r| &r.detection));
        rules
            .iter()
            .map(|r| {
                costs
                    .gate(&r.detection)
                    .unwrap_or_default()
                    .iter()
                    .map(|group| {
                        group
                            .iter()
                            .map(|(f, l)| format!("{f:?}:{}", String::from_utf8_lossy(l)))
                            .collect::<Vec<_>>()
                            .join("|")
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn gates_follow_the_condition_tree() {
        let g = gates_of(
            r#"
title: and picks the rarer term, not negations
logsource: {category: process_creation}
detection:
  a: {process_name: ngrok}
  b: {CommandLine|contains: [http, tcp]}
  f: {CommandLine|contains: version}
  condition: a and b and not f
---
title: or needs every branch
logsource: {category: process_creation}
detection:
  a: {process_name: [Frpc, frps]}
  b: {CommandLine|contains: 'frpc.toml'}
  condition: a or b
---
title: a branch without literal leaves the rule ungated
logsource: {category: process_creation}
detection:
  a: {process_name: x}
  b: {CommandLine|re: 'y+'}
  condition: a or b
---
title: all picks the best value, longer literals contain shorter ones
logsource: {category: dns_query}
detection:
  s:
    - QueryName|endswith: ['.devtunnels.ms']
    - QueryName: devtunnels.ms
  t:
    QueryName|contains|all: [a, tunnels]
  condition: s and t
---
title: null and exists open no gate, wildcards give their longest run
logsource: {category: process_creation}
detection:
  a: {OriginalFileName: null}
  b: {User|exists: true}
  c: {CommandLine: '*ab?cdefg*h'}
  condition: (a or b) and c
"#,
        );
        // The `and` of the name and the arguments; the arguments' literals are too common to
        // be worth a second group. Not the negation.
        assert_eq!(g[0], ["ProcessName:ngrok"]);
        assert_eq!(
            g[1],
            ["ProcessName:frpc|ProcessName:frps|CommandLine:frpc.toml"]
        );
        assert!(g[2].is_empty());
        // Both terms of the `and`, the rarer first.
        assert_eq!(g[3], ["Query:devtunnels.ms", "Query:tunnels"]);
        assert_eq!(g[4], ["CommandLine:cdefg"]);
    }

    #[test]
    fn fields_no_sensor_reports_gate_nothing_or_everything() {
        let yaml = r#"
title: an image or a hash
logsource: {category: process_creation}
detection:
  s:
    - Image|endswith: \tool.exe
    - Hashes|contains: 'IMPHASH=4A07'
  condition: s
---
title: a hash only
logsource: {category: process_creation}
detection:
  s: {Hashes|contains: 'IMPHASH=4A07'}
  condition: s
---
title: no product
logsource: {category: process_creation}
detection:
  s: {Product: null}
  condition: s
"#;
        let g = gates_of(yaml);
        assert_eq!(g[0], [r"ProcessPath:\tool.exe"]);
        let rules = rules_of("g.yml", yaml);
        let costs = Costs::new(rules.iter().map(|r| &r.detection));
        // Nothing can match: an empty group, never a candidate.
        assert_eq!(costs.gate(&rules[1].detection), Some(vec![Vec::new()]));
        // Always true: no gate, evaluated on every event.
        assert_eq!(costs.gate(&rules[2].detection), None);
    }

    #[test]
    fn gates_avoid_literals_many_rules_share() {
        let mut yaml = String::new();
        for i in 0..20 {
            yaml.push_str(&format!(
                "title: r{i}\nlogsource: {{category: process_creation}}\ndetection:\n  s:\n    \
                 process_name: ssh\n    CommandLine|contains: 'svc{i}.tunnel.example'\n  \
                 condition: s\n---\n"
            ));
        }
        yaml.push_str(
            "title: alone\nlogsource: {category: process_creation}\ndetection:\n  s:\n    \
             process_name: ssh\n    CommandLine|contains: ' -R'\n  condition: s\n",
        );
        let g = gates_of(&yaml);
        // Its own literal first; the shared name as a second group (both must be found).
        assert_eq!(g[0], ["CommandLine:svc0.tunnel.example", "ProcessName:ssh"]);
        assert_eq!(
            g[19],
            ["CommandLine:svc19.tunnel.example", "ProcessName:ssh"]
        );
        // Its only other literal is a flag, too common to search for: the shared name alone.
        assert_eq!(g[20], ["ProcessName:ssh"]);
    }

    #[test]
    fn every_shipped_rule_is_gated_on_its_own_literals() {
        // The files the binary embeds (`builtin.rs`), read here from the pack's directory.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules");
        let mut rules = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            rules.extend(rules_of(&path.display().to_string(), &text));
        }
        assert!(rules.len() >= 40, "{} rules in {dir}", rules.len());
        let costs = Costs::new(rules.iter().map(|r| &r.detection));
        for r in &rules {
            let gate = costs.gate(&r.detection);
            // Only the DNS tunnel rules, on the shape of every name or its record type, have
            // nothing to search for: they are evaluated on every query.
            let numeric = r.detection.fields().any(|f| {
                matches!(
                    f,
                    Field::QueryLongestLabel
                        | Field::QueryEntropy
                        | Field::QueryLabelCount
                        | Field::QueryType
                )
            });
            if numeric {
                continue;
            }
            assert!(gate.is_some(), "{}: no gate", r.title);
            // No shipped rule opens its gate on a bare flag or word of a command line.
            for (f, lit) in gate.unwrap().into_iter().flatten() {
                let selective = lit.iter().filter(|b| b.is_ascii_alphanumeric()).count();
                assert!(
                    selective >= 4 || f != Field::CommandLine,
                    "{}: gate {f:?}:{}",
                    r.title,
                    String::from_utf8_lossy(&lit)
                );
            }
        }
    }
}
