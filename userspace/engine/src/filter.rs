//! Sigma filters ("meta filters", Sigma specification 2.x): exclusions written once and applied
//! across rules, so a fleet can allow its own sanctioned tunnel without editing the shipped
//! rules. A filter is a YAML document of its own, in a rule directory:
//!
//! ```yaml
//! title: Our sanctioned ngrok agent
//! id: 7d0b0c1e-5c1f-4a57-9d3c-4b0f3c0f6a11
//! logsource:
//!   category: process_creation      # required: it names the fields below
//!   product: linux                  # optional: only events of this platform
//! filter:
//!   rules:                          # rule ids or titles; 'any', 'all' or [] for every rule
//!     - bc84d574-708c-467d-b78a-4c1e20171f97
//!   selection:
//!     User: ci-runner
//!     ParentImage|endswith: /jenkins
//!   condition: not selection
//! ```
//!
//! As in pySigma, the reference implementation, the filter's condition is ANDed to the
//! condition of every rule it covers: a rule's alert stands only when the filter's condition
//! holds too, so an exclusion is written `condition: not selection`. A filter covers the rules
//! it names (by id, case-insensitive, or by exact title) that read the same kind of events as
//! its log source category (process events, or DNS events for `dns_query`, `dns` and
//! `network_connection`); with a product, it only applies to events of that platform.
//! Filters are evaluated only after a rule has matched, so they cost nothing per event.
//!
//! Floor 6 (rule sets, filters, allowlists, configuration): may use `matcher` (whose context
//! evaluates its condition), `rule`, `detection` and the floors below.

use saphyr::{Scalar, YamlData};

use crate::{
    detection::{self, Detection},
    error::SourceError,
    event::Platform,
    field::Category,
    matcher::EventCtx,
    rule::{LogSource, Rule, resolve_logsource},
    yaml::{self, Node, Reader},
};

/// A loaded Sigma filter.
#[derive(Clone, Debug)]
pub struct Filter {
    /// Sigma `title`.
    pub title: String,
    /// Sigma `id`.
    pub id: Option<String>,
    /// Sigma `description`.
    pub description: Option<String>,
    /// Sigma `logsource`.
    pub logsource: LogSource,
    /// The rules it covers (ids or titles); empty for every rule of its category.
    pub rules: Vec<String>,
    /// The kind of events it reads.
    pub category: Category,
    /// The platforms it applies to.
    pub platforms: Vec<Platform>,
    /// The file it came from.
    pub file: String,
    /// The line its document starts on.
    pub line: usize,
    pub(crate) detection: Detection,
}

impl Filter {
    /// Whether the filter covers `rule`.
    pub fn covers(&self, rule: &Rule) -> bool {
        rule.category == self.category && (self.rules.is_empty() || self.names(rule))
    }

    /// Whether one of the filter's references names `rule`.
    fn names(&self, rule: &Rule) -> bool {
        self.rules.iter().any(|r| {
            rule.id
                .as_deref()
                .is_some_and(|id| id.eq_ignore_ascii_case(r))
                || rule.title == *r
        })
    }

    /// References that name no rule of `rules`: likely typos, since such a reference filters
    /// nothing.
    pub fn unmatched_references<'a>(&'a self, rules: &'a [Rule]) -> impl Iterator<Item = &'a str> {
        self.rules.iter().map(String::as_str).filter(move |r| {
            !rules.iter().any(|rule| {
                rule.id
                    .as_deref()
                    .is_some_and(|id| id.eq_ignore_ascii_case(r))
                    || rule.title == *r
            })
        })
    }

    /// Whether the filter's condition can never hold: it then excludes every event of the
    /// rules it covers (see `Detection::never_holds` for what is decidable).
    pub fn excludes_everything(&self) -> bool {
        self.detection.never_holds()
    }

    /// Whether an alert of a covered rule on the context's event stands: the event is not of
    /// the filter's platforms, or the filter's condition holds.
    pub(crate) fn passes(&self, cx: &mut EventCtx<'_>) -> bool {
        !self.platforms.contains(&cx.event().platform()) || self.detection.matches(cx)
    }

    /// Whether a YAML document is a filter (it has a top-level `filter`).
    pub(crate) fn is_filter(doc: &Node<'_>) -> bool {
        matches!(&doc.data, YamlData::Mapping(m) if m.iter().any(|(k, _)| {
            matches!(&k.data, YamlData::Value(Scalar::String(s)) if s == "filter")
        }))
    }

    /// Parses one YAML document of `file` into a filter.
    pub(crate) fn parse(file: &str, doc: &Node<'_>) -> Result<Filter, SourceError> {
        let r = Reader::new(file);
        let map = r.map(doc, "a filter")?;
        let get = |key: &str| {
            map.iter()
                .find(|(k, _)| matches!(&k.data, YamlData::Value(Scalar::String(s)) if s == key))
        };
        if let Some((k, _)) = get("detection") {
            return Err(r.err(
                k,
                "a document with 'filter' is a Sigma filter and cannot have a 'detection'",
            ));
        }
        let opt_str = |key: &str| -> Result<Option<String>, SourceError> {
            get(key)
                .map(|(_, v)| r.string(v, key).map(str::to_owned))
                .transpose()
        };
        let title = opt_str("title")?.ok_or_else(|| r.err(doc, "filter has no 'title'"))?;
        let id = opt_str("id")?;
        if let Some(t) = opt_str("taxonomy")?
            && t != "sigma"
            && let Some((_, v)) = get("taxonomy")
        {
            return Err(r.err(
                v,
                format!("taxonomy '{t}' is not supported (only the default, sigma)"),
            ));
        }
        let (lsk, lsv) = get("logsource").ok_or_else(|| r.err(doc, "filter has no 'logsource'"))?;
        let (logsource, vocabulary, category, platforms) = resolve_logsource(&r, lsk, lsv)?;
        let category_name = logsource.category.clone().unwrap_or_default();
        let (_, fv) = get("filter").expect("checked by is_filter");
        let fmap = r.map(fv, "filter")?;
        let rules_node = fmap
            .iter()
            .find(|(k, _)| matches!(&k.data, YamlData::Value(Scalar::String(s)) if s == "rules"))
            .map(|(_, v)| v)
            .ok_or_else(|| {
                r.err(
                    fv,
                    "filter has no 'rules' (rule ids or titles, or 'any' for every rule)",
                )
            })?;
        let rules = parse_rules(&r, rules_node)?;
        let detection = detection::parse(
            &r,
            fv,
            detection::Fields {
                vocabulary,
                category_name: &category_name,
            },
            "filter",
            &["rules"],
        )?;
        Ok(Filter {
            title,
            id,
            description: opt_str("description")?,
            logsource,
            rules,
            category,
            platforms,
            file: file.to_owned(),
            line: yaml::line(doc),
            detection,
        })
    }
}

/// `filter.rules`: a list of ids or titles (empty for all), `any`/`all`, or one reference.
fn parse_rules(r: &Reader<'_>, node: &Node<'_>) -> Result<Vec<String>, SourceError> {
    match &r.untagged(node)?.data {
        YamlData::Value(Scalar::String(s))
            if s.eq_ignore_ascii_case("any") || s.eq_ignore_ascii_case("all") =>
        {
            Ok(Vec::new())
        }
        YamlData::Value(Scalar::String(s)) => Ok(vec![s.to_string()]),
        YamlData::Sequence(_) => r.strings(node, "filter.rules"),
        _ => Err(r.err(
            node,
            "filter.rules must be a list of rule ids or titles, or 'any'",
        )),
    }
}
