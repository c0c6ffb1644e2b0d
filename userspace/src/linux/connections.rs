//! What names a connection's destination: the flows (`flows`), held for their first flight,
//! and the names DNS answers gave to addresses (the engine's `names`), fed by the DNS responses the
//! sensor decodes. For each finished flow it says which server name the ClientHello gave (TLS
//! or QUIC), which name DNS gave the address (and which process asked), which of the two names
//! the destination, and whether the first datagram of a UDP flow was a DNS query to a port
//! that is not a DNS port (issue 12 item 7: a resolver on 5353 or 5300 is seen as DNS).
//!
//! Uses: `flows`, `decode` (this folder), `net` (the parsers and the name cache), the engine's
//! event types and DNS messages.

use std::sync::Arc;

use tunnelwatch_common::ConnRecord;
use tunnelwatch_engine::{dns::DnsMessage, event::NameSource, names::NameCache};

use crate::{
    linux::{
        decode::Flight,
        flows::{FirstFlight, Flow, FlowCounters, Flows},
    },
    net::dns_sniff,
};

/// Counters, for the stats line.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnCounters {
    /// Flows handed out (connection events made, late ones included).
    pub connections: u64,
    /// First datagrams of UDP flows to other ports than the DNS ports that were DNS queries.
    pub dns_other_ports: u64,
    /// Names DNS answers gave to addresses, learned.
    pub names_learned: u64,
}

/// What names a finished flow's destination.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Naming {
    /// The ClientHello's server name, empty when none.
    pub server_name: String,
    pub alpn: Vec<String>,
    /// `tls`, `quic` or `dns` (the first flight's protocol), or empty.
    pub app: &'static str,
    /// The name a DNS answer gave the destination address, empty when none.
    pub dns_name: String,
    /// The process whose query got that answer: (pid, name).
    pub resolver: Option<(u32, Arc<str>)>,
    /// The destination's name: the server name, else the DNS name; and where it came from.
    pub dest_name: String,
    pub name_source: Option<NameSource>,
    /// The first datagram, when it was a DNS query.
    pub dns_query: Option<DnsMessage>,
}

#[derive(Default)]
pub struct Connections {
    flows: Flows,
    names: NameCache,
    ready: Vec<Flow>,
    pub counters: ConnCounters,
}

impl Connections {
    pub fn new() -> Self {
        Self::default()
    }

    /// A flow record.
    pub fn conn(&mut self, c: &ConnRecord) {
        self.flows.conn(c, c.header.boot_ns, &mut self.ready);
    }

    /// A first-flight record.
    pub fn flight(&mut self, f: &Flight<'_>) {
        self.flows.flight(f, &mut self.ready);
    }

    /// Hands out the flows whose hold is over at `now` (boot-time nanoseconds).
    pub fn expire(&mut self, now: u64) {
        self.flows.expire(now, &mut self.ready);
    }

    /// Forgets names whose TTL ran out by `now`.
    pub fn expire_names(&mut self, now: u64) {
        self.names.expire(now);
    }

    /// Hands out every held flow (the sensor stops).
    pub fn drain(&mut self) {
        self.flows.drain(&mut self.ready);
    }

    /// The flows finished since the last call.
    pub fn take_ready(&mut self) -> Vec<Flow> {
        std::mem::take(&mut self.ready)
    }

    /// Flows held for their first flight now.
    pub fn held(&self) -> usize {
        self.flows.held()
    }

    /// Addresses named now.
    pub fn names(&self) -> usize {
        self.names.len()
    }

    pub fn flow_counters(&self) -> FlowCounters {
        self.flows.counters
    }

    /// Learns from DNS response `m`, received at `now` by process `asker_pid` (`asker_name`).
    pub fn learn(&mut self, m: &DnsMessage, asker_pid: u32, asker_name: &Arc<str>, now: u64) {
        self.counters.names_learned += self.names.learn(m, asker_pid, asker_name, now) as u64;
    }

    /// What names `flow`'s destination, for a connection by process `pid`.
    pub fn naming(&mut self, flow: &Flow, pid: u32) -> Naming {
        self.counters.connections += 1;
        let mut n = Naming::default();
        match &flow.first_flight {
            FirstFlight::Tls(h) => {
                n.app = "tls";
                n.server_name = h.server_name.clone().unwrap_or_default();
                n.alpn = h.alpn.clone();
            }
            FirstFlight::Quic { hello, .. } => {
                n.app = "quic";
                n.server_name = hello.server_name.clone().unwrap_or_default();
                n.alpn = hello.alpn.clone();
            }
            FirstFlight::Other(bytes) if !flow.tcp => {
                n.dns_query = dns_sniff::query(bytes);
                if n.dns_query.is_some() {
                    n.app = "dns";
                    self.counters.dns_other_ports += 1;
                }
            }
            FirstFlight::Other(_) | FirstFlight::None | FirstFlight::Unreadable(_) => {}
        }
        if let Some(l) = self
            .names
            .lookup(flow.dst.ip(), pid, flow.conn.header.boot_ns)
        {
            n.dns_name = l.name.to_string();
            n.resolver = Some((l.asker_pid, l.asker_name.clone()));
        }
        (n.dest_name, n.name_source) = if !n.server_name.is_empty() {
            let source = if flow.tcp {
                NameSource::Tls
            } else {
                NameSource::Quic
            };
            (n.server_name.clone(), Some(source))
        } else if !n.dns_name.is_empty() {
            (n.dns_name.clone(), Some(NameSource::Dns))
        } else {
            (String::new(), None)
        };
        n
    }
}
