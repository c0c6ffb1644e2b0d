//! One Sigma rule: its metadata (Sigma keys and our `tunnelwatch:` extension block), where it
//! applies (category, platform, DNS phase) and its compiled detection. Parsed from one YAML
//! document; anything wrong is refused with `file:line: reason`.
//!
//! Floor 4 (one rule): may use `detection`, `template`, `test_case` and the floors below
//! (`field`, `event`, `yaml`, `error`).

use saphyr::{Scalar, YamlData};

use crate::{
    detection::{self, Detection},
    error::SourceError,
    event::{DnsMessageType, Event, Platform},
    field::{Category, Field, Vocabulary},
    template::Template,
    test_case::{self, TestCase},
    yaml::{self, Node, Reader},
};

/// Sigma `level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// `informational`
    Informational,
    /// `low`
    Low,
    /// `medium`
    Medium,
    /// `high`
    High,
    /// `critical`
    Critical,
}

impl Level {
    /// The Sigma spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }

    fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "informational" => Level::Informational,
            "low" => Level::Low,
            "medium" => Level::Medium,
            "high" => Level::High,
            "critical" => Level::Critical,
            _ => return None,
        })
    }

    /// The risk score a level stands for when a rule gives none.
    pub fn risk_score(self) -> u32 {
        match self {
            Level::Informational => 0,
            Level::Low => 25,
            Level::Medium => 50,
            Level::High => 75,
            Level::Critical => 100,
        }
    }
}

/// Sigma `logsource`, as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSource {
    /// `linux`, `windows`, or none for both.
    pub product: Option<String>,
    /// `process_creation`, `dns_query`, `dns` or `network_connection`.
    pub category: Option<String>,
    /// Kept, not used: the engine has one source per category.
    pub service: Option<String>,
    /// Free text.
    pub definition: Option<String>,
}

/// A Sigma `related` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Related {
    /// The related rule's id.
    pub id: String,
    /// `derived`, `obsolete`, `merged`, `renamed` or `similar`.
    pub kind: String,
}

/// Which DNS messages a DNS rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsPhase {
    /// Queries only: the rule reads query-side fields, so it fires once per lookup, early.
    Query,
    /// Responses only: the rule reads a response field (answer, reply code, ...).
    Response,
    /// Both: the rule tests `message_type` itself.
    Both,
}

/// A loaded rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Sigma `title` (the alert's `rule_name`).
    pub title: String,
    /// Sigma `id` (the alert's `rule_id`).
    pub id: Option<String>,
    /// Sigma `name`: how correlation rules may refer to it.
    pub name: Option<String>,
    /// `stable`, `test`, `experimental`, `deprecated` or `unsupported`.
    pub status: Option<String>,
    /// Sigma `description`.
    pub description: Option<String>,
    /// Sigma `references`.
    pub references: Vec<String>,
    /// Sigma `author`.
    pub author: Option<String>,
    /// Sigma `date`, as written.
    pub date: Option<String>,
    /// Sigma `modified`, as written.
    pub modified: Option<String>,
    /// Sigma `tags`.
    pub tags: Vec<String>,
    /// Sigma `logsource`.
    pub logsource: LogSource,
    /// Sigma `falsepositives`.
    pub falsepositives: Vec<String>,
    /// Sigma `level` (the alert's `severity`).
    pub level: Option<Level>,
    /// Sigma `fields`.
    pub fields: Vec<String>,
    /// Sigma `related`.
    pub related: Vec<Related>,
    /// Splunk analytic type (`tunnelwatch.type`): Anomaly, TTP, Hunting, ...
    pub analytic_type: Option<String>,
    /// `tunnelwatch.impact`, 0 to 100.
    pub impact: Option<u32>,
    /// `tunnelwatch.confidence`, 0 to 100.
    pub confidence: Option<u32>,
    /// `tunnelwatch.risk_score`, else impact × confidence / 100, else from the level.
    pub risk_score: Option<u32>,
    /// The alert message template (`tunnelwatch.message`); the title when absent.
    pub message: String,
    /// MITRE ATT&CK technique ids from the `attack.tNNNN[.NNN]` tags, e.g. `T1059.001`.
    pub mitre_technique_ids: Vec<String>,
    /// The file the rule came from.
    pub file: String,
    /// The line its document starts on.
    pub line: usize,
    /// The kind of events it reads.
    pub category: Category,
    /// The platforms it applies to (`logsource.product`; both when absent).
    pub platforms: Vec<Platform>,
    /// For DNS rules, which messages it reads.
    pub dns_phase: DnsPhase,
    /// The tunnel family (`tunnelwatch.family`, e.g. `ngrok`): an event should raise at most
    /// one alert per family, which the rule tests check.
    pub family: Option<String>,
    /// Test cases (`tunnelwatch.tests`): events in, alert or no alert out.
    pub tests: Vec<TestCase>,
    /// Fields the rule names that no sensor reports yet (e.g. `Hashes`): selections on them
    /// never match.
    pub unreported_fields: Vec<String>,
    pub(crate) template: Template,
    pub(crate) detection: Detection,
}

/// The categories a rule may name, for messages.
const CATEGORIES: &str = "process_creation, dns_query, dns, network_connection";

/// Parses a Sigma `logsource` mapping and resolves its category and product: the field
/// vocabulary, the kind of events read, the platforms.
pub(crate) fn resolve_logsource(
    r: &Reader<'_>,
    key: &Node<'_>,
    node: &Node<'_>,
) -> Result<(LogSource, Vocabulary, Category, Vec<Platform>), SourceError> {
    let logsource = parse_logsource(r, node)?;
    let Some(category_name) = logsource.category.as_deref() else {
        return Err(r.err(
            key,
            format!("logsource has no 'category' (supported: {CATEGORIES})"),
        ));
    };
    let Some((vocabulary, category)) = Vocabulary::from_sigma(category_name) else {
        return Err(r.err(
            node,
            format!(
                "logsource category '{category_name}' is not supported (supported: {CATEGORIES})"
            ),
        ));
    };
    let platforms = match logsource.product.as_deref() {
        None => vec![Platform::Linux, Platform::Windows],
        Some("linux") => vec![Platform::Linux],
        Some("windows") => vec![Platform::Windows],
        Some(p) => {
            return Err(r.err(
                node,
                format!("logsource product '{p}' is not supported (linux, windows or none)"),
            ));
        }
    };
    Ok((logsource, vocabulary, category, platforms))
}

const STATUSES: &[&str] = &[
    "stable",
    "test",
    "experimental",
    "deprecated",
    "unsupported",
];
const RELATED_TYPES: &[&str] = &["derived", "obsolete", "merged", "renamed", "similar"];

impl Rule {
    /// Whether the rule is evaluated on `event` (category, platform and DNS phase).
    pub fn applies_to(&self, event: &Event) -> bool {
        if Category::of(event) != self.category || !self.platforms.contains(&event.platform()) {
            return false;
        }
        match event {
            Event::Dns(d) => match (self.dns_phase, d.message_type) {
                (DnsPhase::Both, _) => true,
                (DnsPhase::Query, t) => t == DnsMessageType::Query,
                (DnsPhase::Response, t) => t == DnsMessageType::Response,
            },
            Event::Process(_) | Event::Connection(_) => true,
        }
    }

    /// Parses one YAML document of `file` into a rule.
    pub(crate) fn parse(file: &str, doc: &Node<'_>) -> Result<Rule, SourceError> {
        let r = Reader::new(file);
        let map = r.map(doc, "a rule")?;
        let get = |key: &str| find(map, key);
        if let Some((k, _)) = get("action") {
            return Err(r.err(
                k,
                "'action' documents (Sigma collections) are not supported",
            ));
        }
        let meta = Meta::parse(&r, doc)?;

        // Where the rule applies.
        let (lsk, lsv) = get("logsource").ok_or_else(|| r.err(doc, "rule has no 'logsource'"))?;
        let (logsource, vocabulary, category, platforms) = resolve_logsource(&r, lsk, lsv)?;
        let category_name = logsource.category.clone().unwrap_or_default();

        let (_, dv) = get("detection").ok_or_else(|| r.err(doc, "rule has no 'detection'"))?;
        let fields = detection::Fields {
            vocabulary,
            category_name: &category_name,
        };
        let detection = detection::parse(&r, dv, fields, "detection", &[])?;
        let dns_phase = if vocabulary == Vocabulary::Network {
            // Not a DNS rule: its phase is never looked at.
            DnsPhase::Both
        } else if detection.fields().any(Field::is_response_only) {
            DnsPhase::Response
        } else if detection.fields().any(|f| f == Field::MessageType) {
            DnsPhase::Both
        } else {
            DnsPhase::Query
        };
        let mut unreported_fields: Vec<String> = Vec::new();
        for f in detection.fields() {
            if let Field::Unreported(name) = f
                && !unreported_fields.iter().any(|n| n == name)
            {
                unreported_fields.push(name.to_owned());
            }
        }

        let ext = Extension::parse(&r, doc)?;
        let (message, template) = match &ext.message {
            Some((text, node)) => (
                text.clone(),
                Template::parse(text, category).map_err(|e| r.err(node, e))?,
            ),
            None => (meta.title.clone(), Template::literal(&meta.title)),
        };
        let tests = match ext.tests {
            None => Vec::new(),
            Some(node) => test_case::parse(&r, node, category, &platforms)?,
        };

        Ok(Rule {
            risk_score: ext.risk_score(meta.level),
            id: meta.id,
            name: meta.name,
            status: meta.status,
            description: meta.description,
            references: meta.references,
            author: meta.author,
            date: meta.date,
            modified: meta.modified,
            mitre_technique_ids: meta.mitre_technique_ids,
            tags: meta.tags,
            logsource,
            falsepositives: meta.falsepositives,
            level: meta.level,
            fields: meta.fields,
            related: meta.related,
            analytic_type: ext.analytic_type,
            impact: ext.impact,
            confidence: ext.confidence,
            message,
            file: file.to_owned(),
            line: yaml::line(doc),
            category,
            platforms,
            dns_phase,
            family: ext.family,
            tests,
            unreported_fields,
            template,
            detection,
            title: meta.title,
        })
    }
}

/// The value of `key` in a document's mapping, with its key node.
pub(crate) fn find<'m, 'a>(
    map: &'m crate::yaml::Map<'a>,
    key: &str,
) -> Option<(&'m Node<'a>, &'m Node<'a>)> {
    map.iter()
        .find(|(k, _)| matches!(&k.data, YamlData::Value(Scalar::String(s)) if s == key))
}

/// What every Sigma document that raises alerts says about itself: a rule's or a
/// correlation's metadata, as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Sigma `title` (the alert's `rule_name`).
    pub title: String,
    /// Sigma `id` (the alert's `rule_id`).
    pub id: Option<String>,
    /// Sigma `name`: how correlations refer to it.
    pub name: Option<String>,
    pub status: Option<String>,
    pub description: Option<String>,
    pub references: Vec<String>,
    pub author: Option<String>,
    pub date: Option<String>,
    pub modified: Option<String>,
    pub tags: Vec<String>,
    pub falsepositives: Vec<String>,
    pub level: Option<Level>,
    pub fields: Vec<String>,
    pub related: Vec<Related>,
    /// MITRE ATT&CK technique ids from the tags.
    pub mitre_technique_ids: Vec<String>,
}

impl Meta {
    /// Reads the metadata keys of document `doc` (a mapping); other keys are not looked at.
    pub(crate) fn parse(r: &Reader<'_>, doc: &Node<'_>) -> Result<Meta, SourceError> {
        let map = r.map(doc, "a rule")?;
        let get = |key: &str| find(map, key);
        let opt_str = |key: &str| -> Result<Option<String>, SourceError> {
            get(key)
                .map(|(_, v)| r.string(v, key).map(str::to_owned))
                .transpose()
        };
        let opt_strings = |key: &str| -> Result<Vec<String>, SourceError> {
            Ok(get(key)
                .map(|(_, v)| r.strings(v, key))
                .transpose()?
                .unwrap_or_default())
        };
        let title = opt_str("title")?.ok_or_else(|| r.err(doc, "rule has no 'title'"))?;
        let id = opt_str("id")?;
        for key in ["id", "name"] {
            if let Some((_, v)) = get(key)
                && r.string(v, key)?.trim().is_empty()
            {
                return Err(r.err(v, format!("'{key}' is empty")));
            }
        }
        let status = opt_str("status")?;
        if let (Some(s), Some((_, v))) = (&status, get("status"))
            && !STATUSES.contains(&s.as_str())
        {
            return Err(r.err(
                v,
                format!("unknown status '{s}' (one of {})", STATUSES.join(", ")),
            ));
        }
        let level = match get("level") {
            None => None,
            Some((_, v)) => {
                let s = r.string(v, "level")?;
                Some(Level::parse(s).ok_or_else(|| {
                    r.err(
                        v,
                        format!(
                            "unknown level '{s}' (informational, low, medium, high or critical)"
                        ),
                    )
                })?)
            }
        };
        let tags = opt_strings("tags")?;
        let related = match get("related") {
            None => Vec::new(),
            Some((_, v)) => parse_related(r, v)?,
        };
        Ok(Meta {
            title,
            id,
            name: opt_str("name")?,
            status,
            description: opt_str("description")?,
            references: opt_strings("references")?,
            author: opt_str("author")?,
            date: opt_str("date")?,
            modified: opt_str("modified")?,
            mitre_technique_ids: mitre_techniques(&tags),
            tags,
            falsepositives: opt_strings("falsepositives")?,
            level,
            fields: opt_strings("fields")?,
            related,
        })
    }
}

/// Our extension block, `tunnelwatch:`, as written: the message and the test cases are left
/// to the document's kind to read.
#[derive(Default)]
pub(crate) struct Extension<'a> {
    pub analytic_type: Option<String>,
    pub impact: Option<u32>,
    pub confidence: Option<u32>,
    pub risk_score: Option<u32>,
    /// The message template's text and its node.
    pub message: Option<(String, &'a Node<'a>)>,
    pub family: Option<String>,
    /// The `tests` node.
    pub tests: Option<&'a Node<'a>>,
}

impl<'a> Extension<'a> {
    /// Reads the `tunnelwatch` block of `doc`, if any.
    pub(crate) fn parse(r: &Reader<'_>, doc: &'a Node<'a>) -> Result<Extension<'a>, SourceError> {
        let mut ext = Extension::default();
        let Some((_, tv)) = find(r.map(doc, "a rule")?, "tunnelwatch") else {
            return Ok(ext);
        };
        for (k, v) in r.map(tv, "tunnelwatch")? {
            let key = r.key(k)?;
            match key {
                "type" => ext.analytic_type = Some(r.string(v, "tunnelwatch.type")?.to_owned()),
                "impact" => ext.impact = Some(r.int(v, "tunnelwatch.impact", 0, 100)? as u32),
                "confidence" => {
                    ext.confidence = Some(r.int(v, "tunnelwatch.confidence", 0, 100)? as u32)
                }
                "risk_score" => {
                    ext.risk_score =
                        Some(r.int(v, "tunnelwatch.risk_score", 0, u32::MAX.into())? as u32)
                }
                "message" => {
                    ext.message = Some((r.string(v, "tunnelwatch.message")?.to_owned(), v))
                }
                "family" => {
                    let f = r.string(v, "tunnelwatch.family")?;
                    if f.trim().is_empty() {
                        return Err(r.err(v, "tunnelwatch.family is empty"));
                    }
                    ext.family = Some(f.to_owned());
                }
                "tests" => ext.tests = Some(v),
                _ => {
                    return Err(r.err(
                        k,
                        format!(
                            "unknown key '{key}' in 'tunnelwatch' (type, impact, confidence, risk_score, message, family, tests)"
                        ),
                    ));
                }
            }
        }
        Ok(ext)
    }

    /// The risk score: given, else impact × confidence / 100, else from the level.
    pub(crate) fn risk_score(&self, level: Option<Level>) -> Option<u32> {
        self.risk_score
            .or_else(|| match (self.impact, self.confidence) {
                (Some(i), Some(c)) => Some(i * c / 100),
                _ => level.map(Level::risk_score),
            })
    }
}

pub(crate) fn parse_logsource(r: &Reader<'_>, node: &Node<'_>) -> Result<LogSource, SourceError> {
    let mut ls = LogSource::default();
    for (k, v) in r.map(node, "logsource")? {
        let key = r.key(k)?;
        let slot = match key {
            "product" => &mut ls.product,
            "category" => &mut ls.category,
            "service" => &mut ls.service,
            "definition" => &mut ls.definition,
            _ => {
                return Err(r.err(
                    k,
                    format!(
                        "unknown key '{key}' in logsource (product, category, service, definition)"
                    ),
                ));
            }
        };
        *slot = Some(r.string(v, key)?.to_owned());
    }
    Ok(ls)
}

fn parse_related(r: &Reader<'_>, node: &Node<'_>) -> Result<Vec<Related>, SourceError> {
    let YamlData::Sequence(items) = &r.untagged(node)?.data else {
        return Err(r.err(node, "related must be a list"));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let (mut id, mut kind) = (None, None);
        for (k, v) in r.map(item, "each related entry")? {
            match r.key(k)? {
                "id" => id = Some(r.string(v, "related id")?.to_owned()),
                "type" => {
                    let t = r.string(v, "related type")?;
                    if !RELATED_TYPES.contains(&t) {
                        return Err(r.err(
                            v,
                            format!(
                                "unknown related type '{t}' (one of {})",
                                RELATED_TYPES.join(", ")
                            ),
                        ));
                    }
                    kind = Some(t.to_owned());
                }
                other => {
                    return Err(r.err(k, format!("unknown key '{other}' in related (id, type)")));
                }
            }
        }
        match (id, kind) {
            (Some(id), Some(kind)) => out.push(Related { id, kind }),
            _ => return Err(r.err(item, "each related entry needs 'id' and 'type'")),
        }
    }
    Ok(out)
}

/// `attack.t1572` → `T1572`, `attack.t1059.001` → `T1059.001`; other tags are skipped.
fn mitre_techniques(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let Some(rest) = tag.strip_prefix("attack.") else {
            continue;
        };
        let Some(num) = rest.strip_prefix(['t', 'T']) else {
            continue;
        };
        let (main, sub) = num.split_once('.').unwrap_or((num, ""));
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if digits(main, 4) && (sub.is_empty() || digits(sub, 3)) {
            let id = format!("T{}", num);
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mitre_ids_from_tags() {
        let tags: Vec<String> = [
            "attack.command-and-control",
            "attack.t1572",
            "attack.t1059.001",
            "attack.T1090",
            "attack.g0001",
            "attack.t12",
            "cve.2021-44228",
            "attack.t1572",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(mitre_techniques(&tags), ["T1572", "T1059.001", "T1090"]);
    }

    #[test]
    fn level_risk_scores() {
        assert_eq!(Level::Informational.risk_score(), 0);
        assert_eq!(Level::Low.risk_score(), 25);
        assert_eq!(Level::Medium.risk_score(), 50);
        assert_eq!(Level::High.risk_score(), 75);
        assert_eq!(Level::Critical.risk_score(), 100);
    }
}
