//! The events the engine matches, the same for every platform. The Linux sensor builds them
//! from ring-buffer records (`crate::linux`), the Windows sensor from ETW (`etw/`), `replay`
//! from recorded JSON lines.
//!
//! Floor 1 (events, fields and lines): uses nothing of the engine; every other file may use it.

use std::{net::SocketAddr, sync::Arc, time::SystemTime};

/// Where an event was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Platform {
    Linux,
    Windows,
}

impl Platform {
    /// Sigma `logsource.product` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Linux => "linux",
            Platform::Windows => "windows",
        }
    }
}

/// A process, as far as it is known. Empty strings mean "unknown". The strings are shared
/// (`Arc<str>`): a sensor builds one per process and every event of that process clones the
/// pointers, not the text (building them per DNS event was a fifth of the sensor's CPU).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    /// Image name: the last component of `path` (CIM `process_name`).
    pub name: Arc<str>,
    /// Full path of the image (CIM `process_path`).
    pub path: Arc<str>,
    /// Full command line, arguments joined by spaces (CIM `process`).
    pub command_line: Arc<str>,
    /// User name (CIM `user`).
    pub user: Arc<str>,
    /// Numeric uid on Linux, SID on Windows (CIM `user_id`).
    pub user_id: Arc<str>,
    /// What the image really is, whatever its name (PE `OriginalFilename` on Windows).
    pub original_file_name: Arc<str>,
}

/// A process started (Endpoint.Processes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessEvent {
    pub time: SystemTime,
    pub host: Arc<str>,
    pub platform: Platform,
    pub process: Process,
    pub parent: Process,
    /// The command line was longer than the sensor captures and is cut short.
    pub args_truncated: bool,
    /// How the program runs without a file anyone can open by its path: `memfd` (a file
    /// made in memory by `memfd_create`, run with `fexecve`), `deleted` (its file was
    /// removed), empty when it has one (line field `process_fileless`).
    pub fileless: Arc<str>,
    /// The dynamic loader, when the program was run through it directly
    /// (`ld-linux-x86-64.so.2 ./prog`): `process_path` is then the program it loaded (line
    /// field `process_loader`).
    pub loader: Arc<str>,
}

/// Whether a DNS message is a query or a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsMessageType {
    Query,
    Response,
}

impl DnsMessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsMessageType::Query => "Query",
            DnsMessageType::Response => "Response",
        }
    }
}

/// A DNS query or response (Network_Resolution), with the process that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsEvent {
    pub time: SystemTime,
    pub host: Arc<str>,
    pub platform: Platform,
    pub message_type: DnsMessageType,
    /// The name asked for: lower case, without a trailing dot (CIM `query`).
    pub query: String,
    /// Record type asked for, as a mnemonic: "A", "AAAA", "TXT", or "TYPE65" (CIM `query_type`).
    pub query_type: String,
    pub transaction_id: u16,
    /// Response code name: "NoError", "NXDomain", ... (CIM `reply_code`); empty for queries.
    pub reply_code: String,
    /// Numeric response code (CIM `reply_code_id`); `None` for queries.
    pub reply_code_id: Option<u16>,
    /// Answer data: addresses for A/AAAA, names for CNAME, ... (CIM `answer`).
    pub answers: Vec<String>,
    /// Client side of the exchange (CIM `src`), when known.
    pub src: Option<SocketAddr>,
    /// Server side of the exchange (CIM `dest`), when known.
    pub dest: Option<SocketAddr>,
    /// "udp" or "tcp", or empty when unknown (Windows DNS-Client).
    pub transport: &'static str,
    /// The process that sent the query or receives the response.
    pub process: Option<Process>,
    /// Its parent, when known.
    pub parent: Option<Process>,
    /// A query the sensor did not see leave, built from its response's question (a query
    /// sent by a path the hooks miss: a packet socket, a segment lost to reassembly): rules
    /// evaluate it as they would have evaluated the query (line field
    /// `inferred_from_response`).
    pub inferred_from_response: bool,
}

/// Anything the engine matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Process(ProcessEvent),
    Dns(DnsEvent),
}

impl Event {
    pub fn time(&self) -> SystemTime {
        match self {
            Event::Process(e) => e.time,
            Event::Dns(e) => e.time,
        }
    }

    pub fn host(&self) -> &str {
        match self {
            Event::Process(e) => &e.host,
            Event::Dns(e) => &e.host,
        }
    }

    pub fn platform(&self) -> Platform {
        match self {
            Event::Process(e) => e.platform,
            Event::Dns(e) => e.platform,
        }
    }
}
