//! The line schema: every JSON line the engine writes, one object per line with Splunk CIM
//! field names, and reads back (`replay`, rule test cases). A [`Line`] is a [`Head`] (`time`,
//! `host`, `kind`), an alert's [`AlertFields`] on alert lines, the [`Source`] (`datamodel`,
//! `vendor_product`) and the event's [`Body`]: a [`ProcessLine`] (Endpoint.Processes), a
//! [`DnsLine`] (Network_Resolution) or a [`ConnectionLine`] (Network_Traffic), then where its
//! process runs ([`ContainerLine`]: the container and namespaces, on every line whose event has
//! a process). A correlation alert stands for several events: its [`CorrelationLine`] carries
//! the group's values and a [`Summary`] instead of a body. A summary line (`"kind":"summary"`,
//! folded repeats of an alert) is an alert line whose alert fields are followed by its
//! [`Repeats`].
//!
//! Each part is declared once, with `line_fields!`: one line per field, its key and its type.
//! From that come the struct, its keys (what `replay` accepts, in the order lines are written),
//! how it is written (unknown values left out), how it is read back (errors name the key), and
//! the lookup by key that message templates (`$field$`) and allowlists use. The types, and what
//! "unknown" means for each, are in `value.rs`. A part's `From<&Event>` and `into_event` sit
//! beside its declaration.
//!
//! To add a field to an alert line: a field in the part (`dns.rs`, `process.rs`,
//! `connection.rs`), its value in
//! `From` and `into_event`, and in `event.rs` if the event does not carry it yet. A new kind of
//! event: a part of its own and a variant of [`Body`].
//!
//! Floor 1 (events, fields and lines): may use `event` and `field`.

use std::{borrow::Cow, time::SystemTime};

use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Map, Value};

use crate::{
    event::{Event, Platform, Process},
    field::Category,
};

mod connection;
mod container;
mod correlation;
mod dns;
mod process;
pub(crate) mod value;

pub use connection::ConnectionLine;
pub use container::ContainerLine;
pub use correlation::{CORRELATION_TYPE, CorrelationLine, Summary};
pub use dns::DnsLine;
pub use process::ProcessLine;
pub use value::{Required, Transport};

/// A JSON object, as a recorded line is read.
pub(crate) type JsonMap = Map<String, Value>;

/// One part of a line, declared with `line_fields!`.
pub(crate) trait Part<'a>: Sized {
    /// Its keys, in the order they are written.
    const KEYS: &'static [&'static str];
    /// Writes the fields whose value is known.
    fn write<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error>;
    /// Reads the fields from a recorded line (other keys are not looked at).
    fn read(map: &'a JsonMap) -> Result<Self, String>;
    /// Calls `f` with the text of field `key` (nothing when unknown); false when the part has
    /// no such field.
    fn visit(&self, key: &str, f: &mut dyn FnMut(&str)) -> bool;
    /// Whether field `key` is text a message may show.
    fn is_text(key: &str) -> bool;
}

/// Declares a part of a line: a struct of `key: Type` fields (types of `value.rs`) and its
/// [`Part`] implementation.
macro_rules! line_fields {
    (
        $(#[$meta:meta])*
        pub struct $name:ident<'a> {
            $( $(#[$fmeta:meta])* $key:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name<'a> {
            $( $(#[$fmeta])* pub $key: $ty, )*
        }

        impl<'a> $crate::line::Part<'a> for $name<'a> {
            const KEYS: &'static [&'static str] = &[$(stringify!($key)),*];

            fn write<M: ::serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
                $(
                    if !$crate::line::value::FieldValue::is_unknown(&self.$key) {
                        map.serialize_entry(
                            stringify!($key),
                            &$crate::line::value::Write(&self.$key),
                        )?;
                    }
                )*
                Ok(())
            }

            fn read(map: &'a $crate::line::JsonMap) -> Result<Self, String> {
                Ok($name {
                    $(
                        $key: $crate::line::value::FieldValue::read(
                            map.get(stringify!($key)),
                            stringify!($key),
                        )?,
                    )*
                })
            }

            fn visit(&self, key: &str, f: &mut dyn FnMut(&str)) -> bool {
                match key {
                    $( stringify!($key) => $crate::line::value::FieldValue::visit(&self.$key, f), )*
                    _ => return false,
                }
                true
            }

            fn is_text(key: &str) -> bool {
                match key {
                    $( stringify!($key) => <$ty as $crate::line::value::FieldValue<'a>>::TEXT, )*
                    _ => false,
                }
            }
        }
    };
}
pub(crate) use line_fields;

line_fields! {
    /// What every line starts with.
    pub struct Head<'a> {
        /// When the event happened (RFC 3339, UTC, microseconds).
        time: Option<SystemTime>,
        /// The host it happened on.
        host: &'a str,
        /// `event` or `alert`.
        kind: Required<'a>,
    }
}

line_fields! {
    /// What an alert line adds: the rule that fired and its message.
    pub struct AlertFields<'a> {
        rule_id: Option<&'a str>,
        rule_name: Required<'a>,
        /// Splunk analytic type (Anomaly, TTP, ...).
        rule_type: Option<&'a str>,
        /// Sigma `level`.
        severity: Option<&'a str>,
        mitre_technique_id: Cow<'a, [String]>,
        risk_score: Option<u32>,
        message: Required<'a>,
        /// The rule's Sigma `falsepositives`, for the analyst.
        falsepositives: Cow<'a, [String]>,
    }
}

line_fields! {
    /// What a summary line adds to its alert's fields: the alerts it folds (repeats of the
    /// alert printed first, with the same rule, process and key) and Splunk's `tstats` names
    /// for the time of the first and the last of them.
    #[allow(non_snake_case)]
    pub struct Repeats<'a> {
        /// What the repeats have in common besides the rule and the process: the command
        /// line, the registered domain of the query, or the destination.
        fold_key: &'a str,
        count: Option<u64>,
        firstTime: Option<SystemTime>,
        lastTime: Option<SystemTime>,
    }
}

line_fields! {
    /// Where the event's fields come from.
    pub struct Source<'a> {
        /// The CIM data model of the body.
        datamodel: Required<'a>,
        /// Always [`VENDOR_PRODUCT`].
        vendor_product: Required<'a>,
    }
}

/// `vendor_product` of every line.
pub const VENDOR_PRODUCT: &str = "tunnelwatch";

/// Keys a recorded line may have that no line is written with: the platform, which the lines
/// leave to be inferred (see [`infer_platform`]) but a hand-written line may state.
pub(crate) const READ_ONLY_KEYS: &[&str] = &["platform"];

/// The CIM fields of one event, by kind of event.
#[derive(Clone, Debug, PartialEq)]
pub enum Body<'a> {
    Process(ProcessLine<'a>),
    Dns(DnsLine<'a>),
    Connection(ConnectionLine<'a>),
}

impl<'a> Body<'a> {
    /// The fields of `event`, borrowed from it.
    pub fn of(event: &'a Event) -> Body<'a> {
        match event {
            Event::Process(e) => Body::Process(e.into()),
            Event::Dns(e) => Body::Dns(e.into()),
            Event::Connection(e) => Body::Connection(e.into()),
        }
    }

    /// The keys of the bodies of `category` events, in the order they are written.
    pub fn keys(category: Category) -> &'static [&'static str] {
        match category {
            Category::ProcessCreation => ProcessLine::KEYS,
            Category::Dns => DnsLine::KEYS,
            Category::NetworkConnection => ConnectionLine::KEYS,
        }
    }

    /// Reads the body of a `category` event from a recorded line.
    pub(crate) fn read(category: Category, map: &'a JsonMap) -> Result<Body<'a>, String> {
        Ok(match category {
            Category::ProcessCreation => Body::Process(ProcessLine::read(map)?),
            Category::Dns => Body::Dns(DnsLine::read(map)?),
            Category::NetworkConnection => Body::Connection(ConnectionLine::read(map)?),
        })
    }

    /// The event these fields describe.
    pub(crate) fn into_event(self, c: &Context<'_>) -> Result<Event, String> {
        Ok(match self {
            Body::Process(p) => Event::Process(p.into_event(c)),
            Body::Dns(d) => Event::Dns(d.into_event(c)?),
            Body::Connection(n) => Event::Connection(n.into_event(c)?),
        })
    }

    fn write<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        match self {
            Body::Process(p) => p.write(map),
            Body::Dns(d) => d.write(map),
            Body::Connection(n) => n.write(map),
        }
    }

    fn visit(&self, key: &str, f: &mut dyn FnMut(&str)) -> bool {
        match self {
            Body::Process(p) => p.visit(key, f),
            Body::Dns(d) => d.visit(key, f),
            Body::Connection(n) => n.visit(key, f),
        }
    }

    fn is_text(category: Category, key: &str) -> bool {
        match category {
            Category::ProcessCreation => ProcessLine::is_text(key),
            Category::Dns => DnsLine::is_text(key),
            Category::NetworkConnection => ConnectionLine::is_text(key),
        }
    }
}

/// One line: what the emitter writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Line<'a> {
    pub head: Head<'a>,
    /// On alert and summary lines.
    pub alert: Option<AlertFields<'a>>,
    /// On summary lines.
    pub repeats: Option<Repeats<'a>>,
    pub source: Source<'a>,
    pub body: Body<'a>,
    /// The container and namespaces of the event's process (all unknown for a host process).
    pub container: ContainerLine<'a>,
}

impl<'a> Line<'a> {
    /// The line of `event`: an alert line with `alert`, else an event line.
    pub fn new(event: &'a Event, alert: Option<AlertFields<'a>>) -> Line<'a> {
        Line {
            head: Head {
                time: Some(event.time()),
                host: event.host(),
                kind: Required(if alert.is_some() { "alert" } else { "event" }),
            },
            alert,
            repeats: None,
            source: Source {
                datamodel: Required(Category::of(event).datamodel()),
                vendor_product: Required(VENDOR_PRODUCT),
            },
            body: Body::of(event),
            container: ContainerLine::of(event.process()),
        }
    }

    /// The summary line of the repeats of `alert`, first raised on `event`: timed at the
    /// last repeat.
    pub fn summary(event: &'a Event, alert: AlertFields<'a>, repeats: Repeats<'a>) -> Line<'a> {
        let mut line = Line::new(event, Some(alert));
        line.head.time = repeats.lastTime;
        line.head.kind = Required("summary");
        line.repeats = Some(repeats);
        line
    }
}

impl Serialize for Line<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        self.head.write(&mut map)?;
        if let Some(alert) = &self.alert {
            alert.write(&mut map)?;
        }
        if let Some(repeats) = &self.repeats {
            repeats.write(&mut map)?;
        }
        self.source.write(&mut map)?;
        self.body.write(&mut map)?;
        self.container.write(&mut map)?;
        map.end()
    }
}

/// Calls `f` with the text of field `key` of `event`'s line (nothing when unknown; each
/// answer of a list): the head's `host` or a body field. False when its line has no such key.
/// For message templates and allowlists, which run per alert.
pub(crate) fn visit(event: &Event, key: &str, f: &mut dyn FnMut(&str)) -> bool {
    if key == "host" {
        value::FieldValue::visit(&event.host(), f);
        return true;
    }
    Body::of(event).visit(key, f) || ContainerLine::of(event.process()).visit(key, f)
}

/// The field `name` of `category` lines as a message template may name it: `host`, or a text
/// field of the body (not a flag).
pub(crate) fn message_key(category: Category, name: &str) -> Option<&'static str> {
    if name == "host" {
        return Some("host");
    }
    Body::keys(category)
        .iter()
        .find(|k| **k == name && Body::is_text(category, k))
        .or_else(|| {
            ContainerLine::KEYS
                .iter()
                .find(|k| **k == name && ContainerLine::is_text(k))
        })
        .copied()
}

/// Whether every line of its kind has `key` from its head, alert fields or source
/// (`time`, `host`, `rule_id`, `vendor_product`, ...), whatever its body.
pub(crate) fn is_own_key(key: &str) -> bool {
    Head::KEYS.contains(&key) || AlertFields::KEYS.contains(&key) || Source::KEYS.contains(&key)
}

/// A pid, or `None` for 0 (unknown).
pub(crate) fn pid(p: u32) -> Option<u32> {
    (p != 0).then_some(p)
}

/// What turns a body into an event besides its own fields.
pub(crate) struct Context<'a> {
    pub time: SystemTime,
    /// The head's `host` (empty when the line has none).
    pub host: &'a str,
    /// The platform, when the line (or a rule test case) names it; else inferred.
    pub platform: Option<Platform>,
    /// A hand-written rule test event: a process name defaults to its path's last component.
    pub strict: bool,
}

impl Context<'_> {
    /// A process from its fields on a line; in a test event, its name defaults to the last
    /// component of its path. What the line does not say stays unknown.
    pub(crate) fn process(
        &self,
        pid: Option<u32>,
        name: &str,
        path: &str,
        command_line: &str,
    ) -> Process {
        let name = if name.is_empty() && self.strict {
            base_name(path)
        } else {
            name
        };
        Process {
            pid: pid.unwrap_or(0),
            name: name.into(),
            path: path.into(),
            command_line: command_line.into(),
            ..Process::default()
        }
    }

    /// The platform given, or the one the paths and names point to.
    pub(crate) fn platform(&self, paths: &[&str], names: &[&str]) -> Platform {
        self.platform
            .unwrap_or_else(|| infer_platform(paths, names))
    }
}

/// The last component of a path, `/` or `\` separated.
fn base_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// The platform of an event whose line does not say: Windows when a known path is a Windows
/// path (a backslash or a drive letter) or, without paths, when an image name ends in `.exe`;
/// Linux otherwise.
pub fn infer_platform(paths: &[&str], names: &[&str]) -> Platform {
    let windows_path = |p: &str| {
        p.contains('\\')
            || (p.len() >= 2 && p.as_bytes()[0].is_ascii_alphabetic() && p.as_bytes()[1] == b':')
    };
    if let Some(p) = paths.iter().find(|p| !p.is_empty()) {
        return if windows_path(p) {
            Platform::Windows
        } else {
            Platform::Linux
        };
    }
    if names
        .iter()
        .any(|n| n.len() > 4 && n.as_bytes()[n.len() - 4..].eq_ignore_ascii_case(b".exe"))
    {
        Platform::Windows
    } else {
        Platform::Linux
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_inference() {
        assert_eq!(
            infer_platform(&[r"C:\x\ngrok.exe"], &["ngrok.exe"]),
            Platform::Windows
        );
        assert_eq!(
            infer_platform(&["/tmp/ngrok.exe"], &["ngrok.exe"]),
            Platform::Linux
        );
        assert_eq!(infer_platform(&["", ""], &["ngrok.EXE"]), Platform::Windows);
        assert_eq!(infer_platform(&[], &["ngrok"]), Platform::Linux);
        assert_eq!(
            infer_platform(&["", r"\\srv\share\x"], &[]),
            Platform::Windows
        );
    }

    #[test]
    fn messages_may_name_the_host_and_text_fields() {
        let p = Category::ProcessCreation;
        assert_eq!(message_key(p, "host"), Some("host"));
        assert_eq!(
            message_key(p, "parent_process_name"),
            Some("parent_process_name")
        );
        assert_eq!(message_key(p, "src"), None);
        assert_eq!(message_key(p, "args_truncated"), None);
        assert_eq!(message_key(p, "time"), None);
        assert_eq!(
            message_key(Category::Dns, "answer_count"),
            Some("answer_count")
        );
    }
}
