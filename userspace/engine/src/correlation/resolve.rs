//! Ties each correlation to what it refers to: every name in its `rules` to one loaded rule
//! or correlation (by `id`, ignoring case, or by `name`), every `group-by` name and `field`
//! to what it reads in the events of each of them (a field of the rule's log source, through
//! `aliases` when the name is one; for a correlation it refers to, one of that correlation's
//! own `group-by` names). A correlation that refers to nothing loaded, to itself through
//! others, or to a field its rules' events do not carry is refused with its file, line and
//! reason.
//!
//! Rules referred to by a correlation without `generate: true` raise no alert of their own
//! (as pySigma does); they only feed it.
//!
//! Floor 6 (rule sets, filters, allowlists): may use `correlation::rule`, `rule`, `field`
//! and `error`.

use crate::{
    correlation::rule::Correlation,
    error::SourceError,
    field::{Field, Vocabulary},
    rule::Rule,
};

/// What a correlation refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// A rule (its index in the rule set).
    Rule(usize),
    /// A correlation (its index among the correlations).
    Correlation(usize),
}

/// How a name of a correlation reads its value in what one source gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Extract {
    /// A field of the rule's event.
    Field(Field),
    /// The value of the referred correlation's `group-by` key at this index.
    Group(usize),
}

/// A correlation tied to its sources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// What it refers to, in the order of its `rules`.
    pub sources: Vec<Source>,
    /// For each source, how each `group-by` name is read.
    pub(crate) group: Vec<Vec<Extract>>,
    /// For each source, how each `field` (value_count) is read.
    pub(crate) values: Vec<Vec<Extract>>,
}

/// The correlations of a rule set, tied; what did not tie, as errors.
#[derive(Debug, Default)]
pub(crate) struct Ties {
    /// For each correlation, its sources, or `None` when it did not tie.
    pub resolved: Vec<Option<Resolved>>,
    pub errors: Vec<SourceError>,
}

/// Ties `correlations` to `rules` and to each other. A correlation that refers to one that
/// did not tie does not tie either.
pub(crate) fn tie(rules: &[Rule], correlations: &[Correlation]) -> Ties {
    let mut ties = Ties {
        resolved: vec![None; correlations.len()],
        errors: Vec::new(),
    };
    // Sources first, so that a chain of correlations can check names against its members.
    let mut sources: Vec<Option<Vec<Source>>> = Vec::with_capacity(correlations.len());
    for c in correlations {
        match find_sources(c, rules, correlations) {
            Ok(s) => sources.push(Some(s)),
            Err(reason) => {
                ties.errors.push(err(c, reason));
                sources.push(None);
            }
        }
    }
    // Cycles: a correlation that reaches itself.
    for i in 0..correlations.len() {
        if sources[i].is_some() && reaches(i, i, &sources, &mut vec![false; correlations.len()]) {
            ties.errors.push(err(
                &correlations[i],
                "refers to itself through the correlations it refers to".into(),
            ));
            sources[i] = None;
        }
    }
    // Then fields, in an order where a correlation comes after those it refers to; one whose
    // member did not tie does not tie.
    let mut done = vec![false; correlations.len()];
    let mut progress = true;
    while progress {
        progress = false;
        for i in 0..correlations.len() {
            if done[i] {
                continue;
            }
            let Some(srcs) = &sources[i] else {
                done[i] = true;
                progress = true;
                continue;
            };
            let members: Vec<usize> = srcs
                .iter()
                .filter_map(|s| match s {
                    Source::Correlation(j) => Some(*j),
                    Source::Rule(_) => None,
                })
                .collect();
            if members.iter().any(|&j| !done[j]) {
                continue;
            }
            done[i] = true;
            progress = true;
            let c = &correlations[i];
            if let Some(&j) = members.iter().find(|&&j| ties.resolved[j].is_none()) {
                ties.errors.push(err(
                    c,
                    format!(
                        "refers to correlation '{}', which did not load",
                        correlations[j].meta.title
                    ),
                ));
                continue;
            }
            match read_fields(c, srcs, rules, correlations) {
                Ok(r) => ties.resolved[i] = Some(r),
                Err(reason) => ties.errors.push(err(c, reason)),
            }
        }
    }
    ties
}

fn err(c: &Correlation, reason: String) -> SourceError {
    SourceError::new(
        &c.file,
        c.line,
        format!("correlation '{}': {reason}", c.meta.title),
    )
}

/// Whether `rule` answers to `reference` (its id, ignoring case, or its name).
fn names_rule(rule: &Rule, reference: &str) -> bool {
    rule.id
        .as_deref()
        .is_some_and(|id| id.eq_ignore_ascii_case(reference))
        || rule.name.as_deref() == Some(reference)
}

fn find_sources(
    c: &Correlation,
    rules: &[Rule],
    correlations: &[Correlation],
) -> Result<Vec<Source>, String> {
    let mut out = Vec::with_capacity(c.rules.len());
    for reference in &c.rules {
        let mut found: Vec<Source> = rules
            .iter()
            .enumerate()
            .filter(|(_, r)| names_rule(r, reference))
            .map(|(i, _)| Source::Rule(i))
            .collect();
        found.extend(
            correlations
                .iter()
                .enumerate()
                .filter(|(_, o)| o.is_named(reference))
                .map(|(i, _)| Source::Correlation(i)),
        );
        match found.as_slice() {
            [one] => out.push(*one),
            [] => {
                return Err(format!(
                    "refers to '{reference}', which names no loaded rule or correlation (by id or name)"
                ));
            }
            _ => {
                return Err(format!(
                    "refers to '{reference}', which names {} loaded rules or correlations",
                    found.len()
                ));
            }
        }
    }
    Ok(out)
}

fn reaches(from: usize, target: usize, sources: &[Option<Vec<Source>>], seen: &mut [bool]) -> bool {
    let Some(srcs) = &sources[from] else {
        return false;
    };
    for s in srcs {
        if let Source::Correlation(j) = *s {
            if j == target {
                return true;
            }
            if !seen[j] {
                seen[j] = true;
                if reaches(j, target, sources, seen) {
                    return true;
                }
            }
        }
    }
    false
}

/// The name `name` stands for in the events of the source called `source_name` (its Sigma
/// `name`): through an alias when `name` is one and maps that source, else itself.
fn unalias<'a>(c: &'a Correlation, name: &'a str, source_name: Option<&str>) -> &'a str {
    c.aliases
        .iter()
        .find(|a| a.name == name)
        .and_then(|a| {
            a.fields
                .iter()
                .find(|(rule, _)| Some(rule.as_str()) == source_name)
                .map(|(_, field)| field.as_str())
        })
        .unwrap_or(name)
}

fn read_fields(
    c: &Correlation,
    sources: &[Source],
    rules: &[Rule],
    correlations: &[Correlation],
) -> Result<Resolved, String> {
    let mut resolved = Resolved {
        sources: sources.to_vec(),
        group: Vec::with_capacity(sources.len()),
        values: Vec::with_capacity(sources.len()),
    };
    for (n, &source) in sources.iter().enumerate() {
        let reference = &c.rules[n];
        let read = |name: &str, what: &str| -> Result<Extract, String> {
            match source {
                Source::Rule(i) => {
                    let rule = &rules[i];
                    let field_name = unalias(c, name, rule.name.as_deref());
                    let category = rule.logsource.category.as_deref().unwrap_or("");
                    let field = Vocabulary::from_sigma(category)
                        .and_then(|(v, _)| v.field(field_name))
                        .ok_or_else(|| {
                            format!(
                                "{what} '{field_name}' is not a field of the {category} events of rule '{reference}'"
                            )
                        })?;
                    if field.is_unreported() {
                        return Err(format!(
                            "{what} '{field_name}' of rule '{reference}' is a field no sensor reports"
                        ));
                    }
                    Ok(Extract::Field(field))
                }
                Source::Correlation(j) => {
                    let other = &correlations[j];
                    let key = unalias(c, name, other.meta.name.as_deref());
                    other
                        .group_by
                        .iter()
                        .position(|g| g == key)
                        .map(Extract::Group)
                        .ok_or_else(|| {
                            format!(
                                "{what} '{key}' is not among the group-by fields of correlation '{reference}' ({})",
                                if other.group_by.is_empty() {
                                    "none".to_owned()
                                } else {
                                    other.group_by.join(", ")
                                }
                            )
                        })
                }
            }
        };
        resolved.group.push(
            c.group_by
                .iter()
                .map(|g| read(g, "group-by field"))
                .collect::<Result<_, _>>()?,
        );
        resolved.values.push(
            c.fields
                .iter()
                .map(|f| read(f, "condition field"))
                .collect::<Result<_, _>>()?,
        );
    }
    Ok(resolved)
}
