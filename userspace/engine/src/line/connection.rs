//! The body of a connection line: CIM Network_Traffic, what the first flight and the DNS say
//! about the destination, and the process behind the connection, declared once (see
//! `line/mod.rs`).
//!
//! CIM has no names for what a ClientHello says or for how the destination's name was
//! learned; these lines use `server_name` (the TLS or QUIC server name, as Zeek's ssl.log
//! calls it), `alpn` (its ALPN protocols), `dest_name_source` (`tls`, `quic` or `dns`: where
//! `dest` comes from), `dns_name` (the name a DNS answer gave the address) with
//! `resolver_process_id` and `resolver_process_name` (the process whose query got that answer:
//! the program itself, or a resolver daemon), and `late` (a second line for a connection
//! reported before its ClientHello came).
//!
//! Floor 1 (events, fields and lines): may use `event` and the line types.

use std::{
    borrow::Cow,
    net::{IpAddr, SocketAddr},
    sync::LazyLock,
};

use crate::{
    event::{ConnectionEvent, NameSource, Process},
    line::{Context, Transport, line_fields, pid},
};

line_fields! {
    /// CIM Network_Traffic fields of an outbound connection, what names its destination,
    /// then its process, in the order lines carry them.
    pub struct ConnectionLine<'a> {
        transport: Transport,
        src_ip: Option<IpAddr>,
        src_port: Option<u16>,
        dest_ip: Option<IpAddr>,
        dest_port: Option<u16>,
        /// The destination's name: the server name, else the DNS answer's.
        dest: &'a str,
        /// `tls`, `quic` or `dns`.
        dest_name_source: &'a str,
        server_name: &'a str,
        alpn: Cow<'a, [String]>,
        /// The application protocol: `tls`, `quic`, `dns`.
        app: &'a str,
        /// Always `outbound`.
        direction: &'a str,
        dns_name: &'a str,
        resolver_process_id: Option<u32>,
        resolver_process_name: &'a str,
        late: bool,
        process_id: Option<u32>,
        process_name: &'a str,
        process_path: &'a str,
        process: &'a str,
        user: &'a str,
        user_id: &'a str,
        parent_process_id: Option<u32>,
        parent_process_name: &'a str,
        parent_process_path: &'a str,
    }
}

impl<'a> From<&'a ConnectionEvent> for ConnectionLine<'a> {
    fn from(e: &'a ConnectionEvent) -> Self {
        static NONE: LazyLock<Process> = LazyLock::new(Process::default);
        let p = e.process.as_ref().unwrap_or(&NONE);
        let pp = e.parent.as_ref().unwrap_or(&NONE);
        let r = e.resolver.as_ref().unwrap_or(&NONE);
        ConnectionLine {
            transport: Transport(e.transport),
            src_ip: e.src.map(|a| a.ip()),
            src_port: e.src.map(|a| a.port()).filter(|&p| p != 0),
            dest_ip: Some(e.dest.ip()),
            dest_port: Some(e.dest.port()),
            dest: &e.dest_name,
            dest_name_source: e.name_source.map_or("", NameSource::as_str),
            server_name: &e.server_name,
            alpn: Cow::Borrowed(&e.alpn),
            app: e.app,
            direction: "outbound",
            dns_name: &e.dns_name,
            resolver_process_id: pid(r.pid),
            resolver_process_name: &r.name,
            late: e.late,
            process_id: pid(p.pid),
            process_name: &p.name,
            process_path: &p.path,
            process: &p.command_line,
            user: &p.user,
            user_id: &p.user_id,
            parent_process_id: pid(pp.pid),
            parent_process_name: &pp.name,
            parent_process_path: &pp.path,
        }
    }
}

impl ConnectionLine<'_> {
    /// The event. A recorded line without `dest_ip` is refused (a connection has a
    /// destination; a test event's defaults to 0.0.0.0); `dest_port` defaults to 0,
    /// `transport` to tcp.
    pub(crate) fn into_event(self, c: &Context<'_>) -> Result<ConnectionEvent, String> {
        // A hand-written test event may leave the address out; a recorded line may not.
        let dest_ip = match self.dest_ip {
            Some(ip) => ip,
            None if c.strict => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            None => return Err("a connection line needs 'dest_ip'".into()),
        };
        let src = match (self.src_ip, self.src_port) {
            (Some(ip), port) => Some(SocketAddr::new(ip, port.unwrap_or(0))),
            (None, Some(_)) => return Err("'src_port' without 'src_ip'".into()),
            (None, None) => None,
        };
        let name_source = match self.dest_name_source {
            "" => None,
            "tls" => Some(NameSource::Tls),
            "quic" => Some(NameSource::Quic),
            "dns" => Some(NameSource::Dns),
            other => {
                return Err(format!(
                    "'dest_name_source' must be tls, quic or dns, not '{other}'"
                ));
            }
        };
        let app = match self.app {
            "" => "",
            "tls" => "tls",
            "quic" => "quic",
            "dns" => "dns",
            other => return Err(format!("'app' must be tls, quic or dns, not '{other}'")),
        };
        if !matches!(self.direction, "" | "outbound") {
            return Err(format!(
                "'direction' must be outbound, not '{}'",
                self.direction
            ));
        }
        let process = Process {
            user: self.user.into(),
            user_id: self.user_id.into(),
            ..c.process(
                self.process_id,
                self.process_name,
                self.process_path,
                self.process,
            )
        };
        let parent = c.process(
            self.parent_process_id,
            self.parent_process_name,
            self.parent_process_path,
            "",
        );
        let resolver = c.process(self.resolver_process_id, self.resolver_process_name, "", "");
        let known = |p: &Process| *p != Process::default();
        let transport = if self.transport.0.is_empty() {
            "tcp"
        } else {
            self.transport.0
        };
        Ok(ConnectionEvent {
            time: c.time,
            host: c.host.into(),
            platform: c.platform(
                &[&process.path, &parent.path],
                &[&process.name, &parent.name],
            ),
            transport,
            src,
            dest: SocketAddr::new(dest_ip, self.dest_port.unwrap_or(0)),
            dest_name: self.dest.to_owned(),
            name_source,
            server_name: self.server_name.to_owned(),
            alpn: self.alpn.into_owned(),
            app,
            dns_name: self.dns_name.to_owned(),
            resolver: known(&resolver).then_some(resolver),
            late: self.late,
            process: known(&process).then_some(process),
            parent: known(&parent).then_some(parent),
        })
    }
}
