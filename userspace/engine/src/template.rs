//! Alert message templates: Splunk-style `$field$` placeholders, checked against the fields
//! of the rule's lines (the line schema, `line/`) when the rule loads and filled from the
//! event when it fires.
//!
//! Floor 4 (one rule): may use `line`, `field` and `event`.

use crate::{event::Event, field::Category, line};

/// A parsed message template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// A line key.
    Field(&'static str),
}

/// Text a placeholder becomes when the event does not know the field.
const UNKNOWN: &str = "unknown";

impl Template {
    /// Parses `text`. A `$name$` whose name is an identifier (letters, digits, `_`, not starting
    /// with a digit) must be an output
    /// field of `category`; any other `$` is plain text.
    pub(crate) fn parse(text: &str, category: Category) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(start) = rest.find('$') {
            let after = &rest[start + 1..];
            let name_end = after.find('$');
            let name = name_end.map(|e| &after[..e]);
            match name {
                Some(name)
                    if name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
                {
                    let field = line::message_key(category, name).ok_or_else(|| {
                        format!(
                            "message names unknown field '${name}$' (not an output field of {} events)",
                            category.datamodel()
                        )
                    })?;
                    lit.push_str(&rest[..start]);
                    if !lit.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Field(field));
                    rest = &after[name.len() + 1..];
                }
                _ => {
                    lit.push_str(&rest[..=start]);
                    rest = after;
                }
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Ok(Template { pieces })
    }

    /// A template without placeholders.
    pub(crate) fn literal(text: &str) -> Template {
        Template {
            pieces: vec![Piece::Text(text.to_owned())],
        }
    }

    /// Fills the template from `event`; unknown values read [`UNKNOWN`], except `$src$`: a
    /// DNS event without a client address (Windows' DNS-Client reports none) names the host,
    /// which is the endpoint asking, as Splunk's Sysmon mapping does.
    pub(crate) fn render(&self, event: &Event) -> String {
        let mut out = String::with_capacity(128);
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(key) => {
                    let before = out.len();
                    write_field(event, key, &mut out);
                    if out.len() == before && *key == "src" {
                        write_field(event, "host", &mut out);
                    }
                    if out.len() == before {
                        out.push_str(UNKNOWN);
                    }
                }
            }
        }
        out
    }
}

/// Appends the value of line field `key`: several values joined by `", "`, nothing when
/// unknown.
fn write_field(event: &Event, key: &str, out: &mut String) {
    let start = out.len();
    line::visit(event, key, &mut |s| {
        if out.len() > start {
            out.push_str(", ");
        }
        out.push_str(s);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Platform, Process, ProcessEvent};
    use std::{sync::Arc, time::SystemTime};

    #[test]
    fn placeholders_and_plain_dollars() {
        let t = Template::parse(
            "from $parent_process_name$ on $dest$ costs $5 $9$ x$",
            Category::ProcessCreation,
        )
        .unwrap();
        assert_eq!(
            t.pieces,
            [
                Piece::Text("from ".into()),
                Piece::Field("parent_process_name"),
                Piece::Text(" on ".into()),
                Piece::Field("dest"),
                Piece::Text(" costs $5 $9$ x$".into()),
            ]
        );
        let e = Event::Process(ProcessEvent {
            time: SystemTime::UNIX_EPOCH,
            host: Arc::from("web1"),
            platform: Platform::Linux,
            process: Process::default(),
            parent: Process::default(),
            args_truncated: false,
            fileless: "".into(),
            loader: "".into(),
        });
        assert_eq!(t.render(&e), "from unknown on web1 costs $5 $9$ x$");
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert_eq!(
            Template::parse("$src$ beacons", Category::ProcessCreation).unwrap_err(),
            "message names unknown field '$src$' (not an output field of Endpoint.Processes events)"
        );
        assert!(Template::parse("$src$ beacons", Category::Dns).is_ok());
    }
}
