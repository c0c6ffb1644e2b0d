//! Just enough of the DNS wire format for the bench's client and responder: a query with one
//! question, and an answer to it (A -> 127.0.0.1, AAAA -> ::1, other types: no answer).
//!
//! May use: the standard library only.

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// Writes a recursive query for `name` (dotted, no trailing dot) into `buf`.
pub fn query(buf: &mut Vec<u8>, id: u16, name: &str, qtype: u16) {
    buf.clear();
    buf.extend_from_slice(&id.to_be_bytes());
    buf.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    buf.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    buf.extend_from_slice(&[0; 6]); // AN, NS, AR
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let label = &label.as_bytes()[..label.len().min(63)];
        buf.push(label.len() as u8);
        buf.extend_from_slice(label);
    }
    buf.push(0);
    buf.extend_from_slice(&qtype.to_be_bytes());
    buf.extend_from_slice(&CLASS_IN.to_be_bytes());
}

/// Writes the response to `q` into `out`; false when `q` is not a query with one question.
pub fn answer(q: &[u8], out: &mut Vec<u8>) -> bool {
    if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return false;
    }
    // The question's name: labels up to the root (no compression in a query).
    let mut at = 12;
    loop {
        let Some(&len) = q.get(at) else {
            return false;
        };
        if len == 0 {
            at += 1;
            break;
        }
        if len & 0xc0 != 0 {
            return false;
        }
        at += 1 + len as usize;
    }
    let qend = at + 4;
    if qend > q.len() {
        return false;
    }
    let qtype = u16::from_be_bytes([q[at], q[at + 1]]);
    let rdata: &[u8] = match qtype {
        TYPE_A => &[127, 0, 0, 1],
        TYPE_AAAA => &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        _ => &[],
    };
    out.clear();
    out.extend_from_slice(&q[..qend]);
    out[2] = 0x80 | (q[2] & 0x01); // QR, RD as asked
    out[3] = 0x80; // RA, NOERROR
    let ancount: u16 = if rdata.is_empty() { 0 } else { 1 };
    out[6..8].copy_from_slice(&ancount.to_be_bytes());
    out[8..12].copy_from_slice(&[0; 4]);
    if ancount == 1 {
        out.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&60u32.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_answer() {
        let mut q = Vec::new();
        query(&mut q, 0x1234, "a.example.test", TYPE_AAAA);
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert_eq!(&q[12..15], &[1, b'a', 7]);
        let mut a = Vec::new();
        assert!(answer(&q, &mut a));
        assert_eq!(a[2] & 0x80, 0x80);
        assert_eq!(&a[6..8], &[0, 1]);
        assert_eq!(&a[a.len() - 16..], &Ipv6::LOCALHOST.octets());
        assert!(!answer(&a, &mut Vec::new()), "a response is not answered");
        assert!(!answer(&q[..q.len() - 1], &mut Vec::new()));
    }

    use std::net::Ipv6Addr as Ipv6;
}
