//! Recorded events back into [`Event`]s: the JSON lines the sensor prints (`--all-events`
//! event lines and alert lines, which carry the same CIM fields), so that `tunnelwatch replay`
//! can run the rules again and print alerts exactly as the live sensor would.
//!
//! A line keeps everything the engine matches and the emitter writes: for every event `e`,
//! emitting the event parsed from `e`'s line gives `e`'s line again, byte for byte. What a
//! line does not carry is lost: the platform (inferred, see [`infer_platform`]), the parent's
//! user, and for DNS events the parent's command line and the process's original file name.
//!
//! The sensor writes an event either as one event line (no alert) or as one alert line per
//! alert, the event repeated on each. [`Replay`] reads such a stream and yields each event
//! once.

use std::{
    fmt,
    io::BufRead,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::SystemTime,
};

use serde_json::{Map, Value};

use crate::{
    event::{DnsEvent, DnsMessageType, Event, Platform, Process, ProcessEvent},
    field::Category,
};

/// Why a recorded line could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayError {
    /// 1-based line of the input; 0 when parsing a single line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

impl std::error::Error for ReplayError {}

/// What kind of line a recorded line was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// An `--all-events` line (`"kind":"event"`).
    Event,
    /// An alert line (`"kind":"alert"`), with the id of the rule that raised it.
    Alert { rule_id: Option<String> },
}

/// A parsed line: its kind and its event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub kind: LineKind,
    pub event: Event,
}

/// The event of one recorded line (event or alert).
pub fn event_from_json_line(line: &str) -> Result<Event, ReplayError> {
    parse_line(line).map(|r| r.event)
}

/// One recorded line: its kind and its event.
pub fn parse_line(line: &str) -> Result<Recorded, ReplayError> {
    let err = |reason: String| ReplayError { line: 0, reason };
    let value: Value =
        serde_json::from_str(line).map_err(|e| err(format!("not a JSON object: {e}")))?;
    let Value::Object(map) = value else {
        return Err(err("not a JSON object".into()));
    };
    let kind = match map.get("kind").and_then(Value::as_str) {
        Some("event") => LineKind::Event,
        Some("alert") => LineKind::Alert {
            rule_id: map
                .get("rule_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        Some(other) => return Err(err(format!("unknown kind '{other}' (event or alert)"))),
        None => return Err(err("no 'kind' (event or alert)".into())),
    };
    let event = build_event(&map, &BuildOptions::default()).map_err(err)?;
    Ok(Recorded { kind, event })
}

/// Reads recorded lines and yields each event once: an event line, or the first of the
/// consecutive alert lines that repeat the same event. Blank lines are skipped.
pub struct Replay<R> {
    lines: std::io::Lines<R>,
    line: usize,
    /// The event of the last alert line, whose repeats are skipped.
    last_alert: Option<Event>,
}

impl<R: BufRead> Replay<R> {
    /// Replays `input`.
    pub fn new(input: R) -> Self {
        Replay {
            lines: input.lines(),
            line: 0,
            last_alert: None,
        }
    }
}

impl<R: BufRead> Iterator for Replay<R> {
    type Item = Result<Event, ReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let text = match self.lines.next()? {
                Ok(t) => t,
                Err(e) => {
                    self.line += 1;
                    return Some(Err(ReplayError {
                        line: self.line,
                        reason: format!("cannot read: {e}"),
                    }));
                }
            };
            self.line += 1;
            if text.trim().is_empty() {
                continue;
            }
            let rec = match parse_line(&text) {
                Ok(r) => r,
                Err(mut e) => {
                    e.line = self.line;
                    return Some(Err(e));
                }
            };
            match rec.kind {
                LineKind::Event => {
                    self.last_alert = None;
                    return Some(Ok(rec.event));
                }
                LineKind::Alert { .. } => {
                    if self.last_alert.as_ref() == Some(&rec.event) {
                        continue;
                    }
                    self.last_alert = Some(rec.event.clone());
                    return Some(Ok(rec.event));
                }
            }
        }
    }
}

/// How to read an event from fields.
#[derive(Clone, Debug, Default)]
pub(crate) struct BuildOptions {
    /// Refuse keys that are not event fields, and fill conveniences (a process name from its
    /// path); for rule test cases, written by hand.
    pub strict: bool,
    /// The platform when the fields do not name one (else it is inferred).
    pub platform: Option<Platform>,
    /// The kind of event when neither `datamodel` nor the fields tell.
    pub category: Option<Category>,
}

/// Keys every line may have besides the event's fields.
const COMMON_KEYS: &[&str] = &[
    "time",
    "host",
    "kind",
    "datamodel",
    "vendor_product",
    "platform",
];
/// Keys of alert lines.
const ALERT_KEYS: &[&str] = &[
    "rule_id",
    "rule_name",
    "rule_type",
    "severity",
    "mitre_technique_id",
    "risk_score",
    "message",
    "falsepositives",
];
const PROCESS_KEYS: &[&str] = &[
    "dest",
    "user",
    "user_id",
    "process",
    "process_name",
    "process_path",
    "process_id",
    "parent_process",
    "parent_process_name",
    "parent_process_path",
    "parent_process_id",
    "original_file_name",
    "args_truncated",
];
const DNS_KEYS: &[&str] = &[
    "query",
    "query_type",
    "message_type",
    "transaction_id",
    "reply_code",
    "reply_code_id",
    "answer",
    "answer_count",
    "src",
    "src_port",
    "dest",
    "dest_port",
    "transport",
    "process_id",
    "process_name",
    "process_path",
    "process",
    "user",
    "user_id",
    "parent_process_id",
    "parent_process_name",
    "parent_process_path",
];
/// Keys only DNS events have (`dest` is the host of process events, the server of DNS ones).
const DNS_ONLY_KEYS: &[&str] = &[
    "query",
    "query_type",
    "message_type",
    "transaction_id",
    "reply_code",
    "reply_code_id",
    "answer",
    "answer_count",
    "src",
    "src_port",
    "dest_port",
    "transport",
];

/// Typed access to the fields of one line.
struct Fields<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn str(&self, key: &str) -> Result<Option<&'a str>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("'{key}' must be a string")),
        }
    }

    fn string(&self, key: &str) -> Result<String, String> {
        Ok(self.str(key)?.unwrap_or_default().to_owned())
    }

    fn uint(&self, key: &str, max: u64) -> Result<Option<u64>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if v <= max => Ok(Some(v)),
                _ => Err(format!("'{key}' must be a whole number from 0 to {max}")),
            },
            Some(_) => Err(format!("'{key}' must be a number")),
        }
    }

    fn u32(&self, key: &str) -> Result<u32, String> {
        Ok(self.uint(key, u32::MAX.into())?.unwrap_or(0) as u32)
    }

    fn u16(&self, key: &str) -> Result<Option<u16>, String> {
        Ok(self.uint(key, u16::MAX.into())?.map(|v| v as u16))
    }

    fn bool(&self, key: &str) -> Result<bool, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("'{key}' must be true or false")),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(format!("'{key}' must be a list of strings")),
                })
                .collect(),
            Some(_) => Err(format!("'{key}' must be a list of strings")),
        }
    }

    fn ip(&self, key: &str) -> Result<Option<IpAddr>, String> {
        self.str(key)?
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("'{key}' must be an IP address, not '{s}'"))
            })
            .transpose()
    }
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

/// The last component of a path, `/` or `\` separated.
fn base_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// Builds an event from the fields of a line (or of a rule test case).
pub(crate) fn build_event(map: &Map<String, Value>, opts: &BuildOptions) -> Result<Event, String> {
    let f = Fields { map };
    let category = match f.str("datamodel")? {
        Some("Endpoint.Processes") => Category::ProcessCreation,
        Some("Network_Resolution") => Category::Dns,
        Some(other) => {
            return Err(format!(
                "unknown datamodel '{other}' (Endpoint.Processes or Network_Resolution)"
            ));
        }
        None if DNS_ONLY_KEYS.iter().any(|k| map.contains_key(*k)) => Category::Dns,
        None => opts.category.unwrap_or(Category::ProcessCreation),
    };
    let fields = match category {
        Category::ProcessCreation => PROCESS_KEYS,
        Category::Dns => DNS_KEYS,
    };
    if opts.strict
        && let Some(k) = map
            .keys()
            .find(|k| !COMMON_KEYS.contains(&k.as_str()) && !fields.contains(&k.as_str()))
    {
        let kind = match category {
            Category::ProcessCreation => "process",
            Category::Dns => "DNS",
        };
        return Err(format!(
            "unknown field '{k}' for a {kind} event (one of {})",
            fields.join(", ")
        ));
    }
    if !opts.strict
        && let Some(k) = map.keys().find(|k| {
            !COMMON_KEYS.contains(&k.as_str())
                && !ALERT_KEYS.contains(&k.as_str())
                && !fields.contains(&k.as_str())
        })
    {
        return Err(format!("unknown field '{k}'"));
    }
    let time = match f.str("time")? {
        Some(t) => humantime::parse_rfc3339(t)
            .map_err(|e| format!("'time' is not an RFC 3339 time ('{t}'): {e}"))?,
        None if opts.strict => SystemTime::UNIX_EPOCH,
        None => return Err("no 'time'".into()),
    };
    let platform = match f.str("platform")? {
        Some("linux") => Some(Platform::Linux),
        Some("windows") => Some(Platform::Windows),
        Some(p) => return Err(format!("unknown platform '{p}' (linux or windows)")),
        None => opts.platform,
    };
    let name_or_base = |name_key: &str, path_key: &str| -> Result<String, String> {
        let name = f.string(name_key)?;
        if name.is_empty() && opts.strict {
            return Ok(base_name(f.str(path_key)?.unwrap_or("")).to_owned());
        }
        Ok(name)
    };

    match category {
        Category::ProcessCreation => {
            let host = match f.str("host")? {
                Some(h) => h,
                None => f.str("dest")?.unwrap_or(""),
            };
            let process = Process {
                pid: f.u32("process_id")?,
                name: name_or_base("process_name", "process_path")?.into(),
                path: f.string("process_path")?.into(),
                command_line: f.string("process")?.into(),
                user: f.string("user")?.into(),
                user_id: f.string("user_id")?.into(),
                original_file_name: f.string("original_file_name")?.into(),
            };
            let parent = Process {
                pid: f.u32("parent_process_id")?,
                name: name_or_base("parent_process_name", "parent_process_path")?.into(),
                path: f.string("parent_process_path")?.into(),
                command_line: f.string("parent_process")?.into(),
                ..Process::default()
            };
            let platform = platform.unwrap_or_else(|| {
                infer_platform(
                    &[&process.path, &parent.path],
                    &[&process.name, &parent.name],
                )
            });
            Ok(Event::Process(ProcessEvent {
                time,
                host: Arc::from(host),
                platform,
                process,
                parent,
                args_truncated: f.bool("args_truncated")?,
            }))
        }
        Category::Dns => {
            let message_type = match f.str("message_type")? {
                Some("Query") | None => DnsMessageType::Query,
                Some("Response") => DnsMessageType::Response,
                Some(other) => {
                    return Err(format!(
                        "unknown message_type '{other}' (Query or Response)"
                    ));
                }
            };
            let transport: &'static str = match f.str("transport")? {
                None | Some("") => "",
                Some("udp") => "udp",
                Some("tcp") => "tcp",
                Some(other) => return Err(format!("unknown transport '{other}' (udp or tcp)")),
            };
            let addr = |ip_key: &str, port_key: &str| -> Result<Option<SocketAddr>, String> {
                let port = f.u16(port_key)?;
                match f.ip(ip_key)? {
                    Some(ip) => Ok(Some(SocketAddr::new(ip, port.unwrap_or(0)))),
                    None if port.is_some() => Err(format!("'{port_key}' without '{ip_key}'")),
                    None => Ok(None),
                }
            };
            let process = Process {
                pid: f.u32("process_id")?,
                name: name_or_base("process_name", "process_path")?.into(),
                path: f.string("process_path")?.into(),
                command_line: f.string("process")?.into(),
                user: f.string("user")?.into(),
                user_id: f.string("user_id")?.into(),
                original_file_name: Arc::default(),
            };
            let parent = Process {
                pid: f.u32("parent_process_id")?,
                name: name_or_base("parent_process_name", "parent_process_path")?.into(),
                path: f.string("parent_process_path")?.into(),
                ..Process::default()
            };
            let platform = platform.unwrap_or_else(|| {
                infer_platform(
                    &[&process.path, &parent.path],
                    &[&process.name, &parent.name],
                )
            });
            let known = |p: &Process| *p != Process::default();
            let reply_code_id = f.u16("reply_code_id")?;
            Ok(Event::Dns(DnsEvent {
                time,
                host: Arc::from(f.str("host")?.unwrap_or("")),
                platform,
                message_type,
                query: f.string("query")?,
                query_type: f.string("query_type")?,
                transaction_id: f.u16("transaction_id")?.unwrap_or(0),
                reply_code: f.string("reply_code")?,
                reply_code_id,
                answers: f.strings("answer")?,
                src: addr("src", "src_port")?,
                dest: addr("dest", "dest_port")?,
                transport,
                process: known(&process).then_some(process),
                parent: known(&parent).then_some(parent),
            }))
        }
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
    fn refusals_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("[1]", "not a JSON object"),
            (
                r#"{"time":"2026-01-01T00:00:00Z"}"#,
                "no 'kind' (event or alert)",
            ),
            (
                r#"{"kind":"event","datamodel":"Endpoint.Processes"}"#,
                "no 'time'",
            ),
            (
                r#"{"kind":"event","time":"x","datamodel":"Endpoint.Processes"}"#,
                "'time' is not an RFC 3339 time ('x'): ",
            ),
            (
                r#"{"kind":"event","time":"2026-01-01T00:00:00Z","datamodel":"Endpoint.Processes","process_id":-1}"#,
                "'process_id' must be a whole number from 0 to 4294967295",
            ),
            (
                r#"{"kind":"event","time":"2026-01-01T00:00:00Z","datamodel":"Network_Resolution","transport":"sctp"}"#,
                "unknown transport 'sctp' (udp or tcp)",
            ),
            (
                r#"{"kind":"event","time":"2026-01-01T00:00:00Z","datamodel":"Network_Resolution","src":"nope"}"#,
                "'src' must be an IP address, not 'nope'",
            ),
            (
                r#"{"kind":"event","time":"2026-01-01T00:00:00Z","datamodel":"Network_Resolution","frobnicate":1}"#,
                "unknown field 'frobnicate'",
            ),
            (
                r#"{"kind":"warning","time":"2026-01-01T00:00:00Z"}"#,
                "unknown kind 'warning' (event or alert)",
            ),
        ];
        for (line, want) in cases {
            let e = parse_line(line).unwrap_err();
            assert!(e.reason.starts_with(want), "{line}: {e}");
        }
    }
}
