//! Whether the first datagram of a UDP flow to a port that is not a DNS port is a DNS query
//! anyway (a resolver on 5353 or 5300, a tunnel's own resolver): the header must look like a
//! plain query (no answers, one question, at most an EDNS record) and the message must decode
//! whole with the sensor's DNS decoder. QUIC, TLS and most other protocols fail the header
//! already; what passes is a well-formed query, which is then treated as DNS.

use tunnelwatch_engine::dns::{self, DnsMessage};

/// Header length, and the shortest question (the root name, type, class).
const HEADER: usize = 12;
const MIN_QUESTION: usize = 5;
/// Class IN.
const CLASS_IN: u16 = 1;

/// The query `payload` holds, if it is one.
pub fn query(payload: &[u8]) -> Option<DnsMessage> {
    if payload.len() < HEADER + MIN_QUESTION {
        return None;
    }
    let be16 = |i: usize| u16::from_be_bytes([payload[i], payload[i + 1]]);
    let flags = be16(2);
    // QR clear, opcode QUERY, no AA/TC, Z and RCODE clear (RD, CD, AD may be set).
    if flags & 0xfe0f != 0 || flags & 0x0040 != 0 {
        return None;
    }
    let (qd, an, ns, ar) = (be16(4), be16(6), be16(8), be16(10));
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return None;
    }
    let m = dns::parse_message(payload, true).ok()?;
    (!m.partial && !m.response && m.questions.len() == 1 && m.questions[0].qclass == CLASS_IN)
        .then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name` (type A), with an EDNS OPT record when `edns`.
    fn query_bytes(name: &str, edns: bool) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, edns as u8];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend(label.as_bytes());
        }
        q.extend([0, 0, 1, 0, 1]);
        if edns {
            q.extend([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        }
        q
    }

    #[test]
    fn queries_pass() {
        for edns in [false, true] {
            let m = query(&query_bytes("agent.tunnel.example", edns)).expect("a query");
            assert_eq!(m.questions[0].name, "agent.tunnel.example");
            assert_eq!(m.id, 0x1234);
        }
    }

    #[test]
    fn other_protocols_and_near_misses_do_not() {
        let q = query_bytes("a.example", false);
        // A response, two questions, an answer count, a cut message, trailing garbage in the
        // name, a QUIC long header, a TLS record, nothing.
        let mut response = q.clone();
        response[2] |= 0x80;
        let mut two = q.clone();
        two[5] = 2;
        let mut answered = q.clone();
        answered[7] = 1;
        let quic = [
            0xc3u8, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x44, 0xd0,
        ];
        let tls = [0x16u8, 3, 1, 2, 0, 1, 0, 1, 0xfc, 3, 3, 0, 0, 0, 0, 0, 0];
        for bad in [
            &response[..],
            &two,
            &answered,
            &q[..q.len() - 2],
            &quic,
            &tls,
            &[],
        ] {
            assert!(query(bad).is_none(), "{bad:?}");
        }
    }
}
