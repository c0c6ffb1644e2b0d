//! Connections on Windows: what names a connection's destination and which UDP datagrams make
//! one. Microsoft-Windows-DNS-Client's 3008 (query completed, status 0) teaches the engine's
//! address-name cache (`tunnelwatch_engine::names`, the Linux sensor's too) that the question's
//! name has the addresses in `QueryResults`, as the asking process was told; a
//! Kernel-Network connect or datagram to such an address then carries the name as `dest`
//! (`dest_name_source: dns`), `dns_name`, and the process that asked (`resolver_process_*`).
//!
//! DNS-Client gives no TTL: a name is kept [`NAME_KEEP`] after the answer (the Linux sensor
//! keeps it for the answer's TTL, at least 30 s). Windows gives no first flight either: there
//! is no TLS or QUIC server name (`server_name`, `alpn`, `app` stay empty) and a destination no
//! answer named has no `dest`.
//!
//! Uses: `net_map` (the connects), `udp_flows`, `dns_results`, `fields` (this crate), the
//! engine's name cache and events.

use std::sync::Arc;

use tunnelwatch_engine::{
    dns,
    event::{ConnectionEvent, NameSource, Platform, Process},
    names::NameCache,
};

use crate::{
    dns_results,
    fields::{FILETIME_SECOND, Fields, filetime_to_system_time},
    net_map::Connect,
    udp_flows::UdpFlows,
};

/// How long a DNS-Client answer names its addresses: 10 minutes.
pub const NAME_KEEP: i64 = 600 * FILETIME_SECOND;

/// What the connection side saw, for the stats line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnCounters {
    /// Addresses named by DNS-Client answers.
    pub names_learned: u64,
    /// Connection events made.
    pub connections: u64,
}

#[derive(Default)]
pub struct Connections {
    names: NameCache,
    udp: UdpFlows,
    pub counters: ConnCounters,
}

/// FILETIME as the name cache's nanoseconds.
fn ns(filetime: i64) -> u64 {
    (filetime.max(0) as u64).saturating_mul(100)
}

impl Connections {
    pub fn new() -> Self {
        Self::default()
    }

    /// Learns from a 3008's fields, received at `time` (FILETIME) by process `asker_pid`
    /// (`asker_name`, empty when not known yet). Failed queries teach nothing.
    pub fn learn(&mut self, f: &Fields, asker_pid: u32, asker_name: &Arc<str>, time: i64) {
        if f.u32("QueryStatus") != Some(0) {
            return;
        }
        let (Some(name), Some(results)) = (f.str("QueryName"), f.str("QueryResults")) else {
            return;
        };
        let addrs = dns_results::addresses(results);
        if addrs.is_empty() {
            return;
        }
        let name = dns::normalize_name(name.trim());
        let learned = self.names.learn_addresses(
            &name,
            &addrs,
            (asker_pid, asker_name),
            ns(time),
            ns(NAME_KEEP),
        );
        self.counters.names_learned += learned as u64;
    }

    /// Whether `c` is to be reported: every TCP connect, a UDP flow's first datagram.
    pub fn admit(&mut self, c: &Connect) -> bool {
        c.tcp
            || self
                .udp
                .datagram(c.pid, c.src.map_or(0, |s| s.port()), c.dest, c.time)
    }

    /// The event of `c`, by `process` (with `parent`); `name_of` names a resolver process the
    /// cache learned without a name.
    pub fn event(
        &mut self,
        c: &Connect,
        host: &Arc<str>,
        (process, parent): (Option<Process>, Option<Process>),
        name_of: impl FnOnce(u32) -> Arc<str>,
    ) -> ConnectionEvent {
        self.counters.connections += 1;
        let learned = self.names.lookup(c.dest.ip(), c.pid, ns(c.time));
        let (dns_name, resolver) = match learned {
            Some(l) => {
                let name = if l.asker_name.is_empty() {
                    name_of(l.asker_pid)
                } else {
                    l.asker_name.clone()
                };
                (
                    l.name.to_string(),
                    Some(Process {
                        pid: l.asker_pid,
                        name,
                        ..Process::default()
                    }),
                )
            }
            None => (String::new(), None),
        };
        let name_source = (!dns_name.is_empty()).then_some(NameSource::Dns);
        ConnectionEvent {
            time: filetime_to_system_time(c.time),
            host: host.clone(),
            platform: Platform::Windows,
            transport: if c.tcp { "tcp" } else { "udp" },
            src: c.src,
            dest: c.dest,
            dest_name: dns_name.clone(),
            name_source,
            // Windows shows no first flight: no ClientHello, no server name.
            server_name: String::new(),
            alpn: Vec::new(),
            app: "",
            dns_name,
            resolver,
            late: false,
            process,
            parent,
        }
    }

    /// Forgets names and UDP flows whose time ran out by `now` (FILETIME).
    pub fn expire(&mut self, now: i64) {
        self.names.expire(ns(now));
        self.udp.expire(now);
    }

    /// Addresses named now.
    pub fn names(&self) -> usize {
        self.names.len()
    }

    /// The UDP flow table's counters: datagrams folded, flows forgotten to make room.
    pub fn udp_counters(&self) -> crate::udp_flows::UdpCounters {
        self.udp.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::Value;

    fn answer(name: &str, status: u32, results: &str) -> Fields {
        Fields::new()
            .with("QueryName", Value::Str(name.into()))
            .with("QueryType", Value::U32(1))
            .with("QueryStatus", Value::U32(status))
            .with("QueryResults", Value::Str(results.into()))
    }

    fn connect(pid: u32, tcp: bool, dest: &str, time: i64) -> Connect {
        Connect {
            pid,
            tcp,
            src: Some("192.168.1.20:50123".parse().unwrap()),
            dest: dest.parse().unwrap(),
            time,
        }
    }

    #[test]
    fn an_answer_names_the_connection_that_follows() {
        let mut c = Connections::new();
        let host: Arc<str> = "DESKTOP-1".into();
        c.learn(
            &answer(
                "Tunnel.US.ngrok.com.",
                0,
                "type: 5 edge.example;::ffff:3.134.125.175;",
            ),
            5832,
            &"".into(),
            0,
        );
        assert_eq!(c.counters.names_learned, 1);
        let e = c.event(
            &connect(5832, true, "3.134.125.175:443", FILETIME_SECOND),
            &host,
            (None, None),
            |pid| format!("p{pid}").into(),
        );
        assert_eq!(e.dest_name, "tunnel.us.ngrok.com");
        assert_eq!(e.dns_name, "tunnel.us.ngrok.com");
        assert_eq!(e.name_source, Some(NameSource::Dns));
        let r = e.resolver.unwrap();
        assert_eq!((r.pid, &*r.name), (5832, "p5832"), "named when asked");
        assert_eq!(
            (e.transport, e.app, e.server_name.as_str()),
            ("tcp", "", "")
        );
        assert_eq!(e.platform, Platform::Windows);
        // Past the keep: no name.
        let e = c.event(
            &connect(5832, true, "3.134.125.175:443", NAME_KEEP + 1),
            &host,
            (None, None),
            |_| "".into(),
        );
        assert_eq!((e.dest_name.as_str(), e.name_source), ("", None));
        assert!(e.resolver.is_none());
        assert_eq!(c.counters.connections, 2);
    }

    #[test]
    fn failed_or_empty_answers_teach_nothing() {
        let mut c = Connections::new();
        let p: Arc<str> = "x".into();
        c.learn(&answer("nope.ngrok.io", 9003, ""), 1, &p, 0);
        c.learn(&answer("a.example", 0, "type: 16 1.2.3.4;"), 1, &p, 0);
        c.learn(&answer("a.example", 9501, "1.2.3.4;"), 1, &p, 0);
        assert_eq!((c.counters.names_learned, c.names()), (0, 0));
    }

    #[test]
    fn udp_flows_are_reported_once_tcp_connects_each_time() {
        let mut c = Connections::new();
        let quic = connect(9, false, "198.41.192.77:7844", 0);
        assert!(c.admit(&quic));
        assert!(!c.admit(&Connect { time: 5, ..quic }));
        assert_eq!(c.udp_counters().repeats, 1);
        let tcp = connect(9, true, "198.41.192.77:7844", 0);
        assert!(c.admit(&tcp) && c.admit(&tcp));
    }
}
