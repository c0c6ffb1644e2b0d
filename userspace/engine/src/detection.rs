//! A rule's `detection` block: named selections of field conditions and the condition that
//! combines them, read from Sigma YAML and compiled (patterns, regular expressions) for the
//! matcher, which evaluates them (`matcher.rs`).
//!
//! Supported: selections as a mapping (AND) or a list of mappings (OR); field keys
//! `Field|mod|mod`; values string, integer, boolean or null, alone or in a list (OR, or AND
//! with `all`); modifiers `contains`, `startswith`, `endswith`, `all`, `re` (with `i`, `m`,
//! `s`), `cased`, `exists`, `windash`, `base64`, `base64offset`, and `utf16le`/`wide`,
//! `utf16be`, `utf16` before a Base64 modifier. Anything else is refused with its line.
//!
//! Value transformations (`windash` and the encodings) apply in the order written; the
//! anchor (`contains`, `startswith`, `endswith`) applies last. Base64 text is matched
//! case-sensitively: its letters' case is data.

use regex::{Regex, RegexBuilder};
use saphyr::{Scalar, YamlData};

use crate::{
    condition::{self, Cond},
    error::SourceError,
    field::{Field, NETWORK_UNAVAILABLE, Vocabulary},
    pattern::{
        Pattern, Tok, base64, base64_offsets, parse_wildcards, utf16be, utf16le, windash_variants,
    },
    yaml::{self, Node, Reader},
};

/// A parsed and compiled detection.
#[derive(Clone, Debug)]
pub(crate) struct Detection {
    /// The selections, in the order the rule defines them.
    pub selections: Vec<Selection>,
    /// How they combine.
    pub condition: Cond,
}

/// A named selection: it matches when one of its alternatives (each an AND of field tests)
/// matches.
#[derive(Clone, Debug)]
pub(crate) struct Selection {
    pub name: String,
    pub alternatives: Vec<Vec<FieldTest>>,
}

/// The condition on one field: `Field|mods: values`.
#[derive(Clone, Debug)]
pub(crate) struct FieldTest {
    pub field: Field,
    pub values: Values,
    /// Whether the test holds when the event lacks the field (precomputed).
    pub matches_absent: bool,
}

/// The values of a field test.
#[derive(Clone, Debug)]
pub(crate) enum Values {
    /// Some test must match (a plain value list).
    Any(Vec<Test>),
    /// Every group must have a matching test (`all`; a group is one value's variants).
    All(Vec<Vec<Test>>),
}

/// One check of a field's value.
#[derive(Clone, Debug)]
pub(crate) enum Test {
    /// The field is absent or empty (`null`, `''`, `exists: false`).
    Absent,
    /// The field has a value (`exists: true`).
    Present,
    /// A string pattern.
    Pattern(Pattern),
    /// A regular expression (`re`), matched against the value as it is.
    Regex(Regex),
}

impl Detection {
    /// Every field the detection reads.
    pub(crate) fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.selections
            .iter()
            .flat_map(|s| s.alternatives.iter().flatten())
            .map(|t| t.field)
    }
}

/// Sigma modifiers known but not supported yet.
const UNSUPPORTED_MODIFIERS: &[&str] = &[
    "cidr", "expand", "fieldref", "gt", "gte", "lt", "lte", "neq", "minute", "hour", "day", "week",
    "month", "year",
];

/// The field names and their spelling for one log source category.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    pub vocabulary: Vocabulary,
    /// The category as the rule spells it, for messages.
    pub category_name: &'a str,
}

/// Parses the `detection` mapping of a rule (or the `filter` mapping of a Sigma filter: its
/// `what` is "filter" and its `reserved` keys, such as `rules`, are not selections).
pub(crate) fn parse(
    r: &Reader<'_>,
    node: &Node<'_>,
    fields: Fields<'_>,
    what: &str,
    reserved: &[&str],
) -> Result<Detection, SourceError> {
    let map = r.map(node, what)?;
    let mut selections = Vec::new();
    let mut condition_node = None;
    for (k, v) in map {
        let name = r.key(k)?;
        match name {
            "condition" => condition_node = Some(v),
            _ if reserved.contains(&name) => {}
            "timeframe" => {
                return Err(r.err(k, "'timeframe' is not supported (no correlation yet)"));
            }
            _ => selections.push(Selection {
                name: name.to_owned(),
                alternatives: parse_selection(r, name, k, v, fields)?,
            }),
        }
    }
    let Some(cnode) = condition_node else {
        return Err(r.err(node, format!("{what} has no 'condition'")));
    };
    if selections.is_empty() {
        return Err(r.err(node, format!("{what} has no selection")));
    }
    let names: Vec<&str> = selections.iter().map(|s| s.name.as_str()).collect();
    let condition = match &r.untagged(cnode)?.data {
        YamlData::Value(Scalar::String(text)) => {
            condition::parse(text, &names).map_err(|e| r.err(cnode, e))?
        }
        // Sigma 1: a list of conditions, any of which may hold.
        YamlData::Sequence(items) if !items.is_empty() => {
            let mut alts = Vec::with_capacity(items.len());
            for item in items {
                let text = r.string(item, "each condition")?;
                alts.push(condition::parse(text, &names).map_err(|e| r.err(item, e))?);
            }
            if alts.len() == 1 {
                alts.pop().expect("one")
            } else {
                Cond::Or(alts)
            }
        }
        _ => return Err(r.err(cnode, "condition must be a string")),
    };
    Ok(Detection {
        selections,
        condition,
    })
}

fn parse_selection(
    r: &Reader<'_>,
    name: &str,
    key: &Node<'_>,
    node: &Node<'_>,
    fields: Fields<'_>,
) -> Result<Vec<Vec<FieldTest>>, SourceError> {
    let keyword = || {
        r.err(
            node,
            format!("selection '{name}': keyword selections are not supported"),
        )
    };
    match &r.untagged(node)?.data {
        YamlData::Mapping(_) => Ok(vec![parse_field_map(r, name, node, fields)?]),
        YamlData::Sequence(items) if items.is_empty() => {
            Err(r.err(key, format!("selection '{name}' is empty")))
        }
        YamlData::Sequence(items) => {
            if items
                .iter()
                .any(|i| !matches!(i.data, YamlData::Mapping(_)))
            {
                return Err(keyword());
            }
            items
                .iter()
                .map(|i| parse_field_map(r, name, i, fields))
                .collect()
        }
        YamlData::Value(Scalar::Null) => Err(r.err(key, format!("selection '{name}' is empty"))),
        _ => Err(keyword()),
    }
}

fn parse_field_map(
    r: &Reader<'_>,
    name: &str,
    node: &Node<'_>,
    fields: Fields<'_>,
) -> Result<Vec<FieldTest>, SourceError> {
    let map = r.map(node, "a selection")?;
    if map.is_empty() {
        return Err(r.err(node, format!("selection '{name}' is empty")));
    }
    let mut tests = Vec::with_capacity(map.len());
    for (k, v) in map {
        let key = r.key(k)?;
        tests.push(parse_field_test(r, name, k, key, v, fields)?);
    }
    Ok(tests)
}

/// The string-matching modifier, at most one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Anchor {
    Contains,
    StartsWith,
    EndsWith,
}

/// A value transformation, applied in the order the modifiers are written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transform {
    Windash,
    Utf16Le,
    Utf16Be,
    /// UTF-16 little-endian after a byte order mark.
    Utf16Bom,
    Base64,
    Base64Offset,
}

#[derive(Default)]
struct Modifiers<'k> {
    anchor: Option<(Anchor, &'k str)>,
    all: bool,
    re: bool,
    re_i: bool,
    re_m: bool,
    re_s: bool,
    cased: bool,
    exists: bool,
    transforms: Vec<(Transform, &'k str)>,
}

/// A value between transformations: text with wildcards, or bytes (after a UTF-16 encoding).
enum Stage {
    Text(Vec<Tok>),
    Bytes(Vec<u8>),
}

/// The literal characters of `toks`, or `None` if it has a wildcard.
fn literal_text(toks: &[Tok]) -> Option<String> {
    toks.iter()
        .map(|t| match t {
            Tok::Char(c) => Some(*c),
            _ => None,
        })
        .collect()
}

/// Applies `t` (spelled `name`) to every variant.
fn transform(t: Transform, name: &str, variants: Vec<Stage>) -> Result<Vec<Stage>, String> {
    let mut out = Vec::with_capacity(variants.len());
    for v in variants {
        match (t, v) {
            (Transform::Windash, Stage::Text(toks)) => {
                out.extend(windash_variants(&toks)?.into_iter().map(Stage::Text))
            }
            (Transform::Windash, Stage::Bytes(_)) => {
                unreachable!("windash after an encoding is refused with the modifiers")
            }
            (Transform::Utf16Le | Transform::Utf16Be | Transform::Utf16Bom, Stage::Text(toks)) => {
                let text = literal_text(&toks).ok_or_else(|| {
                    format!("modifier '{name}' cannot encode a value with wildcards (* or ?)")
                })?;
                out.push(Stage::Bytes(match t {
                    Transform::Utf16Le => utf16le(&text),
                    Transform::Utf16Be => utf16be(&text),
                    _ => [0xFF, 0xFE].into_iter().chain(utf16le(&text)).collect(),
                }));
            }
            (Transform::Utf16Le | Transform::Utf16Be | Transform::Utf16Bom, Stage::Bytes(_)) => {
                return Err(format!(
                    "modifier '{name}' cannot follow another UTF-16 modifier"
                ));
            }
            (Transform::Base64 | Transform::Base64Offset, stage) => {
                let bytes = match stage {
                    Stage::Bytes(b) => b,
                    Stage::Text(toks) => literal_text(&toks)
                        .ok_or_else(|| {
                            format!(
                                "modifier '{name}' cannot encode a value with wildcards (* or ?)"
                            )
                        })?
                        .into_bytes(),
                };
                let encoded: Vec<String> = if t == Transform::Base64 {
                    vec![base64(&bytes)]
                } else {
                    base64_offsets(&bytes).into()
                };
                for e in encoded {
                    if e.is_empty() {
                        return Err(format!(
                            "the value is too short for modifier '{name}' (an encoded variant is empty)"
                        ));
                    }
                    out.push(Stage::Text(e.chars().map(Tok::Char).collect()));
                }
            }
        }
    }
    Ok(out)
}

fn parse_field_test(
    r: &Reader<'_>,
    selection: &str,
    knode: &Node<'_>,
    key: &str,
    vnode: &Node<'_>,
    fields: Fields<'_>,
) -> Result<FieldTest, SourceError> {
    let mut parts = key.split('|');
    let fname = parts.next().unwrap_or("");
    if fname.is_empty() {
        return Err(r.err(
            knode,
            format!("selection '{selection}': keyword selections are not supported"),
        ));
    }
    let category_name = fields.category_name;
    let Some(field) = fields.vocabulary.field(fname) else {
        if fields.vocabulary == Vocabulary::Network && NETWORK_UNAVAILABLE.contains(&fname) {
            return Err(r.err(
                knode,
                format!(
                    "field '{fname}' of logsource category 'network_connection' is not available: \
                     tunnelwatch evaluates network_connection rules on DNS queries (the host name \
                     being looked up), which carry no connection address, port or protocol"
                ),
            ));
        }
        return Err(r.err(
            knode,
            format!("unknown field '{fname}' for logsource category '{category_name}'"),
        ));
    };

    // Modifiers, in order.
    let mut m = Modifiers::default();
    let mut seen: Vec<&str> = Vec::new();
    for md in parts {
        if seen.contains(&md) {
            return Err(r.err(
                knode,
                format!("duplicate modifier '{md}' on field '{fname}'"),
            ));
        }
        seen.push(md);
        let anchor = match md {
            "contains" => Some(Anchor::Contains),
            "startswith" => Some(Anchor::StartsWith),
            "endswith" => Some(Anchor::EndsWith),
            _ => None,
        };
        let transform = match md {
            "windash" => Some(Transform::Windash),
            "utf16le" | "wide" => Some(Transform::Utf16Le),
            "utf16be" => Some(Transform::Utf16Be),
            "utf16" => Some(Transform::Utf16Bom),
            "base64" => Some(Transform::Base64),
            "base64offset" => Some(Transform::Base64Offset),
            _ => None,
        };
        match md {
            _ if anchor.is_some() => {
                if let Some((_, prev)) = m.anchor {
                    return Err(r.err(
                        knode,
                        format!("modifiers '{prev}' and '{md}' on field '{fname}' conflict"),
                    ));
                }
                m.anchor = anchor.map(|a| (a, md));
            }
            _ if transform.is_some() => {
                let t = transform.expect("checked");
                if t == Transform::Windash && !m.transforms.is_empty() {
                    return Err(r.err(
                        knode,
                        "modifier 'windash' must come before the encoding modifiers",
                    ));
                }
                if let Some((_, prev)) = m.transforms.iter().find(|(p, _)| {
                    let utf16 = |x: &Transform| {
                        matches!(
                            x,
                            Transform::Utf16Le | Transform::Utf16Be | Transform::Utf16Bom
                        )
                    };
                    let b64 =
                        |x: &Transform| matches!(x, Transform::Base64 | Transform::Base64Offset);
                    (utf16(p) && utf16(&t)) || (b64(p) && b64(&t))
                }) {
                    return Err(r.err(
                        knode,
                        format!("modifiers '{prev}' and '{md}' on field '{fname}' conflict"),
                    ));
                }
                m.transforms.push((t, md));
            }
            "all" => m.all = true,
            "re" => m.re = true,
            "i" | "m" | "s" => {
                if !m.re {
                    return Err(r.err(
                        knode,
                        format!("modifier '{md}' on field '{fname}' is only valid after 're'"),
                    ));
                }
                match md {
                    "i" => m.re_i = true,
                    "m" => m.re_m = true,
                    _ => m.re_s = true,
                }
            }
            "cased" => m.cased = true,
            "exists" => m.exists = true,
            _ if UNSUPPORTED_MODIFIERS.contains(&md) => {
                return Err(r.err(
                    knode,
                    format!("modifier '{md}' on field '{fname}' is not supported"),
                ));
            }
            "" => {
                return Err(r.err(knode, format!("empty modifier on field '{fname}'")));
            }
            _ => {
                return Err(r.err(knode, format!("unknown modifier '{md}' on field '{fname}'")));
            }
        }
    }

    if m.exists {
        if let Some(other) = seen.iter().find(|s| **s != "exists") {
            return Err(r.err(
                knode,
                format!("modifier 'exists' on field '{fname}' cannot be combined with '{other}'"),
            ));
        }
        let test = match &r.untagged(vnode)?.data {
            YamlData::Value(Scalar::Boolean(true)) => Test::Present,
            YamlData::Value(Scalar::Boolean(false)) => Test::Absent,
            _ => {
                return Err(r.err(
                    vnode,
                    format!(
                        "modifier 'exists' on field '{fname}' needs true or false, not {}",
                        yaml::type_name(vnode)
                    ),
                ));
            }
        };
        return Ok(field_test(field, Values::Any(vec![test])));
    }
    if m.re {
        for other in [
            "contains",
            "startswith",
            "endswith",
            "windash",
            "cased",
            "base64",
            "base64offset",
            "utf16le",
            "utf16be",
            "utf16",
            "wide",
        ] {
            if seen.contains(&other) {
                return Err(r.err(
                    knode,
                    format!("modifier 're' on field '{fname}' cannot be combined with '{other}'"),
                ));
            }
        }
    }
    let has = |t: Transform| m.transforms.iter().any(|(x, _)| *x == t);
    let base64_used = has(Transform::Base64) || has(Transform::Base64Offset);
    if has(Transform::Base64Offset) && m.anchor.map(|a| a.0) != Some(Anchor::Contains) {
        return Err(r.err(
            knode,
            format!(
                "modifier 'base64offset' on field '{fname}' needs 'contains' (the encoded value sits inside a longer Base64 string)"
            ),
        ));
    }
    if let Some((_, name)) = m.transforms.last()
        && matches!(name, &"utf16le" | &"utf16be" | &"utf16" | &"wide")
    {
        return Err(r.err(
            knode,
            format!(
                "modifier '{name}' on field '{fname}' must be followed by 'base64' or 'base64offset': event fields are text, not UTF-16 bytes"
            ),
        ));
    }

    // Values.
    let items: Vec<&Node<'_>> = match &r.untagged(vnode)?.data {
        YamlData::Sequence(items) if items.is_empty() => {
            return Err(r.err(vnode, format!("empty value list for field '{fname}'")));
        }
        YamlData::Sequence(items) => items.iter().collect(),
        _ => vec![vnode],
    };
    let mut groups: Vec<Vec<Test>> = Vec::with_capacity(items.len());
    for item in items {
        let bad = |what: &str| r.err(item, format!("bad value for field '{fname}': {what}"));
        let text: String = match &r.untagged(item)?.data {
            YamlData::Value(Scalar::String(s)) => s.to_string(),
            YamlData::Value(Scalar::Integer(n)) => n.to_string(),
            YamlData::Value(Scalar::Boolean(b)) => b.to_string(),
            YamlData::Value(Scalar::Null) => {
                if let Some(md) = seen.iter().find(|md| **md != "all") {
                    return Err(r.err(
                        item,
                        format!("a null value for field '{fname}' cannot take modifier '{md}'"),
                    ));
                }
                groups.push(vec![Test::Absent]);
                continue;
            }
            YamlData::Value(Scalar::FloatingPoint(_)) => {
                return Err(bad("floating-point numbers are not supported"));
            }
            YamlData::Sequence(_) => return Err(bad("a list inside a list")),
            YamlData::Mapping(_) => return Err(bad("a mapping")),
            _ => return Err(bad("not a scalar")),
        };
        let is_string = matches!(item.data, YamlData::Value(Scalar::String(_)));
        if m.re {
            let re = RegexBuilder::new(&text)
                .case_insensitive(m.re_i)
                .multi_line(m.re_m)
                .dot_matches_new_line(m.re_s)
                .build()
                .map_err(|e| {
                    let msg = e.to_string();
                    let last = msg.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
                    let last = last.trim().trim_start_matches("error: ");
                    bad(&format!("invalid regular expression: {last}"))
                })?;
            groups.push(vec![Test::Regex(re)]);
            continue;
        }
        // Numbers and booleans are literal text; strings carry wildcards.
        let toks = if is_string {
            parse_wildcards(&text)
        } else {
            text.chars().map(Tok::Char).collect()
        };
        if toks.is_empty() && m.anchor.is_none() && m.transforms.is_empty() {
            // '' means "empty", which the engine does not tell from absent.
            groups.push(vec![Test::Absent]);
            continue;
        }
        let mut variants = vec![Stage::Text(toks)];
        for &(t, name) in &m.transforms {
            variants = transform(t, name, variants).map_err(|e| r.err(item, e))?;
        }
        let mut tests = Vec::with_capacity(variants.len());
        for v in variants {
            let Stage::Text(mut toks) = v else {
                unreachable!("a UTF-16 modifier is always followed by a Base64 one");
            };
            match m.anchor.map(|a| a.0) {
                Some(Anchor::Contains) => {
                    toks.insert(0, Tok::Star);
                    toks.push(Tok::Star);
                }
                Some(Anchor::StartsWith) => toks.push(Tok::Star),
                Some(Anchor::EndsWith) => toks.insert(0, Tok::Star),
                None => {}
            }
            tests.push(Test::Pattern(Pattern::new(&toks, m.cased || base64_used)));
        }
        groups.push(tests);
    }
    let values = if m.all {
        Values::All(groups)
    } else {
        Values::Any(groups.into_iter().flatten().collect())
    };
    Ok(field_test(field, values))
}

fn field_test(field: Field, values: Values) -> FieldTest {
    let absent = |g: &Vec<Test>| g.iter().any(|t| matches!(t, Test::Absent));
    let matches_absent = match &values {
        Values::Any(tests) => absent(tests),
        Values::All(groups) => groups.iter().all(absent),
    };
    FieldTest {
        field,
        values,
        matches_absent,
    }
}
