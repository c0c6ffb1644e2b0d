//! Microsoft-Windows-Kernel-Network events to connections (pure; the process, the destination's
//! name and the UDP flow table are `connections.rs`'s and `enrich.rs`'s):
//!
//! - 12, 28 (TCP connection attempted, IPv4 and IPv6): a TCP connection, one per `connect()`.
//! - 42, 58 (UDP data sent): a datagram, which `udp_flows.rs` folds into flows.
//!
//! The process is the payload's `PID` (not the header's: the stack logs these events in
//! whatever context it runs in). An IPv4-mapped IPv6 destination (a dual-stack socket's view of
//! an IPv4 peer) is written as IPv4, as on Linux.

use std::net::SocketAddr;

use tunnelwatch_engine::names::canonical;

use crate::{
    fields::{Fields, Header},
    schema::kernel_network,
};

/// One connect or datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connect {
    /// The process the socket belongs to.
    pub pid: u32,
    pub tcp: bool,
    /// The local address and port; `None` when the event says neither.
    pub src: Option<SocketAddr>,
    pub dest: SocketAddr,
    /// FILETIME.
    pub time: i64,
}

/// The connect or datagram of a Kernel-Network 12, 28, 42 or 58; `None` for other ids or a
/// missing field.
pub fn connect(h: &Header, f: &Fields) -> Option<Connect> {
    if !kernel_network::EVENTS.contains(&h.event_id) {
        return None;
    }
    let port = |name| f.u32(name).and_then(|p| u16::try_from(p).ok());
    let dest = SocketAddr::new(canonical(f.ip("daddr")?), port("dport")?);
    let src = match (f.ip("saddr"), port("sport")) {
        (Some(ip), Some(p)) if !(ip.is_unspecified() && p == 0) => {
            Some(SocketAddr::new(canonical(ip), p))
        }
        _ => None,
    };
    Some(Connect {
        pid: f.u32("PID")?,
        tcp: kernel_network::is_tcp(h.event_id),
        src,
        dest,
        time: h.timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{fields::Source, manifest_payload};

    fn header(id: u16) -> Header {
        Header {
            source: Source::KernelNetwork,
            event_id: id,
            opcode: 12,
            version: 0,
            // The header names whatever process the stack ran in.
            pid: 4,
            timestamp: 134_398_693_231_234_567,
            pointer_size: 8,
        }
    }

    #[test]
    fn a_tcp_connect_and_a_datagram() {
        let (id, b) = manifest_payload::encode_kernel_network(
            true,
            5832,
            0,
            "192.168.1.20:50123".parse().unwrap(),
            "3.134.125.175:443".parse().unwrap(),
        );
        let f = manifest_payload::kernel_network(id, &b).unwrap();
        let c = connect(&header(id), &f).unwrap();
        assert_eq!(c.pid, 5832, "the payload's process, not the header's");
        assert!(c.tcp);
        assert_eq!(c.dest, "3.134.125.175:443".parse().unwrap());
        assert_eq!(c.src, Some("192.168.1.20:50123".parse().unwrap()));
        assert_eq!(c.time, 134_398_693_231_234_567);

        // A dual-stack socket's UDP datagram to an IPv4 peer; no local address yet.
        let (id, b) = manifest_payload::encode_kernel_network(
            false,
            9,
            1200,
            "[::]:0".parse().unwrap(),
            "[::ffff:198.41.192.77]:7844".parse().unwrap(),
        );
        assert_eq!(id, 58);
        let f = manifest_payload::kernel_network(id, &b).unwrap();
        let c = connect(&header(id), &f).unwrap();
        assert!(!c.tcp);
        assert_eq!(c.dest, "198.41.192.77:7844".parse().unwrap());
        assert_eq!(c.src, None);
    }

    #[test]
    fn other_events_and_missing_fields_are_not_mapped() {
        let f = Fields::new().with("PID", crate::fields::Value::U32(1));
        assert!(connect(&header(12), &f).is_none());
        let (_, b) = manifest_payload::encode_kernel_network(
            true,
            1,
            0,
            "10.0.0.1:1".parse().unwrap(),
            "10.0.0.2:2".parse().unwrap(),
        );
        let f = manifest_payload::kernel_network(12, &b).unwrap();
        assert!(connect(&header(13), &f).is_none());
    }
}
