//! Rule test cases as data: events in, alert or no alert out, written in each rule file under
//! `tunnelwatch.tests`, with the event in the CIM field names of the JSON output. Parsed here
//! with the rule; running them is `rule_tests.rs`'s job, on the top floor.
//!
//! ```yaml
//! tunnelwatch:
//!   family: ngrok
//!   tests:
//!     - name: an HTTP tunnel          # optional
//!       alert: true                   # whether this rule must fire
//!       message: A reverse proxy ...  # optional: the alert's message, exactly
//!       event:
//!         process_name: ngrok
//!         process: ngrok http 8080
//!         platform: linux             # optional: else the rule's product, else inferred
//! ```
//!
//! An event is a process event for `process_creation` rules, a connection event for
//! `network_connection` rules (`dest_ip` defaults to 0.0.0.0) and a DNS event for the others
//! (`message_type` defaults to `Query`); keys are those of the event lines (`process`,
//! `process_name`, `process_path`, `parent_process_name`, `original_file_name`, `user`,
//! `query`, `answer`, ...), plus `platform`; `process_name` defaults to the last component of
//! `process_path`. A key the event lines do not have is refused with its line.
//!
//! Floor 4 (one rule): may use `replay` (to build the events), `field`, `event`, `yaml` and
//! `error`.

use saphyr::{Scalar, YamlData};
use serde_json::{Map, Number, Value};

use crate::{
    error::SourceError,
    event::{Event, Platform},
    field::Category,
    replay::{self, BuildOptions},
    yaml::{self, Node, Reader},
};

/// One test case of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestCase {
    /// Its name (`test N` when the file gives none).
    pub name: String,
    /// The line its entry starts on.
    pub line: usize,
    /// Whether the rule must fire on the event.
    pub alert: bool,
    /// The alert's expected message, when given.
    pub message: Option<String>,
    /// The event.
    pub event: Event,
}

/// Parses `tunnelwatch.tests` of a rule reading `category` events on `platforms`.
pub(crate) fn parse(
    r: &Reader<'_>,
    node: &Node<'_>,
    category: Category,
    platforms: &[Platform],
) -> Result<Vec<TestCase>, SourceError> {
    let YamlData::Sequence(items) = &r.untagged(node)?.data else {
        return Err(r.err(node, "tunnelwatch.tests must be a list of test cases"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let (mut name, mut alert, mut message, mut event) = (None, None, None, None);
        for (k, v) in r.map(item, "each test case")? {
            match r.key(k)? {
                "name" => name = Some(r.string(v, "a test's name")?.to_owned()),
                "alert" => match &r.untagged(v)?.data {
                    YamlData::Value(Scalar::Boolean(b)) => alert = Some(*b),
                    _ => return Err(r.err(v, "a test's 'alert' must be true or false")),
                },
                "message" => message = Some(r.string(v, "a test's message")?.to_owned()),
                "event" => event = Some(v),
                other => {
                    return Err(r.err(
                        k,
                        format!(
                            "unknown key '{other}' in a test case (name, alert, message, event)"
                        ),
                    ));
                }
            }
        }
        let Some(alert) = alert else {
            return Err(r.err(item, "a test case needs 'alert: true' or 'alert: false'"));
        };
        let Some(event_node) = event else {
            return Err(r.err(item, "a test case needs an 'event'"));
        };
        if message.is_some() && !alert {
            return Err(r.err(
                item,
                "a test case with 'alert: false' cannot expect a message",
            ));
        }
        let fields = to_json_map(r, event_node)?;
        let opts = BuildOptions {
            strict: true,
            platform: (platforms.len() == 1).then(|| platforms[0]),
            category: Some(category),
        };
        let event = replay::build_event(&fields, &opts)
            .map_err(|e| r.err(event_node, format!("bad test event: {e}")))?;
        if Category::of(&event) != category {
            let kind = |c: Category| match c {
                Category::ProcessCreation => "a process event (Endpoint.Processes)",
                Category::Dns => "a DNS event (Network_Resolution)",
                Category::NetworkConnection => "a connection event (Network_Traffic)",
            };
            return Err(r.err(
                event_node,
                format!(
                    "bad test event: {}, but the rule reads {}",
                    kind(Category::of(&event)),
                    kind(category)
                        .replacen("a ", "", 1)
                        .replacen("event", "events", 1)
                ),
            ));
        }
        out.push(TestCase {
            name: name.unwrap_or_else(|| format!("test {}", n + 1)),
            line: yaml::line(item),
            alert,
            message,
            event,
        });
    }
    Ok(out)
}

/// A YAML mapping of scalars and lists of scalars as JSON, for the event builder.
pub(crate) fn to_json_map(
    r: &Reader<'_>,
    node: &Node<'_>,
) -> Result<Map<String, Value>, SourceError> {
    let scalar = |v: &Node<'_>| -> Result<Value, SourceError> {
        Ok(match &r.untagged(v)?.data {
            YamlData::Value(Scalar::String(s)) => Value::String(s.to_string()),
            YamlData::Value(Scalar::Integer(n)) => Value::Number(Number::from(*n)),
            YamlData::Value(Scalar::Boolean(b)) => Value::Bool(*b),
            YamlData::Value(Scalar::Null) => Value::Null,
            _ => {
                return Err(r.err(
                    v,
                    format!(
                        "test event values must be scalars, not {}",
                        yaml::type_name(v)
                    ),
                ));
            }
        })
    };
    let mut out = Map::new();
    for (k, v) in r.map(node, "a test event")? {
        let key = r.key(k)?;
        let value = match &r.untagged(v)?.data {
            YamlData::Sequence(items) => {
                Value::Array(items.iter().map(scalar).collect::<Result<_, _>>()?)
            }
            _ => scalar(v)?,
        };
        out.insert(key.to_owned(), value);
    }
    Ok(out)
}
