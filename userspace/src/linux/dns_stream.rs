//! DNS over TCP put back together per stream. The kernel side sends every TCP segment to or
//! from a DNS port with its sequence number and flags (`DnsRecord::tcp_seq`, `tcp_flags`);
//! here each stream's bytes are laid in order and cut into messages at their two-byte length
//! prefixes, so a message split across segments (the prefix in one `send()`, the rest in
//! another; a split inside a name), several messages in one segment and pipelined messages
//! that straddle segments are all decoded, and data carried in a SYN (TCP Fast Open) starts
//! its stream.
//!
//! A stream is one direction of one socket as one hook saw it (socket cookie, direction,
//! addresses and ports). Its state ends with its FIN or RST, when it has been idle for
//! [`IDLE_NS`], or when [`STREAMS_MAX`] streams are held and it is the least recently used.
//! What a stream holds is bounded: [`STREAM_BYTES_MAX`] bytes of the message being put
//! together (a longer one is decoded from its first part, as a message cut by the capture
//! limit is, and the rest of it skipped by its length) and [`AHEAD_MAX`] segments that came
//! ahead of a gap. Bytes that cannot be placed in a message (a gap that never fills, a stream
//! ended or evicted with bytes held, a message boundary lost in bytes the capture cut) are
//! counted in [`Streams::dropped`]; the stream then takes the next segment as the start of a
//! message, where the plausibility checks of `parse_tcp_message` decide (as for a stream first
//! seen in its middle, when the sensor starts during a connection). One segment yields at most
//! `MAX_TCP_MESSAGES` messages (the rest is dropped and counted).
//!
//! Uses: the engine's DNS decoding and the kernel-user ABI's TCP flags.

use tunnelwatch_common::records::tcp_flags;
use tunnelwatch_engine::dns::{self, DnsMessage, MAX_TCP_MESSAGES};

/// Streams held at most.
pub const STREAMS_MAX: usize = 256;
/// Bytes of an unfinished message a stream holds at most.
pub const STREAM_BYTES_MAX: usize = 8 * 1024;
/// Segments held ahead of a gap, per stream.
pub const AHEAD_MAX: usize = 4;
/// A stream idle this long (boot-time nanoseconds) is forgotten.
pub const IDLE_NS: u64 = 30_000_000_000;

/// Which stream a segment belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub cookie: u64,
    pub direction: u8,
    pub src: ([u8; 16], u16),
    pub dst: ([u8; 16], u16),
}

/// One TCP segment as the kernel side saw it.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    /// Sequence number (of the SYN itself when `flags` has SYN).
    pub seq: u32,
    pub flags: u8,
    /// The captured part of the payload.
    pub data: &'a [u8],
    /// The payload's length in the packet (`data` may be shorter: the capture limit).
    pub len: u32,
    /// Boot-time nanoseconds.
    pub now_ns: u64,
}

/// The streams being put together.
#[derive(Default)]
pub struct Streams {
    streams: foldhash::HashMap<StreamKey, Stream>,
    /// Segments (or runs of bytes) discarded without being decoded.
    pub dropped: u64,
    /// Messages whose bytes are not DNS (counted with the undecodable payloads).
    pub undecodable: u64,
}

#[derive(Default)]
struct Stream {
    /// Sequence number of the next byte in order.
    next: u32,
    /// Bytes from a message boundary on (length prefix included), not yet a whole message.
    buf: Vec<u8>,
    /// Bytes in order still to discard before the next message starts.
    skip: usize,
    /// Segments that came ahead of `next`.
    ahead: Vec<Held>,
    /// Whether `buf` starts at a message boundary. A stream first seen in its middle, or that
    /// lost its place, takes the next segment that may start a message as one.
    synced: bool,
    last_ns: u64,
}

struct Held {
    seq: u32,
    data: Vec<u8>,
    len: u32,
}

impl Stream {
    /// Whether it holds bytes that would be lost with it.
    fn holds_bytes(&self) -> bool {
        !self.buf.is_empty() || !self.ahead.is_empty()
    }
}

impl Streams {
    /// Streams held now.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Takes one segment of stream `key`; appends the messages it completes to `out`.
    pub fn segment(&mut self, key: StreamKey, seg: Segment<'_>, out: &mut Vec<DnsMessage>) {
        // A record claiming fewer payload bytes than it carries (not the kernel's) is taken
        // at its claim.
        let seg = Segment {
            data: &seg.data[..seg.data.len().min(seg.len as usize)],
            ..seg
        };
        let ends = seg.flags & (tcp_flags::FIN | tcp_flags::RST) != 0;
        // Fast Open data follows the SYN's own sequence number.
        let start = if seg.flags & tcp_flags::SYN != 0 {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        if seg.len > 0 {
            if !self.streams.contains_key(&key) && self.streams.len() >= STREAMS_MAX {
                self.evict_oldest();
            }
            let stream = self.streams.entry(key).or_insert_with(|| Stream {
                next: start,
                // Fast Open data is the stream's first byte; any other first segment is
                // checked.
                synced: seg.flags & tcp_flags::SYN != 0,
                ..Stream::default()
            });
            stream.last_ns = seg.now_ns;
            let mut c = Counts::default();
            place(stream, start, seg.data, seg.len, out, &mut c);
            self.add(c);
        }
        if ends && let Some(stream) = self.streams.remove(&key) {
            self.end(stream, out);
        }
    }

    /// Forgets the streams idle since before `now_ns - IDLE_NS`.
    pub fn expire(&mut self, now_ns: u64) {
        let mut dropped = 0;
        self.streams.retain(|_, s| {
            let keep = now_ns.saturating_sub(s.last_ns) < IDLE_NS;
            if !keep && s.holds_bytes() {
                dropped += 1;
            }
            keep
        });
        self.dropped += dropped;
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .streams
            .iter()
            .min_by_key(|(_, s)| s.last_ns)
            .map(|(k, _)| *k);
        if let Some(stream) = oldest.and_then(|k| self.streams.remove(&k))
            && stream.holds_bytes()
        {
            self.dropped += 1;
        }
    }

    /// A stream's end (FIN or RST): an unfinished message is decoded as far as it goes.
    fn end(&mut self, mut stream: Stream, out: &mut Vec<DnsMessage>) {
        if !stream.ahead.is_empty() {
            self.dropped += 1;
        }
        if stream.buf.len() >= 2 {
            let mut c = Counts::default();
            decode_front_part(&mut stream, 0, out, &mut c);
            self.add(c);
        } else if !stream.buf.is_empty() {
            self.dropped += 1;
        }
    }

    fn add(&mut self, c: Counts) {
        self.dropped += c.dropped;
        self.undecodable += c.undecodable;
    }
}

#[derive(Default)]
struct Counts {
    dropped: u64,
    undecodable: u64,
}

/// Lays a segment's bytes (starting at sequence number `start`) into the stream, then any
/// held segment that now follows in order.
fn place(
    stream: &mut Stream,
    start: u32,
    data: &[u8],
    len: u32,
    out: &mut Vec<DnsMessage>,
    c: &mut Counts,
) {
    let offset = start.wrapping_sub(stream.next) as i32;
    if offset > 0 {
        hold(stream, start, data, len, out, c);
        return;
    }
    // Bytes already seen (a retransmission, an overlap) are left out.
    let old = offset.unsigned_abs();
    if old >= len {
        return;
    }
    let data = &data[(old as usize).min(data.len())..];
    feed(stream, data, (len - old) as usize - data.len(), out, c);
    while let Some(i) = stream
        .ahead
        .iter()
        .position(|h| h.seq.wrapping_sub(stream.next) as i32 <= 0)
    {
        let h = stream.ahead.swap_remove(i);
        place(stream, h.seq, &h.data, h.len, out, c);
    }
}

/// Keeps a segment that came ahead of a gap. When too many wait, the gap is given up: the
/// stream starts again at the earliest one, taken as a message boundary.
fn hold(
    stream: &mut Stream,
    start: u32,
    data: &[u8],
    len: u32,
    out: &mut Vec<DnsMessage>,
    c: &mut Counts,
) {
    stream.ahead.push(Held {
        seq: start,
        data: data.to_vec(),
        len,
    });
    if stream.ahead.len() <= AHEAD_MAX {
        return;
    }
    c.dropped += 1;
    let next = stream.next;
    let mut held = std::mem::take(&mut stream.ahead);
    held.sort_by_key(|h| h.seq.wrapping_sub(next));
    stream.buf.clear();
    stream.skip = 0;
    stream.synced = false;
    stream.next = held[0].seq;
    for h in held {
        place(stream, h.seq, &h.data, h.len, out, c);
    }
}

/// Appends in-order bytes (`missing` more that the capture cut follow them) and decodes the
/// messages they complete.
fn feed(
    stream: &mut Stream,
    mut data: &[u8],
    mut missing: usize,
    out: &mut Vec<DnsMessage>,
    c: &mut Counts,
) {
    stream.next = stream.next.wrapping_add((data.len() + missing) as u32);
    if stream.skip > 0 {
        let n = stream.skip.min(data.len());
        data = &data[n..];
        stream.skip -= n;
        let n = stream.skip.min(missing);
        missing -= n;
        stream.skip -= n;
    }
    if !stream.synced && !data.is_empty() {
        if !dns::may_start_tcp_message(data) {
            // The middle of a message whose start was not seen.
            c.undecodable += 1;
            if missing > 0 {
                c.dropped += 1;
            }
            return;
        }
        stream.synced = true;
    }
    stream.buf.extend_from_slice(data);
    let mut used = 0;
    let mut lost = false;
    while let Some(&[hi, lo]) = stream.buf.get(used..used + 2) {
        if out.len() >= MAX_TCP_MESSAGES {
            // More whole messages than one segment may yield (no client pipelines so many):
            // the rest is dropped, and the stream takes the next segment that may start one.
            c.dropped += 1;
            lost = true;
            break;
        }
        let declared = usize::from(u16::from_be_bytes([hi, lo]));
        let Some(body) = stream.buf.get(used + 2..used + 2 + declared) else {
            break;
        };
        match dns::parse_tcp_message(declared, body) {
            Some(m) => out.push(m),
            None => {
                // Not a message: where the next one starts is unknown.
                c.undecodable += 1;
                lost = true;
                break;
            }
        }
        used += 2 + declared;
    }
    stream.buf.drain(..used);
    if lost {
        stream.buf.clear();
        stream.skip = 0;
        stream.synced = false;
        if missing > 0 {
            c.dropped += 1;
        }
        return;
    }
    if missing > 0 || stream.buf.len() > STREAM_BYTES_MAX {
        decode_front_part(stream, missing, out, c);
    }
    if stream.buf.is_empty() && stream.buf.capacity() > STREAM_BYTES_MAX {
        stream.buf = Vec::new();
    }
}

/// The message at the front of the buffer cannot be completed in memory (the capture cut
/// `missing` bytes after it, or it is longer than a stream holds): it is decoded from its
/// first part, and the rest of it skipped as it comes.
fn decode_front_part(
    stream: &mut Stream,
    missing: usize,
    out: &mut Vec<DnsMessage>,
    c: &mut Counts,
) {
    let Some(&[hi, lo]) = stream.buf.get(..2) else {
        // Not even its length: the next boundary is unknown.
        stream.buf.clear();
        stream.skip = 0;
        stream.synced = false;
        c.dropped += 1;
        return;
    };
    let declared = usize::from(u16::from_be_bytes([hi, lo]));
    let have = stream.buf.len() - 2;
    match dns::parse_tcp_message(declared, &stream.buf[2..]) {
        Some(m) if out.len() < MAX_TCP_MESSAGES => out.push(m),
        Some(_) => c.dropped += 1,
        None => c.undecodable += 1,
    }
    let rest = declared.saturating_sub(have);
    stream.buf.clear();
    if missing <= rest {
        stream.skip = rest - missing;
    } else {
        // The next message starts within the bytes the capture cut.
        stream.skip = 0;
        stream.synced = false;
        c.dropped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DNS query for `name` (type A), with id `id`, with its TCP length prefix.
    fn query(id: u16, name: &str) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        let mut framed = (m.len() as u16).to_be_bytes().to_vec();
        framed.extend(m);
        framed
    }

    /// `query` padded to `body_len` bytes with an additional record's worth of zeros.
    fn padded(id: u16, name: &str, extra: usize) -> Vec<u8> {
        let mut big = query(id, name);
        let body_len = big.len() - 2 + extra;
        big[..2].copy_from_slice(&(body_len as u16).to_be_bytes());
        // ARCOUNT 1: the padding is a record, as far as the header's counts go.
        big[2 + 11] = 1;
        big.resize(2 + body_len, 0);
        big
    }

    fn key(cookie: u64) -> StreamKey {
        StreamKey {
            cookie,
            direction: 1,
            src: ([127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 40000),
            dst: ([127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 53),
        }
    }

    fn seg(seq: u32, flags: u8, data: &[u8]) -> Segment<'_> {
        Segment {
            seq,
            flags,
            data,
            len: data.len() as u32,
            now_ns: 1,
        }
    }

    fn names(out: &[DnsMessage]) -> Vec<String> {
        out.iter().map(|m| m.questions[0].name.clone()).collect()
    }

    /// Feeds `pieces` as consecutive segments from sequence number `isn`; the names decoded.
    fn run(streams: &mut Streams, k: StreamKey, isn: u32, pieces: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        let mut seq = isn;
        for p in pieces {
            streams.segment(k, seg(seq, 0x18, p), &mut out);
            seq = seq.wrapping_add(p.len() as u32);
        }
        names(&out)
    }

    #[test]
    fn a_message_split_after_its_length_prefix_or_inside_its_name_is_decoded() {
        let q = query(7, "abc.ngrok.io");
        let mut s = Streams::default();
        assert_eq!(
            run(&mut s, key(1), 1000, &[&q[..2], &q[2..]]),
            ["abc.ngrok.io"]
        );
        assert_eq!(
            run(&mut s, key(2), 5, &[&q[..17], &q[17..]]),
            ["abc.ngrok.io"]
        );
        // One byte at a time, across the sequence number's wrap.
        let bytes: Vec<&[u8]> = q.chunks(1).collect();
        assert_eq!(run(&mut s, key(3), u32::MAX - 5, &bytes), ["abc.ngrok.io"]);
        assert_eq!((s.dropped, s.undecodable), (0, 0));
    }

    #[test]
    fn several_messages_in_one_segment_and_pipelined_ones_straddling_segments() {
        let (a, b, c) = (
            query(1, "a.example"),
            query(2, "b.ngrok.io"),
            query(3, "c.example"),
        );
        let all = [a.clone(), b, c].concat();
        let mut s = Streams::default();
        assert_eq!(
            run(&mut s, key(1), 0, &[&all]),
            ["a.example", "b.ngrok.io", "c.example"]
        );
        let cut = a.len() + 5;
        assert_eq!(
            run(&mut s, key(2), 0, &[&all[..cut], &all[cut..]]),
            ["a.example", "b.ngrok.io", "c.example"]
        );
    }

    #[test]
    fn fast_open_data_in_the_syn_starts_the_stream() {
        let q = query(9, "tfo.ngrok.io");
        let mut s = Streams::default();
        let mut out = Vec::new();
        // The SYN at sequence 100 carries the first 6 bytes, which start at 101.
        s.segment(key(1), seg(100, tcp_flags::SYN, &q[..6]), &mut out);
        assert!(out.is_empty());
        s.segment(key(1), seg(101 + 6, 0x18, &q[6..]), &mut out);
        assert_eq!(names(&out), ["tfo.ngrok.io"]);
    }

    #[test]
    fn segments_out_of_order_and_retransmitted_are_placed_by_sequence_number() {
        let first = query(3, "first.example");
        let q = query(4, "late.ngrok.io");
        let mut s = Streams::default();
        let mut out = Vec::new();
        s.segment(key(1), seg(0, 0x18, &first), &mut out);
        let at = first.len() as u32;
        // The second half of the next message comes first.
        s.segment(key(1), seg(at + 8, 0x18, &q[8..]), &mut out);
        assert_eq!(names(&out), ["first.example"]);
        s.segment(key(1), seg(at, 0x18, &q[..8]), &mut out);
        assert_eq!(names(&out), ["first.example", "late.ngrok.io"]);
        // The same bytes again, and an overlap: nothing twice.
        s.segment(key(1), seg(at, 0x18, &q), &mut out);
        assert_eq!(out.len(), 2);
        let r = query(5, "next.example");
        let both = [&q[4..], &r[..]].concat();
        s.segment(key(1), seg(at + 4, 0x18, &both), &mut out);
        assert_eq!(
            names(&out),
            ["first.example", "late.ngrok.io", "next.example"]
        );
        assert_eq!((s.dropped, s.undecodable), (0, 0));
    }

    #[test]
    fn fin_and_rst_end_a_stream_and_a_gap_that_never_fills_is_given_up_and_counted() {
        let mut s = Streams::default();
        let mut out = Vec::new();
        let q = query(1, "a.example");
        s.segment(key(1), seg(0, 0x18, &q), &mut out);
        assert_eq!(s.len(), 1);
        s.segment(
            key(1),
            seg(q.len() as u32, tcp_flags::FIN | tcp_flags::ACK, &[]),
            &mut out,
        );
        assert_eq!(s.len(), 0);
        s.segment(key(2), seg(0, 0x18, &q), &mut out);
        s.segment(key(2), seg(0, tcp_flags::RST, &[]), &mut out);
        assert!(s.is_empty());
        assert_eq!(s.dropped, 0);
        // A segment lost before user space saw it: the ones after it wait, then the stream
        // starts again at the first of them.
        let msgs: Vec<Vec<u8>> = (0..7).map(|i| query(i, &format!("m{i}.example"))).collect();
        let mut seq = 0u32;
        let mut starts = Vec::new();
        for m in &msgs {
            starts.push(seq);
            seq += m.len() as u32;
        }
        out.clear();
        for (i, m) in msgs.iter().enumerate() {
            if i != 1 {
                s.segment(key(3), seg(starts[i], 0x18, m), &mut out);
            }
        }
        assert_eq!(
            names(&out),
            [
                "m0.example",
                "m2.example",
                "m3.example",
                "m4.example",
                "m5.example",
                "m6.example"
            ]
        );
        assert_eq!(s.dropped, 1);
    }

    #[test]
    fn a_message_longer_than_a_stream_holds_is_decoded_from_its_first_part_and_skipped() {
        // A query padded far beyond the bound: its question decodes, the rest is skipped by
        // its length and the next message is found.
        let all = [padded(1, "big.ngrok.io", 20_000), query(2, "after.example")].concat();
        let pieces: Vec<&[u8]> = all.chunks(1400).collect();
        let mut s = Streams::default();
        assert_eq!(
            run(&mut s, key(1), 0, &pieces),
            ["big.ngrok.io", "after.example"]
        );
        assert_eq!(s.dropped, 0);
    }

    #[test]
    fn bytes_the_capture_cut_are_skipped_by_the_message_length() {
        let big = padded(1, "cut.ngrok.io", 3000);
        let all = [big.clone(), query(2, "after.example")].concat();
        let mut s = Streams::default();
        let mut out = Vec::new();
        // One segment holds the big message and 100 bytes of the next, but only 2048 bytes
        // were captured: the next message's start was in the cut bytes, given up, counted.
        let cut = |len: usize| Segment {
            seq: 0,
            flags: 0x18,
            data: &all[..2048],
            len: len as u32,
            now_ns: 1,
        };
        s.segment(key(1), cut(big.len() + 100), &mut out);
        assert_eq!(names(&out), ["cut.ngrok.io"]);
        assert_eq!(s.dropped, 1);
        // Cut bytes that end inside the message: the stream resumes at the next one.
        let mut s = Streams::default();
        out.clear();
        s.segment(key(1), cut(2500), &mut out);
        s.segment(key(1), seg(2500, 0x18, &all[2500..]), &mut out);
        assert_eq!(names(&out), ["cut.ngrok.io", "after.example"]);
        assert_eq!(s.dropped, 0);
    }

    #[test]
    fn streams_are_bounded_in_number_and_expire() {
        let mut s = Streams::default();
        let q = query(1, "a.example");
        let mut out = Vec::new();
        for i in 0..(STREAMS_MAX as u64 + 10) {
            // Half a message each: every stream holds bytes.
            s.segment(
                key(i),
                Segment {
                    now_ns: i,
                    ..seg(0, 0x18, &q[..5])
                },
                &mut out,
            );
        }
        assert_eq!(s.len(), STREAMS_MAX);
        assert_eq!(s.dropped, 10);
        // The oldest went; the newest are there.
        assert!(s.streams.contains_key(&key(STREAMS_MAX as u64 + 9)));
        assert!(!s.streams.contains_key(&key(0)));
        s.expire(IDLE_NS + STREAMS_MAX as u64 + 20);
        assert!(s.is_empty());
        assert_eq!(s.dropped, 10 + STREAMS_MAX as u64);
    }

    #[test]
    fn a_segment_claiming_less_than_it_carries_is_taken_at_its_claim() {
        // Found by the record_decode fuzz target: captured bytes beyond the payload length.
        let q = query(1, "a.example");
        let mut s = Streams::default();
        let mut out = Vec::new();
        s.segment(key(1), seg(0, 0x18, &q[..4]), &mut out);
        let claim = Segment {
            len: 2,
            ..seg(4, 0x18, &q[4..])
        };
        s.segment(key(1), claim, &mut out);
        s.segment(key(1), seg(6, 0x18, &q[6..]), &mut out);
        assert_eq!(names(&out), ["a.example"]);
    }

    #[test]
    fn a_stream_seen_from_its_middle_resynchronises_on_a_segment_that_starts_a_message() {
        let q = query(3, "mid.ngrok.io");
        let mut s = Streams::default();
        let mut out = Vec::new();
        // The tail of a message the sensor did not see start.
        s.segment(key(1), seg(50, 0x18, &q[9..]), &mut out);
        assert!(out.is_empty());
        assert_eq!(s.undecodable, 1);
        let at = 50 + (q.len() - 9) as u32;
        s.segment(key(1), seg(at, 0x18, &q), &mut out);
        assert_eq!(names(&out), ["mid.ngrok.io"]);
    }
}
