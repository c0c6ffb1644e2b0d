//! The fields rules name: which spelling means which field for each Sigma log source
//! category (the Sigma taxonomy's names and the CIM names of the lines), and how a field's
//! value is read from an [`Event`] without allocating, for the matcher. (What alert lines
//! carry, and what messages and allowlists name, is the line schema's: `line/`.)
//!
//! Sigma field names are case-sensitive: only the spellings listed here are accepted. To let
//! rules match a new event field: a [`Field`] variant, its names in the vocabularies, and its
//! arm in [`Field::value`].
//!
//! Floor 1 (events, fields and lines): may use `event` and `query_name`.

use std::{
    fmt::{self, Write as _},
    net::IpAddr,
};

use crate::{
    event::{ConnectionEvent, DnsMessageType, Event, Process},
    query_name,
};

/// A Sigma `logsource.category` the engine evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    /// `process_creation`: process-start events (CIM Endpoint.Processes).
    ProcessCreation,
    /// `dns_query` or `dns`: DNS events (CIM Network_Resolution).
    Dns,
    /// `network_connection`: outbound connections (CIM Network_Traffic).
    NetworkConnection,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 3] = [
        Category::ProcessCreation,
        Category::Dns,
        Category::NetworkConnection,
    ];

    /// The CIM data model of events of this category.
    pub fn datamodel(self) -> &'static str {
        match self {
            Category::ProcessCreation => "Endpoint.Processes",
            Category::Dns => "Network_Resolution",
            Category::NetworkConnection => "Network_Traffic",
        }
    }

    /// The category of `event`.
    pub fn of(event: &Event) -> Category {
        match event {
            Event::Process(_) => Category::ProcessCreation,
            Event::Dns(_) => Category::Dns,
            Event::Connection(_) => Category::NetworkConnection,
        }
    }
}

/// Something an event can say. For DNS events the process fields describe the process that
/// made the lookup; for connections, the process that connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// Image name, the last component of the path (CIM `process_name`).
    ProcessName,
    /// Full image path (Sigma `Image`, CIM `process_path`).
    ProcessPath,
    /// Command line (Sigma `CommandLine`, CIM `process`).
    CommandLine,
    /// What the image really is (Sigma `OriginalFileName`, CIM `original_file_name`).
    OriginalFileName,
    /// Process id (Sigma `ProcessId`, CIM `process_id`); 0 counts as unknown.
    ProcessId,
    /// User name (Sigma `User`, CIM `user`).
    User,
    /// Numeric uid or SID (CIM `user_id`).
    UserId,
    /// Parent's image name (CIM `parent_process_name`).
    ParentName,
    /// Parent's image path (Sigma `ParentImage`, CIM `parent_process_path`).
    ParentPath,
    /// Parent's command line (Sigma `ParentCommandLine`, CIM `parent_process`).
    ParentCommandLine,
    /// Parent's process id (Sigma `ParentProcessId`, CIM `parent_process_id`); 0 is unknown.
    ParentId,
    /// The host the event was seen on (CIM `dest` of process events, and `host`).
    Host,
    /// The name looked up (Sigma `QueryName`/`query`, CIM `query`).
    Query,
    /// The record type asked for (Sigma `record_type`, CIM `query_type`).
    QueryType,
    /// The registered domain of the name looked up (`query_registered_domain`: the public
    /// suffix plus one label), absent when the name is a public suffix.
    QueryRegisteredDomain,
    /// How many labels the name looked up has (`query_label_count`).
    QueryLabelCount,
    /// The length of its longest label (`query_longest_label`).
    QueryLongestLabel,
    /// The Shannon entropy, in bits per byte, of the longest label of the name looked up
    /// (`query_entropy`); absent for the empty name.
    QueryEntropy,
    /// `Query` or `Response` (CIM `message_type`).
    MessageType,
    /// DNS transaction id (CIM `transaction_id`).
    TransactionId,
    /// Response code name, e.g. `NXDomain` (CIM `reply_code`); responses only.
    ReplyCode,
    /// Numeric response code (CIM `reply_code_id`); responses only.
    ReplyCodeId,
    /// Sysmon's `QueryStatus`: 0 for NoError, else 9000 + response code (the Windows
    /// `DNS_ERROR_RCODE_*` values, e.g. 9003 for NXDomain); responses only.
    QueryStatus,
    /// Answer records, several values (Sigma `answer`/`QueryResults`, CIM `answer`).
    Answer,
    /// Number of answers (CIM `answer_count`); responses only.
    AnswerCount,
    /// Client address (CIM `src` of DNS events, `src_ip` of connections).
    Src,
    /// Client port (CIM `src_port`).
    SrcPort,
    /// A connection's remote address (Sigma `DestinationIp`, CIM `dest_ip`).
    DestIp,
    /// A connection's remote port (Sigma `DestinationPort`, CIM `dest_port`).
    DestPort,
    /// A connection's destination name: its TLS or QUIC server name, else the DNS answer's
    /// name (Sigma `DestinationHostname`, CIM `dest` of connections).
    DestName,
    /// `true` or `false`: whether the destination address is IPv6 (Sigma
    /// `DestinationIsIpv6`).
    DestIsIpv6,
    /// `true` or `false` for the source address (Sigma `SourceIsIpv6`).
    SrcIsIpv6,
    /// How the destination name was learned: `tls`, `quic` or `dns` (`dest_name_source`).
    NameSource,
    /// The ClientHello's server name (`server_name`).
    ServerName,
    /// The ClientHello's ALPN protocols, several values (`alpn`).
    Alpn,
    /// The application protocol the first flight showed (CIM `app`).
    App,
    /// The name a DNS answer gave the destination address (`dns_name`).
    DnsName,
    /// DNS server address (CIM `dest` of DNS events).
    DnsServer,
    /// DNS server port (CIM `dest_port`).
    DnsServerPort,
    /// `udp` or `tcp` (CIM `transport`).
    Transport,
    /// Sysmon's `Initiated` of a network connection: `true` on every connection this sensor
    /// reports (they are all outbound). Only `network_connection` rules read it.
    Initiated,
    /// How the program runs without a file on disk: `memfd` or `deleted` (tunnelwatch's
    /// `ProcessFileless`, CIM-style `process_fileless`); absent when it has a file.
    Fileless,
    /// The container the process runs in: its id (CIM-style `container_id`), runtime, name,
    /// image, and its Kubernetes pod's uid, name and namespace. Absent for host processes.
    ContainerId,
    ContainerRuntime,
    ContainerName,
    ContainerImage,
    PodUid,
    PodName,
    PodNamespace,
    /// Parent's user name (Sysmon `ParentUser`). The sensors know it; the event lines do not
    /// carry it, so `replay` does not either.
    ParentUser,
    /// A Sysmon process-creation field no sensor reports yet, by its Sigma name: `Hashes`,
    /// `Product`, `Description`, `Company`, `FileVersion`, `IntegrityLevel`, ... Always absent,
    /// so that a rule naming one loads and its selections on it never match.
    Unreported(&'static str),
}

/// Sysmon process-creation fields no sensor reports (yet). The PE version resource ones
/// (`Product`, `Description`, `Company`, `FileVersion`) and `Hashes` could be filled by the
/// Windows sensor once the event model has a place for them.
const UNREPORTED: &[&str] = &[
    "Hashes",
    "Product",
    "Description",
    "Company",
    "FileVersion",
    "IntegrityLevel",
    "CurrentDirectory",
    "LogonId",
    "LogonGuid",
    "TerminalSessionId",
    "ProcessGuid",
    "ParentProcessGuid",
];

use Field::*;

/// Names rules of category `process_creation` may use.
const PROCESS_RULE_FIELDS: &[(&str, Field)] = &[
    // Sigma taxonomy.
    ("Image", ProcessPath),
    ("CommandLine", CommandLine),
    ("OriginalFileName", OriginalFileName),
    ("ParentImage", ParentPath),
    ("ParentCommandLine", ParentCommandLine),
    ("User", User),
    ("ProcessId", ProcessId),
    ("ParentProcessId", ParentId),
    ("ParentUser", ParentUser),
    // No Sigma taxonomy name: tunnelwatch's own, in Sigma's spelling.
    ("ProcessFileless", Fileless),
    // Splunk CIM Endpoint.Processes.
    ("process_name", ProcessName),
    ("process_path", ProcessPath),
    ("process", CommandLine),
    ("original_file_name", OriginalFileName),
    ("process_fileless", Fileless),
    ("parent_process_name", ParentName),
    ("parent_process_path", ParentPath),
    ("parent_process", ParentCommandLine),
    ("user", User),
    ("user_id", UserId),
    ("process_id", ProcessId),
    ("parent_process_id", ParentId),
    ("dest", Host),
    // Where the process runs (tunnelwatch's names, on every line with a process).
    ("container_id", ContainerId),
    ("container_runtime", ContainerRuntime),
    ("container_name", ContainerName),
    ("container_image", ContainerImage),
    ("pod_uid", PodUid),
    ("pod_name", PodName),
    ("pod_namespace", PodNamespace),
];

/// Names rules of categories `dns_query` and `dns` may use.
const DNS_RULE_FIELDS: &[(&str, Field)] = &[
    // Sigma taxonomy (Sysmon event 22 and the `dns` category).
    ("QueryName", Query),
    ("QueryStatus", QueryStatus),
    ("QueryResults", Answer),
    ("Image", ProcessPath),
    ("User", User),
    ("ProcessId", ProcessId),
    ("record_type", QueryType),
    // Splunk CIM Network_Resolution (and the Sigma `dns` names `query`, `answer`).
    ("query", Query),
    ("query_type", QueryType),
    ("reply_code", ReplyCode),
    ("reply_code_id", ReplyCodeId),
    ("answer", Answer),
    ("src", Src),
    ("dest", DnsServer),
    ("transport", Transport),
    ("message_type", MessageType),
    ("process_name", ProcessName),
    ("process_path", ProcessPath),
    ("process", CommandLine),
    ("process_id", ProcessId),
    ("user", User),
    ("user_id", UserId),
    ("parent_process_name", ParentName),
    ("parent_process_path", ParentPath),
    // The shape of the name (`query_name.rs`).
    ("query_registered_domain", QueryRegisteredDomain),
    ("query_label_count", QueryLabelCount),
    ("query_longest_label", QueryLongestLabel),
    ("query_entropy", QueryEntropy),
    // Where the process runs (tunnelwatch's names, on every line with a process).
    ("container_id", ContainerId),
    ("container_runtime", ContainerRuntime),
    ("container_name", ContainerName),
    ("container_image", ContainerImage),
    ("pod_uid", PodUid),
    ("pod_name", PodName),
    ("pod_namespace", PodNamespace),
];

/// Names rules of category `network_connection` may use: the Sigma taxonomy (Sysmon event 3)
/// and the CIM names of connection lines.
const NETWORK_RULE_FIELDS: &[(&str, Field)] = &[
    // Sigma taxonomy (Sysmon event 3).
    ("DestinationHostname", DestName),
    ("DestinationIp", DestIp),
    ("DestinationPort", DestPort),
    ("DestinationIsIpv6", DestIsIpv6),
    ("SourceIp", Src),
    ("SourcePort", SrcPort),
    ("SourceIsIpv6", SrcIsIpv6),
    ("SourceHostname", Host),
    ("Protocol", Transport),
    ("Initiated", Initiated),
    ("Image", ProcessPath),
    ("User", User),
    ("ProcessId", ProcessId),
    ("CommandLine", CommandLine),
    ("ParentImage", ParentPath),
    // Splunk CIM Network_Traffic names of connection lines, and ours.
    ("dest", DestName),
    ("dest_ip", DestIp),
    ("dest_port", DestPort),
    ("src_ip", Src),
    ("src_port", SrcPort),
    ("transport", Transport),
    ("app", App),
    ("server_name", ServerName),
    ("alpn", Alpn),
    ("dns_name", DnsName),
    ("dest_name_source", NameSource),
    ("process_name", ProcessName),
    ("process_path", ProcessPath),
    ("process", CommandLine),
    ("process_id", ProcessId),
    ("user", User),
    ("user_id", UserId),
    ("parent_process_name", ParentName),
    ("parent_process_path", ParentPath),
    // Where the process runs (tunnelwatch's names, on every line with a process).
    ("container_id", ContainerId),
    ("container_runtime", ContainerRuntime),
    ("container_name", ContainerName),
    ("container_image", ContainerImage),
    ("pod_uid", PodUid),
    ("pod_name", PodName),
    ("pod_namespace", PodNamespace),
];

/// `network_connection` fields no sensor reports: the reason a rule naming one is refused (the
/// services of ports by name).
pub(crate) const NETWORK_UNAVAILABLE: &[&str] = &["DestinationPortName", "SourcePortName"];

/// The field vocabulary of a Sigma log source category: which names a rule may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Vocabulary {
    /// `process_creation`.
    Process,
    /// `dns_query` and `dns`.
    Dns,
    /// `network_connection`.
    Network,
}

impl Vocabulary {
    /// The vocabulary of a Sigma `logsource.category`, and the kind of events it reads.
    pub(crate) fn from_sigma(name: &str) -> Option<(Vocabulary, Category)> {
        match name {
            "process_creation" => Some((Vocabulary::Process, Category::ProcessCreation)),
            "dns_query" | "dns" => Some((Vocabulary::Dns, Category::Dns)),
            "network_connection" => Some((Vocabulary::Network, Category::NetworkConnection)),
            _ => None,
        }
    }

    /// The field a rule of this vocabulary means by `name`.
    pub(crate) fn field(self, name: &str) -> Option<Field> {
        let table = match self {
            Vocabulary::Process => PROCESS_RULE_FIELDS,
            Vocabulary::Dns => DNS_RULE_FIELDS,
            Vocabulary::Network => NETWORK_RULE_FIELDS,
        };
        lookup(table, name).or_else(|| {
            (self == Vocabulary::Process)
                .then(|| UNREPORTED.iter().find(|n| **n == name))
                .flatten()
                .map(|n| Unreported(n))
        })
    }
}

fn lookup(table: &[(&str, Field)], name: &str) -> Option<Field> {
    table.iter().find(|(n, _)| *n == name).map(|&(_, f)| f)
}

impl Field {
    /// Whether no sensor reports this field yet (it is always absent).
    pub fn is_unreported(self) -> bool {
        matches!(self, Unreported(_))
    }

    /// Whether the field's value is text (as opposed to a number or an address), so that the
    /// literal prefilter can search it.
    pub(crate) fn is_text(self) -> bool {
        matches!(
            self,
            ProcessName
                | ProcessPath
                | CommandLine
                | OriginalFileName
                | User
                | ParentUser
                | Fileless
                | UserId
                | ParentName
                | ParentPath
                | ParentCommandLine
                | Host
                | Query
                | QueryType
                | QueryRegisteredDomain
                | MessageType
                | ReplyCode
                | Answer
                | Transport
                | Initiated
                | DestName
                | DestIsIpv6
                | SrcIsIpv6
                | NameSource
                | ServerName
                | Alpn
                | App
                | DnsName
                | ContainerId
                | ContainerRuntime
                | ContainerName
                | ContainerImage
                | PodUid
                | PodName
                | PodNamespace
        )
    }

    /// Whether only DNS responses carry this field (so a rule using it waits for the response).
    pub fn is_response_only(self) -> bool {
        matches!(
            self,
            ReplyCode | ReplyCodeId | QueryStatus | Answer | AnswerCount
        )
    }

    /// This field's value in `event`. Empty strings, absent processes, pid 0 and unknown
    /// addresses are [`Value::Absent`].
    pub(crate) fn value(self, event: &Event) -> Value<'_> {
        match event {
            Event::Connection(e) => connection_value(self, e),
            Event::Process(e) => match self {
                Host => Value::str(&e.host),
                ProcessName | ProcessPath | CommandLine | OriginalFileName | ProcessId | User
                | UserId | ContainerId | ContainerRuntime | ContainerName | ContainerImage
                | PodUid | PodName | PodNamespace => process_value(self, &e.process),
                ParentName => Value::str(&e.parent.name),
                ParentPath => Value::str(&e.parent.path),
                ParentCommandLine => Value::str(&e.parent.command_line),
                ParentId => Value::pid(e.parent.pid),
                ParentUser => Value::str(&e.parent.user),
                Fileless => Value::str(&e.fileless),
                _ => Value::Absent,
            },
            Event::Dns(e) => {
                let response = e.message_type == DnsMessageType::Response;
                match self {
                    Host => Value::str(&e.host),
                    Query => Value::str(&e.query),
                    QueryType => Value::str(&e.query_type),
                    QueryRegisteredDomain => {
                        query_name::registered_domain(&e.query).map_or(Value::Absent, Value::str)
                    }
                    QueryLabelCount => Value::Int(query_name::label_count(&e.query) as u64),
                    QueryLongestLabel => Value::Int(query_name::longest_label(&e.query) as u64),
                    QueryEntropy => {
                        query_name::entropy(&e.query).map_or(Value::Absent, Value::Float)
                    }
                    MessageType => Value::Str(e.message_type.as_str()),
                    TransactionId => Value::Int(e.transaction_id.into()),
                    ReplyCode => Value::str(&e.reply_code),
                    ReplyCodeId => e
                        .reply_code_id
                        .map_or(Value::Absent, |c| Value::Int(c.into())),
                    QueryStatus => e.reply_code_id.map_or(Value::Absent, |c| {
                        Value::Int(if c == 0 { 0 } else { 9000 + u64::from(c) })
                    }),
                    Answer if e.answers.iter().any(|a| !a.is_empty()) => Value::Strs(&e.answers),
                    Answer => Value::Absent,
                    AnswerCount if response => Value::Int(e.answers.len() as u64),
                    AnswerCount => Value::Absent,
                    Src => e.src.map_or(Value::Absent, |a| Value::Ip(a.ip())),
                    SrcPort => e.src.map_or(Value::Absent, |a| Value::Int(a.port().into())),
                    DnsServer => e.dest.map_or(Value::Absent, |a| Value::Ip(a.ip())),
                    DnsServerPort => e
                        .dest
                        .map_or(Value::Absent, |a| Value::Int(a.port().into())),
                    Transport => Value::str(e.transport),
                    _ => process_or_parent(self, e.process.as_ref(), e.parent.as_ref()),
                }
            }
        }
    }
}

/// A field of a connection.
fn connection_value(field: Field, e: &ConnectionEvent) -> Value<'_> {
    let flag = |b: bool| Value::Str(if b { "true" } else { "false" });
    match field {
        Host => Value::str(&e.host),
        DestIp => Value::Ip(canonical_ip(e.dest.ip())),
        DestPort => Value::Int(e.dest.port().into()),
        DestName => Value::str(&e.dest_name),
        DestIsIpv6 => flag(e.dest.is_ipv6()),
        Src => e
            .src
            .map_or(Value::Absent, |a| Value::Ip(canonical_ip(a.ip()))),
        SrcPort => e
            .src
            .filter(|a| a.port() != 0)
            .map_or(Value::Absent, |a| Value::Int(a.port().into())),
        SrcIsIpv6 => e.src.map_or(Value::Absent, |a| flag(a.is_ipv6())),
        Transport => Value::str(e.transport),
        Initiated => Value::Str("true"),
        NameSource => e
            .name_source
            .map_or(Value::Absent, |n| Value::Str(n.as_str())),
        ServerName => Value::str(&e.server_name),
        Alpn if e.alpn.iter().any(|a| !a.is_empty()) => Value::Strs(&e.alpn),
        App => Value::str(e.app),
        DnsName => Value::str(&e.dns_name),
        _ => process_or_parent(field, e.process.as_ref(), e.parent.as_ref()),
    }
}

/// A field of the process behind a DNS message or a connection, or of its parent: absent when
/// the event has none (or the field is of neither).
fn process_or_parent<'a>(
    field: Field,
    process: Option<&'a Process>,
    parent: Option<&'a Process>,
) -> Value<'a> {
    match field {
        ProcessName | ProcessPath | CommandLine | OriginalFileName | ProcessId | User | UserId
        | ContainerId | ContainerRuntime | ContainerName | ContainerImage | PodUid | PodName
        | PodNamespace => process.map_or(Value::Absent, |p| process_value(field, p)),
        ParentName => parent.map_or(Value::Absent, |p| Value::str(&p.name)),
        ParentPath => parent.map_or(Value::Absent, |p| Value::str(&p.path)),
        ParentCommandLine => parent.map_or(Value::Absent, |p| Value::str(&p.command_line)),
        ParentId => parent.map_or(Value::Absent, |p| Value::pid(p.pid)),
        ParentUser => parent.map_or(Value::Absent, |p| Value::str(&p.user)),
        _ => Value::Absent,
    }
}

fn process_value(field: Field, p: &Process) -> Value<'_> {
    match field {
        ProcessName => Value::str(&p.name),
        ProcessPath => Value::str(&p.path),
        CommandLine => Value::str(&p.command_line),
        OriginalFileName => Value::str(&p.original_file_name),
        ProcessId => Value::pid(p.pid),
        User => Value::str(&p.user),
        UserId => Value::str(&p.user_id),
        ContainerId | ContainerRuntime | ContainerName | ContainerImage | PodUid | PodName
        | PodNamespace => p.container.as_deref().map_or(Value::Absent, |c| {
            Value::str(match field {
                ContainerId => &c.id,
                ContainerRuntime => &c.runtime,
                ContainerName => &c.name,
                ContainerImage => &c.image,
                PodUid => &c.pod_uid,
                PodName => &c.pod_name,
                _ => &c.pod_namespace,
            })
        }),
        _ => Value::Absent,
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) as IPv4, so that
/// an IPv4 network (`cidr`) finds it.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A field's value in one event, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Value<'a> {
    /// Unknown or empty.
    Absent,
    /// A non-empty string.
    Str(&'a str),
    /// A number.
    Int(u64),
    /// A number with a fraction (an entropy).
    Float(f64),
    /// An address.
    Ip(IpAddr),
    /// Several strings (DNS answers), at least one non-empty.
    Strs(&'a [String]),
}

impl<'a> Value<'a> {
    fn str(s: &'a str) -> Value<'a> {
        if s.is_empty() {
            Value::Absent
        } else {
            Value::Str(s)
        }
    }

    fn pid(pid: u32) -> Value<'a> {
        if pid == 0 {
            Value::Absent
        } else {
            Value::Int(pid.into())
        }
    }
}

/// A short string on the stack: numbers and addresses rendered for string matching without
/// allocating.
pub(crate) struct StackStr {
    buf: [u8; 48],
    len: usize,
}

impl StackStr {
    /// Renders `v` (a number or an address; anything longer than 48 bytes is cut).
    pub(crate) fn render(v: impl fmt::Display) -> StackStr {
        let mut s = StackStr {
            buf: [0; 48],
            len: 0,
        };
        let _ = write!(s, "{v}");
        s
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DnsEvent, Platform, ProcessEvent};
    use std::{sync::Arc, time::SystemTime};

    #[test]
    fn names_are_per_category_and_case_sensitive() {
        assert_eq!(Vocabulary::Process.field("Image"), Some(ProcessPath));
        assert_eq!(Vocabulary::Dns.field("Image"), Some(ProcessPath));
        assert_eq!(Vocabulary::Process.field("image"), None);
        assert_eq!(Vocabulary::Process.field("QueryName"), None);
        assert_eq!(Vocabulary::Dns.field("CommandLine"), None);
        assert_eq!(Vocabulary::Process.field("dest"), Some(Host));
        assert_eq!(Vocabulary::Dns.field("dest"), Some(DnsServer));
        assert_eq!(
            Vocabulary::from_sigma("dns"),
            Some((Vocabulary::Dns, Category::Dns))
        );
        assert_eq!(
            Vocabulary::from_sigma("network_connection"),
            Some((Vocabulary::Network, Category::NetworkConnection))
        );
        assert_eq!(
            Vocabulary::Network.field("DestinationHostname"),
            Some(DestName)
        );
        assert_eq!(Vocabulary::Network.field("dest"), Some(DestName));
        assert_eq!(Vocabulary::Network.field("DestinationPortName"), None);
        assert_eq!(Vocabulary::from_sigma("file_event"), None);
        assert!(Answer.is_response_only() && !Query.is_response_only());
    }

    #[test]
    fn values_of_a_dns_response() {
        let e = Event::Dns(DnsEvent {
            time: SystemTime::UNIX_EPOCH,
            host: Arc::from("h"),
            platform: Platform::Linux,
            message_type: DnsMessageType::Response,
            query: "a.ngrok.io".into(),
            query_type: "A".into(),
            transaction_id: 7,
            reply_code: "NXDomain".into(),
            reply_code_id: Some(3),
            answers: vec![],
            src: Some("10.1.2.3:5555".parse().unwrap()),
            dest: None,
            transport: "udp",
            process: None,
            parent: None,
            inferred_from_response: false,
        });
        assert_eq!(QueryStatus.value(&e), Value::Int(9003));
        assert_eq!(ReplyCodeId.value(&e), Value::Int(3));
        assert_eq!(AnswerCount.value(&e), Value::Int(0));
        assert_eq!(Answer.value(&e), Value::Absent);
        assert_eq!(Src.value(&e), Value::Ip("10.1.2.3".parse().unwrap()));
        assert_eq!(SrcPort.value(&e), Value::Int(5555));
        assert_eq!(DnsServer.value(&e), Value::Absent);
        assert_eq!(ProcessName.value(&e), Value::Absent);
        assert_eq!(Host.value(&e), Value::Str("h"));
        assert_eq!(
            StackStr::render("::ffff:10.1.2.3".parse::<IpAddr>().unwrap()).as_str(),
            "::ffff:10.1.2.3"
        );
    }

    #[test]
    fn values_of_a_process_event() {
        let e = Event::Process(ProcessEvent {
            time: SystemTime::UNIX_EPOCH,
            host: Arc::from("web1"),
            platform: Platform::Linux,
            process: Process {
                pid: 42,
                name: "ngrok".into(),
                ..Process::default()
            },
            parent: Process::default(),
            args_truncated: false,
            fileless: "".into(),
            loader: "".into(),
        });
        assert_eq!(ProcessId.value(&e), Value::Int(42));
        assert_eq!(ParentId.value(&e), Value::Absent);
        assert_eq!(ProcessName.value(&e), Value::Str("ngrok"));
        assert_eq!(ProcessPath.value(&e), Value::Absent);
        assert_eq!(Host.value(&e), Value::Str("web1"));
        assert_eq!(Query.value(&e), Value::Absent);
    }
}
