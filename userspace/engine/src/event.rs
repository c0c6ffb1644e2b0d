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
    /// The container it runs in; `None` for a host process (or where no sensor can tell).
    pub container: Option<Arc<Container>>,
    /// Its namespaces, when they are not all the host's; `None` for a host process.
    pub namespaces: Option<Namespaces>,
}

/// The container a process runs in: its id and runtime (from the process's cgroup path), the
/// pod's uid where the path carries one, and what the runtime's API says of it (name, image,
/// pod name and namespace) once it has answered. Empty strings mean "unknown". One is shared
/// by every process of the container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Container {
    /// The runtime's id of the container (64 hex digits for Docker, Podman, containerd and
    /// CRI-O; the container's name for LXC and systemd-nspawn).
    pub id: Arc<str>,
    /// `docker`, `podman`, `containerd`, `cri-o`, `cri` (a Kubernetes container whose runtime
    /// the path does not name), `lxc` or `systemd-nspawn`.
    pub runtime: Arc<str>,
    pub name: Arc<str>,
    /// The image as the container was created from it (`docker.io/library/nginx:1.27`).
    pub image: Arc<str>,
    /// Kubernetes pod uid, name and namespace.
    pub pod_uid: Arc<str>,
    pub pod_name: Arc<str>,
    pub pod_namespace: Arc<str>,
}

/// The namespaces of a process (their inode numbers, as `/proc/PID/ns/*` shows them), carried
/// when at least one is not the host's: a process in its own namespaces is marked even where
/// no container runtime is known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Namespaces {
    pub pid: u32,
    pub mnt: u32,
    pub net: u32,
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

/// How a connection's destination name was learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameSource {
    /// The server name of the TLS ClientHello the connection began with.
    Tls,
    /// The server name of the ClientHello in the flow's QUIC Initial packets.
    Quic,
    /// A DNS answer for the destination address (the name asked for).
    Dns,
}

impl NameSource {
    pub fn as_str(self) -> &'static str {
        match self {
            NameSource::Tls => "tls",
            NameSource::Quic => "quic",
            NameSource::Dns => "dns",
        }
    }
}

/// An outbound connection (CIM Network_Traffic): a TCP connect or a UDP flow to a new
/// destination, with the process that started it and what names its destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionEvent {
    pub time: SystemTime,
    pub host: Arc<str>,
    pub platform: Platform,
    /// "tcp" or "udp".
    pub transport: &'static str,
    /// The local address and port, when known (a connection that sent nothing may have none).
    pub src: Option<SocketAddr>,
    /// The remote address and port.
    pub dest: SocketAddr,
    /// The destination's name: the TLS or QUIC server name when there is one, else the DNS
    /// answer's name; empty when unknown (CIM `dest`).
    pub dest_name: String,
    /// How `dest_name` was learned; `None` when it is empty.
    pub name_source: Option<NameSource>,
    /// The server name of the ClientHello (TLS or QUIC), when there was one.
    pub server_name: String,
    /// The ALPN protocols the ClientHello offered.
    pub alpn: Vec<String>,
    /// The application protocol the first flight showed: "tls", "quic", "dns", or empty.
    pub app: &'static str,
    /// The name a DNS answer gave the destination address, when one did.
    pub dns_name: String,
    /// The process whose DNS query got that answer (the connecting process, or a resolver
    /// daemon on its behalf).
    pub resolver: Option<Process>,
    /// The flow is reported again: its first flight came after it was first reported.
    pub late: bool,
    /// The process that connected.
    pub process: Option<Process>,
    /// Its parent, when known.
    pub parent: Option<Process>,
}

/// Anything the engine matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Process(ProcessEvent),
    Dns(DnsEvent),
    Connection(ConnectionEvent),
}

impl Event {
    pub fn time(&self) -> SystemTime {
        match self {
            Event::Process(e) => e.time,
            Event::Dns(e) => e.time,
            Event::Connection(e) => e.time,
        }
    }

    pub fn host(&self) -> &str {
        match self {
            Event::Process(e) => &e.host,
            Event::Dns(e) => &e.host,
            Event::Connection(e) => &e.host,
        }
    }

    pub fn platform(&self) -> Platform {
        match self {
            Event::Process(e) => e.platform,
            Event::Dns(e) => e.platform,
            Event::Connection(e) => e.platform,
        }
    }

    /// The process the event is about (the one that started, made the DNS message, or
    /// connected).
    pub fn process(&self) -> Option<&Process> {
        match self {
            Event::Process(e) => Some(&e.process),
            Event::Dns(e) => e.process.as_ref(),
            Event::Connection(e) => e.process.as_ref(),
        }
    }

    /// The process the event is about, to fill in; a DNS or connection event without one gets
    /// one.
    pub fn process_mut(&mut self) -> &mut Process {
        match self {
            Event::Process(e) => &mut e.process,
            Event::Dns(e) => e.process.get_or_insert_with(Process::default),
            Event::Connection(e) => e.process.get_or_insert_with(Process::default),
        }
    }
}
