//! A rule's `detection` block (or a Sigma filter's `filter` block): named selections of field
//! conditions and the condition that combines them, read from Sigma YAML and compiled
//! (patterns, regular expressions) for the matcher, which evaluates them (`matcher/eval.rs`).
//!
//! Supported: selections as a mapping (AND) or a list of mappings (OR); field keys
//! `Field|mod|mod` (the field names of `field.rs`, the modifiers of `modifier.rs`); values
//! string, integer, boolean or null, alone or in a list (OR, or AND with `all`). Anything else
//! is refused with its line.
//!
//! Floor 3 (detection and conditions): may use `condition`, and the floors below: `modifier`,
//! `pattern`, `field`, `event`, `yaml`, `error`.

use saphyr::{Scalar, YamlData};

pub(crate) use crate::modifier::Test;
use crate::{
    condition::{self, Cond},
    error::SourceError,
    field::{Field, NETWORK_UNAVAILABLE, Vocabulary},
    modifier::{Modifier, Modifiers, RuleValue},
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

impl Detection {
    /// Whether the condition is false for every event, as far as can be told without one:
    /// each selection that matches every event carrying its fields (a `'*'` value, `exists:
    /// true`) counts as true, every other as unknown, and the condition is worked out in
    /// three-valued logic. `not selection` with such a selection (a filter that excludes
    /// everything) is the case this catches; a condition that depends on the event's values
    /// in a way no single value shows is not.
    pub(crate) fn never_holds(&self) -> bool {
        /// `and` (`decides` false) or `or` (`decides` true) in three-valued logic.
        fn combine(terms: &[Cond], always: &[bool], decides: bool) -> Option<bool> {
            let vals: Vec<Option<bool>> = terms.iter().map(|t| eval(t, always)).collect();
            if vals.contains(&Some(decides)) {
                Some(decides)
            } else if vals.iter().all(|v| *v == Some(!decides)) {
                Some(!decides)
            } else {
                None
            }
        }
        fn eval(c: &Cond, always: &[bool]) -> Option<bool> {
            match c {
                Cond::Sel(i) => always[*i].then_some(true),
                Cond::Not(inner) => eval(inner, always).map(|v| !v),
                Cond::And(terms) => combine(terms, always, false),
                Cond::Or(terms) => combine(terms, always, true),
            }
        }
        let universal = |t: &Test| match t {
            Test::Present => true,
            Test::Pattern(p) => p.matches_any_value(),
            Test::Absent | Test::Regex(_) => false,
        };
        let always: Vec<bool> = self
            .selections
            .iter()
            .map(|s| {
                s.alternatives.iter().any(|alt| {
                    alt.iter().all(|ft| match &ft.values {
                        Values::Any(tests) => tests.iter().any(universal),
                        Values::All(groups) => groups.iter().all(|g| g.iter().any(universal)),
                    })
                })
            })
            .collect();
        eval(&self.condition, &always) == Some(false)
    }

    /// Every field the detection reads.
    pub(crate) fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.selections
            .iter()
            .flat_map(|s| s.alternatives.iter().flatten())
            .map(|t| t.field)
    }
}

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
    let field = resolve_field(fields, fname).map_err(|e| r.err(knode, e))?;
    let mods = Modifiers::parse(fname, parts).map_err(|e| r.err(knode, e))?;
    if mods.has(Modifier::Exists) {
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
        // Strings carry wildcards; numbers and booleans are literal text.
        let value = match &r.untagged(item)?.data {
            YamlData::Value(Scalar::String(s)) => RuleValue::Text {
                text: s.to_string(),
                wildcards: true,
            },
            YamlData::Value(Scalar::Integer(n)) => RuleValue::Text {
                text: n.to_string(),
                wildcards: false,
            },
            YamlData::Value(Scalar::Boolean(b)) => RuleValue::Text {
                text: b.to_string(),
                wildcards: false,
            },
            YamlData::Value(Scalar::Null) => RuleValue::Null,
            YamlData::Value(Scalar::FloatingPoint(_)) => {
                return Err(bad("floating-point numbers are not supported"));
            }
            YamlData::Sequence(_) => return Err(bad("a list inside a list")),
            YamlData::Mapping(_) => return Err(bad("a mapping")),
            _ => return Err(bad("not a scalar")),
        };
        groups.push(mods.tests(value).map_err(|e| r.err(item, e))?);
    }
    let values = if mods.all() {
        Values::All(groups)
    } else {
        Values::Any(groups.into_iter().flatten().collect())
    };
    Ok(field_test(field, values))
}

/// The field a rule of this vocabulary means by `name`, or why there is none.
fn resolve_field(fields: Fields<'_>, name: &str) -> Result<Field, String> {
    if let Some(field) = fields.vocabulary.field(name) {
        return Ok(field);
    }
    if fields.vocabulary == Vocabulary::Network && NETWORK_UNAVAILABLE.contains(&name) {
        return Err(format!(
            "field '{name}' of logsource category 'network_connection' is not available: \
             tunnelwatch evaluates network_connection rules on DNS queries (the host name \
             being looked up), which carry no connection address, port or protocol"
        ));
    }
    Err(format!(
        "unknown field '{name}' for logsource category '{}'",
        fields.category_name
    ))
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
