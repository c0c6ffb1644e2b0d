//! Flow and first-flight records to finished flows: each new flow (a `ConnRecord`) is held
//! until its first flight says where it goes (a TLS ClientHello or QUIC Initial read whole,
//! or the kernel side's last packet of it) or until [`FLOW_HOLD_NS`] pass, and is then handed
//! out with what is known: so that the flow's event, and its alert, carry the server name.
//!
//! A TCP connection's ClientHello comes one round trip after `connect()`; when that is longer
//! than the hold, the flow is handed out without it, remembered for [`LATE_KEEP_NS`], and
//! handed out again (`late`) when its ClientHello does come.
//!
//! Bounded: at most [`MAX_HELD`] flows and [`MAX_HELD_BYTES`] of first-flight bytes are held
//! (past either, the oldest flow is handed out early, counted in `released_early`), and as many
//! handed-out flows are remembered for late first flights (the oldest forgotten first).

use std::{
    collections::VecDeque,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use tunnelwatch_common::{
    ConnRecord,
    records::{conn_flags, flight_flags},
};
use tunnelwatch_engine::names::canonical;

use crate::{
    linux::decode::Flight,
    net::{
        quic::{self, QuicError},
        tls::{self, ClientHello, TlsError},
    },
};

/// How long a flow waits for its first flight (boot-time nanoseconds): the alert latency of a
/// connection whose ClientHello never comes. Covers a round trip of 450 ms or so.
pub const FLOW_HOLD_NS: u64 = 500_000_000;
/// How long a flow handed out without its first flight waits for a late one.
pub const LATE_KEEP_NS: u64 = 10_000_000_000;
/// Flows held at most, and first-flight bytes held at most in all.
pub const MAX_HELD: usize = 4096;
pub const MAX_HELD_BYTES: usize = 8 << 20;
/// Bytes of a first flight that is neither TLS nor QUIC handed out (for `Other`).
pub const OTHER_KEEP: usize = 2048;

/// IPPROTO_TCP.
const TCP: u8 = 6;

/// What a flow's first flight says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirstFlight {
    /// Nothing was captured (not a flow the kernel side captures, or nothing came in time).
    None,
    /// A TLS ClientHello (TCP).
    Tls(ClientHello),
    /// A QUIC Initial's ClientHello (UDP).
    Quic { version: u32, hello: ClientHello },
    /// Something else: its first bytes (the first datagram or segment, at most
    /// [`OTHER_KEEP`]), for the caller to look at (a DNS query to any port).
    Other(Vec<u8>),
    /// A TLS or QUIC first flight that could not be read (a cut, hostile or unknown one).
    Unreadable(String),
}

/// A flow, handed out.
#[derive(Clone, Debug)]
pub struct Flow {
    pub conn: ConnRecord,
    /// The source address and port, when the socket was bound or a packet showed them.
    pub src: Option<SocketAddr>,
    /// The destination (an IPv4-mapped IPv6 address as IPv4).
    pub dst: SocketAddr,
    pub tcp: bool,
    pub first_flight: FirstFlight,
    /// A second report of a flow handed out before its first flight came.
    pub late: bool,
}

/// Counters, for the stats line.
#[derive(Clone, Copy, Debug, Default)]
pub struct FlowCounters {
    /// Flows handed out before their first flight was complete to make room.
    pub released_early: u64,
    /// First-flight records of no flow held or remembered (their flow record was lost, or the
    /// sensor started between the two).
    pub flights_orphaned: u64,
    /// Flows handed out again with a first flight that came after the hold.
    pub late: u64,
}

/// Flows are keyed by socket cookie, and for UDP also by destination (an unconnected socket
/// sends to several).
type Key = (u64, Option<SocketAddr>);

struct Held {
    conn: ConnRecord,
    src: Option<SocketAddr>,
    dst: SocketAddr,
    tcp: bool,
    /// TCP: sequence number of the SYN; data segments are placed after it.
    syn_seq: Option<u32>,
    /// TCP: (offset in the stream, bytes); UDP: datagrams in order (offset unused).
    pieces: Vec<(u32, Vec<u8>)>,
    bytes: usize,
    deadline: u64,
}

#[derive(Default)]
pub struct Flows {
    held: foldhash::HashMap<Key, Held>,
    /// Held flows in arrival order (a key whose flow went is skipped).
    order: VecDeque<(Key, u64)>,
    bytes: usize,
    /// Flows handed out without a first flight, waiting for a late one.
    late: foldhash::HashMap<Key, Held>,
    late_order: VecDeque<(Key, u64)>,
    late_bytes: usize,
    pub counters: FlowCounters,
}

fn socket(version: u8, addr: &[u8; 16], port: u16) -> Option<SocketAddr> {
    let ip = match version {
        4 => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        6 => IpAddr::V6(Ipv6Addr::from(*addr)),
        _ => return None,
    };
    Some(SocketAddr::new(canonical(ip), port))
}

impl Flows {
    pub fn new() -> Self {
        Self::default()
    }

    /// Flows held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// A new flow at `now`: handed out at once when the kernel side captures nothing of it,
    /// else held.
    pub fn conn(&mut self, c: &ConnRecord, now: u64, out: &mut Vec<Flow>) {
        let Some(dst) = socket(c.ip_version, &c.dst_addr, c.dst_port) else {
            return;
        };
        let src = (c.flags & conn_flags::SRC_BOUND != 0)
            .then(|| socket(c.ip_version, &c.src_addr, c.src_port))
            .flatten();
        let tcp = c.protocol == TCP;
        let held = Held {
            conn: *c,
            src,
            dst,
            tcp,
            syn_seq: None,
            pieces: Vec::new(),
            bytes: 0,
            deadline: now.saturating_add(FLOW_HOLD_NS),
        };
        if c.flags & conn_flags::CAPTURING == 0 {
            out.push(finish(held, false));
            return;
        }
        let key = (c.cookie, (!tcp).then_some(dst));
        // The same socket again (a UDP socket connected anew): the old flow is done.
        if let Some(old) = self.held.remove(&key) {
            self.bytes -= old.bytes;
            out.push(finish(old, false));
        }
        if let Some(old) = self.late.remove(&key) {
            self.late_bytes -= old.bytes;
        }
        while self.held.len() >= MAX_HELD {
            if !self.release_oldest(out) {
                break;
            }
        }
        self.held.insert(key, held);
        self.order.push_back((key, c.header.boot_ns));
    }

    /// One packet of a first flight.
    pub fn flight(&mut self, f: &Flight<'_>, out: &mut Vec<Flow>) {
        let Some(dst) = socket(f.ip_version, &f.dst_addr, f.dst_port) else {
            return;
        };
        let tcp = f.protocol == TCP;
        let key = (f.cookie, (!tcp).then_some(dst));
        let late = !self.held.contains_key(&key);
        let map = if late { &mut self.late } else { &mut self.held };
        let Some(h) = map.get_mut(&key) else {
            self.counters.flights_orphaned += 1;
            return;
        };
        h.src = socket(f.ip_version, &f.src_addr, f.src_port);
        if late && self.late_bytes + f.payload.len() > MAX_HELD_BYTES / 2 {
            // Late flights are a second chance: no room, no chance.
            return;
        }
        let added = add_piece(h, f);
        if late {
            self.late_bytes += added;
        } else {
            self.bytes += added;
        }
        let ready = f.flags & flight_flags::LAST != 0 || read(h).is_some_and(|ff| complete(&ff));
        if ready {
            let h = map.remove(&key).expect("present");
            if late {
                self.late_bytes -= h.bytes;
            } else {
                self.bytes -= h.bytes;
            }
            let flow = finish(h, late);
            if late {
                if flow.first_flight == FirstFlight::None {
                    return;
                }
                self.counters.late += 1;
            }
            out.push(flow);
        }
        while !late && self.bytes > MAX_HELD_BYTES {
            if !self.release_oldest(out) {
                break;
            }
        }
    }

    /// Hands out the flows whose hold is over at `now`, and forgets late ones.
    pub fn expire(&mut self, now: u64, out: &mut Vec<Flow>) {
        while let Some(&(key, _)) = self.order.front() {
            match self.held.get(&key) {
                None => {
                    self.order.pop_front();
                }
                Some(h) if h.deadline <= now => {
                    self.order.pop_front();
                    let h = self.held.remove(&key).expect("present");
                    self.bytes -= h.bytes;
                    self.hand_out(key, h, now, out);
                }
                Some(_) => break,
            }
        }
        while let Some(&(key, deadline)) = self.late_order.front() {
            if deadline > now && self.late.len() <= MAX_HELD {
                break;
            }
            self.late_order.pop_front();
            if self.late.get(&key).is_some_and(|h| h.deadline == deadline) {
                let h = self.late.remove(&key).expect("present");
                self.late_bytes -= h.bytes;
            }
        }
    }

    /// Hands out the oldest held flow; false when none is held.
    fn release_oldest(&mut self, out: &mut Vec<Flow>) -> bool {
        while let Some((key, _)) = self.order.pop_front() {
            if let Some(h) = self.held.remove(&key) {
                self.bytes -= h.bytes;
                self.counters.released_early += 1;
                let now = h.deadline.saturating_sub(FLOW_HOLD_NS);
                self.hand_out(key, h, now, out);
                return true;
            }
        }
        false
    }

    /// Hands out a flow whose time is up; one without any first flight yet is remembered
    /// for a late one.
    fn hand_out(&mut self, key: Key, h: Held, now: u64, out: &mut Vec<Flow>) {
        let nothing_yet = h.pieces.iter().all(|(_, p)| p.is_empty());
        let flow = finish_ref(&h, false);
        out.push(flow);
        if nothing_yet {
            let deadline = now.saturating_add(LATE_KEEP_NS);
            let mut h = h;
            h.deadline = deadline;
            self.late.insert(key, h);
            self.late_order.push_back((key, deadline));
        }
    }

    /// Every held flow, handed out now (the sensor stops).
    pub fn drain(&mut self, out: &mut Vec<Flow>) {
        for (key, _) in std::mem::take(&mut self.order) {
            if let Some(h) = self.held.remove(&key) {
                out.push(finish(h, false));
            }
        }
        self.bytes = 0;
    }
}

/// Adds a flight's packet to a held flow; returns the bytes added.
fn add_piece(h: &mut Held, f: &Flight<'_>) -> usize {
    if !h.tcp {
        h.pieces.push((0, f.payload.to_vec()));
        h.bytes += f.payload.len();
        return f.payload.len();
    }
    if f.flags & flight_flags::SYN != 0 {
        h.syn_seq = Some(f.seq);
    }
    // Without the SYN, the first data segment seen starts the stream.
    let base = h
        .syn_seq
        .get_or_insert(f.seq.wrapping_sub(1))
        .wrapping_add(1);
    if f.payload.is_empty() {
        return 0;
    }
    let offset = f.seq.wrapping_sub(base);
    if offset > tunnelwatch_common::limits::FLIGHT_TCP_BYTES {
        return 0;
    }
    h.pieces.push((offset, f.payload.to_vec()));
    h.bytes += f.payload.len();
    f.payload.len()
}

/// The TCP stream from offset 0 as far as it is contiguous.
fn stream(pieces: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut sorted: Vec<&(u32, Vec<u8>)> = pieces.iter().collect();
    sorted.sort_by_key(|(o, _)| *o);
    let mut s: Vec<u8> = Vec::new();
    for (offset, data) in sorted {
        let offset = *offset as usize;
        if offset > s.len() {
            break;
        }
        let end = offset + data.len();
        if end > s.len() {
            s.extend_from_slice(&data[s.len() - offset..]);
        }
    }
    s
}

/// What the pieces so far say; `None` when there is nothing to read yet.
fn read(h: &Held) -> Option<FirstFlight> {
    if h.tcp {
        let s = stream(&h.pieces);
        if s.is_empty() {
            return None;
        }
        Some(match tls::client_hello_from_records(&s) {
            Ok(hello) => FirstFlight::Tls(hello),
            Err(TlsError::NotHandshake) => {
                FirstFlight::Other(s[..s.len().min(OTHER_KEEP)].to_vec())
            }
            Err(e) => FirstFlight::Unreadable(e.to_string()),
        })
    } else {
        let datagrams: Vec<&[u8]> = h.pieces.iter().map(|(_, d)| d.as_slice()).collect();
        let first = datagrams.first()?;
        Some(match quic::client_hello(&datagrams) {
            Ok(i) => FirstFlight::Quic {
                version: i.version,
                hello: i.client_hello,
            },
            Err(QuicError::NotQuic) => {
                FirstFlight::Other(first[..first.len().min(OTHER_KEEP)].to_vec())
            }
            Err(e) => FirstFlight::Unreadable(e.to_string()),
        })
    }
}

/// Whether a first flight needs nothing more.
fn complete(f: &FirstFlight) -> bool {
    match f {
        FirstFlight::Tls(h) | FirstFlight::Quic { hello: h, .. } => h.complete,
        FirstFlight::Other(_) => true,
        FirstFlight::None | FirstFlight::Unreadable(_) => false,
    }
}

fn finish(h: Held, late: bool) -> Flow {
    finish_ref(&h, late)
}

fn finish_ref(h: &Held, late: bool) -> Flow {
    Flow {
        conn: h.conn,
        src: h.src,
        dst: h.dst,
        tcp: h.tcp,
        first_flight: read(h).unwrap_or(FirstFlight::None),
        late,
    }
}

#[cfg(test)]
mod tests {
    use tunnelwatch_common::{RECORD_VERSION, RecordHeader, RecordKind, records::conn_origin};

    use super::*;
    use crate::net::{
        quic::{VERSION_1, crypto_frame, protect_client_initial},
        tls::tests::{alpn, client_hello, records, sni},
    };

    fn conn(cookie: u64, tcp: bool, dst: [u8; 4], port: u16, flags: u8, at: u64) -> ConnRecord {
        let mut c = ConnRecord {
            header: RecordHeader {
                kind: RecordKind::Conn as u8,
                version: RECORD_VERSION,
                _pad: 0,
                size: size_of::<ConnRecord>() as u32,
                boot_ns: at,
            },
            cookie,
            origin: conn_origin::CONNECT,
            ip_version: 4,
            protocol: if tcp { 6 } else { 17 },
            flags,
            dst_port: port,
            ..ConnRecord::default()
        };
        c.dst_addr[..4].copy_from_slice(&dst);
        c
    }

    fn flight<'a>(
        cookie: u64,
        tcp: bool,
        dst: [u8; 4],
        flags: u8,
        seq: u32,
        payload: &'a [u8],
    ) -> Flight<'a> {
        flight_to(cookie, tcp, dst, 443, flags, seq, payload)
    }

    fn flight_to<'a>(
        cookie: u64,
        tcp: bool,
        dst: [u8; 4],
        port: u16,
        flags: u8,
        seq: u32,
        payload: &'a [u8],
    ) -> Flight<'a> {
        let mut d = [0u8; 16];
        d[..4].copy_from_slice(&dst);
        let mut s = [0u8; 16];
        s[..4].copy_from_slice(&[10, 0, 0, 1]);
        Flight {
            boot_ns: 0,
            cookie,
            ip_version: 4,
            protocol: if tcp { 6 } else { 17 },
            flags,
            index: 0,
            src_port: 40000,
            dst_port: port,
            src_addr: s,
            dst_addr: d,
            seq,
            payload_len: payload.len() as u32,
            payload,
        }
    }

    const DST: [u8; 4] = [192, 0, 2, 1];
    const CAP: u8 = conn_flags::CAPTURING;

    #[test]
    fn tcp_client_hello_over_segments_is_read_when_whole() {
        let mut flows = Flows::new();
        let mut out = Vec::new();
        flows.conn(&conn(7, true, DST, 443, CAP, 0), 0, &mut out);
        assert!(out.is_empty() && flows.held() == 1);
        let hello = records(
            &client_hello(&[sni("tunnel.example"), alpn(&["h2"])]),
            16384,
        );
        let (a, b) = hello.split_at(20);
        flows.flight(
            &flight(7, true, DST, flight_flags::SYN, 1000, &[]),
            &mut out,
        );
        // Out of order: the second segment first.
        flows.flight(&flight(7, true, DST, 0, 1001 + 20, b), &mut out);
        assert!(out.is_empty());
        flows.flight(&flight(7, true, DST, 0, 1001, a), &mut out);
        assert_eq!(
            out.len(),
            1,
            "handed out as soon as the ClientHello is whole"
        );
        let f = &out[0];
        assert_eq!(f.src, Some("10.0.0.1:40000".parse().unwrap()));
        assert_eq!(f.dst, "192.0.2.1:443".parse().unwrap());
        let FirstFlight::Tls(h) = &f.first_flight else {
            panic!("{:?}", f.first_flight)
        };
        assert_eq!(h.server_name.as_deref(), Some("tunnel.example"));
        assert_eq!(flows.held(), 0);
        assert_eq!(flows.bytes, 0);
        // A retransmission after the end is an orphan.
        flows.flight(&flight(7, true, DST, 0, 1001, a), &mut out);
        assert_eq!(flows.counters.flights_orphaned, 1);
    }

    #[test]
    fn hold_expires_then_a_late_client_hello_is_reported_again() {
        let mut flows = Flows::new();
        let mut out = Vec::new();
        flows.conn(&conn(8, true, DST, 443, CAP, 0), 0, &mut out);
        flows.expire(FLOW_HOLD_NS - 1, &mut out);
        assert!(out.is_empty());
        flows.expire(FLOW_HOLD_NS, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].first_flight, FirstFlight::None);
        assert_eq!(out[0].src, None, "no packet named the source");
        assert!(!out[0].late);
        let hello = records(&client_hello(&[sni("far.example")]), 16384);
        flows.flight(
            &flight(8, true, DST, flight_flags::LAST, 6, &hello),
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert!(out[1].late);
        assert!(
            matches!(&out[1].first_flight, FirstFlight::Tls(h) if h.server_name.as_deref() == Some("far.example"))
        );
        assert_eq!(flows.counters.late, 1);
        // Late entries are forgotten after LATE_KEEP_NS.
        flows.conn(&conn(9, true, DST, 443, CAP, 0), 0, &mut out);
        flows.expire(FLOW_HOLD_NS, &mut out);
        flows.expire(FLOW_HOLD_NS + LATE_KEEP_NS, &mut out);
        assert!(flows.late.is_empty() && flows.late_order.is_empty());
    }

    #[test]
    fn udp_quic_and_other_and_uncaptured() {
        let mut flows = Flows::new();
        let mut out = Vec::new();
        // Not captured (a DNS port): handed out at once.
        flows.conn(&conn(1, false, DST, 53, 0, 0), 0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].first_flight, FirstFlight::None);
        // QUIC.
        flows.conn(&conn(2, false, DST, 443, CAP, 0), 0, &mut out);
        let msg = client_hello(&[sni("quic.example"), alpn(&["h3"])]);
        let p =
            protect_client_initial(VERSION_1, &[3; 8], 0, &crypto_frame(0, &msg), 1200).unwrap();
        flows.flight(&flight(2, false, DST, 0, 0, &p), &mut out);
        assert_eq!(out.len(), 2);
        assert!(
            matches!(&out[1].first_flight, FirstFlight::Quic { version: VERSION_1, hello } if hello.server_name.as_deref() == Some("quic.example"))
        );
        // Something else: its bytes, at once.
        flows.conn(&conn(3, false, DST, 5300, CAP, 0), 0, &mut out);
        flows.flight(
            &flight_to(3, false, DST, 5300, 0, 0, b"\x12\x34\x01\x00"),
            &mut out,
        );
        assert_eq!(
            out[2].first_flight,
            FirstFlight::Other(b"\x12\x34\x01\x00".to_vec())
        );
        // A datagram to another destination of the same socket belongs to no held flow.
        flows.conn(&conn(4, false, DST, 443, CAP, 0), 0, &mut out);
        flows.flight(&flight(4, false, [192, 0, 2, 2], 0, 0, b"x"), &mut out);
        assert_eq!(flows.counters.flights_orphaned, 1);
        // A cut QUIC Initial: unreadable once the kernel side says it sent all it will.
        flows.flight(
            &flight(4, false, DST, flight_flags::LAST, 0, &p[..100]),
            &mut out,
        );
        assert!(
            matches!(out[3].first_flight, FirstFlight::Unreadable(_)),
            "{:?}",
            out[3]
        );
    }

    #[test]
    fn bounded_by_flows_and_bytes() {
        let mut flows = Flows::new();
        let mut out = Vec::new();
        for i in 0..(MAX_HELD as u64 + 10) {
            flows.conn(&conn(i + 1, true, DST, 443, CAP, i), i, &mut out);
        }
        assert_eq!(flows.held(), MAX_HELD);
        assert_eq!(out.len(), 10);
        assert_eq!(out[0].conn.cookie, 1, "the oldest first");
        assert_eq!(flows.counters.released_early, 10);
        // Bytes: every held flow sends 4 KiB that do not make a whole ClientHello.
        let partial = records(
            &client_hello(&[sni("x.example"), (21, vec![0; 8000])]),
            16384,
        );
        out.clear();
        for i in 0..(MAX_HELD as u64) {
            flows.flight(&flight(i + 11, true, DST, 0, 0, &partial[..4096]), &mut out);
        }
        assert!(flows.bytes <= MAX_HELD_BYTES, "{}", flows.bytes);
        assert!(!out.is_empty());
        let mut rest = Vec::new();
        flows.drain(&mut rest);
        assert_eq!(flows.held(), 0);
        assert_eq!(out.len() + rest.len(), MAX_HELD);
    }
}
