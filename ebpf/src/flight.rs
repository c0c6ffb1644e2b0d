//! The first flight of new flows, from the cgroup_skb egress program (`dns.rs` hands it every
//! packet that is not DNS): a TCP connection's SYN (its source address and port; it arms the
//! connection's slot) and first data segments (a TLS ClientHello), the first datagrams of a
//! UDP flow `conn.rs` armed (a QUIC Initial, a DNS query to any port). Each flow is captured
//! once, bounded (see `tunnelwatch_common::limits`).
//!
//! The common path (a packet of a flow whose first flight is done or not wanted) must cost
//! almost nothing: a TCP segment without payload (an ACK) leaves on the headers `packet::peek`
//! read; any other packet hashes its addresses and ports (read by direct packet access) and
//! leaves after one inlined array lookup (`slots.rs`). No helper is called on that path.

use aya_ebpf::{
    helpers::{
        bpf_ktime_get_boot_ns,
        generated::{bpf_get_socket_cookie, bpf_skb_load_bytes},
    },
    programs::SkBuffContext,
};
use tunnelwatch_common::{
    FlightRecord, RECORD_VERSION, RecordKind,
    limits::{FLIGHT_CAPTURE_MAX, FLIGHT_TCP_BYTES, FLIGHT_TCP_SEGMENTS},
    records::flight_flags,
    stats,
};

use crate::{
    bounded::bounded,
    maps,
    packet::{self, Headers, IPPROTO_TCP, IPPROTO_UDP},
    slots::{self, Slot, want},
};

/// TLS: record type of a handshake, handshake type of a ClientHello.
const TLS_HANDSHAKE: u8 = 0x16;
const TLS_CLIENT_HELLO: u8 = 0x01;

/// Handles one egress packet that is not DNS.
#[inline(always)]
pub(crate) fn egress(ctx: &SkBuffContext, h: &Headers) {
    let payload_len = ctx.len().saturating_sub(h.payload_off);
    let tcp = h.protocol == IPPROTO_TCP;
    if tcp && payload_len == 0 && !h.syn {
        return;
    }
    // A SYN arms its connection's slot; anything else only matters if a slot may be live.
    if !(tcp && h.syn || slots::any_live()) {
        return;
    }
    let Some((src, dst)) = addresses(ctx, h.ip_version) else {
        return;
    };
    if tcp {
        let ports = ((h.src_port as u32) << 16) | h.dst_port as u32;
        let flow = slots::tuple_hash(&src, &dst, h.ip_version == 6, ports);
        if h.syn {
            syn(ctx, h, flow, payload_len, &src, &dst);
        } else if let Some(slot) = slots::find(flow, || cookie(ctx)) {
            capture(ctx, h, slot, payload_len, 0, &src, &dst);
        }
    } else {
        let flow = slots::dest_hash(&dst, h.ip_version == 6, h.dst_port, IPPROTO_UDP);
        if let Some(slot) = slots::find(flow, || cookie(ctx)) {
            capture(ctx, h, slot, payload_len, 0, &src, &dst);
        }
    }
}

#[inline(always)]
fn cookie(ctx: &SkBuffContext) -> u64 {
    // SAFETY: the context pointer is the program's own skb.
    unsafe { bpf_get_socket_cookie(ctx.skb.skb.cast()) }
}

/// A TCP connection's SYN arms its slot (the 4-tuple is known from here on). It is sent only
/// when it carries data (TCP Fast Open): otherwise the first data segment's record brings the
/// source address and port, at no extra record per connection.
#[inline(always)]
fn syn(
    ctx: &SkBuffContext,
    h: &Headers,
    flow: u64,
    payload_len: u32,
    src: &[u32; 4],
    dst: &[u32; 4],
) {
    let c = cookie(ctx);
    if slots::find(flow, || c).is_some() {
        // A retransmitted SYN.
        return;
    }
    let Some((slot, evicted)) = slots::arm(flow, c) else {
        return;
    };
    if evicted {
        maps::count(stats::FLIGHT_EVICTED);
    }
    slot.want = want::DATA;
    slot.left = FLIGHT_TCP_SEGMENTS;
    slot.wanted = FLIGHT_TCP_BYTES;
    if payload_len > 0 {
        capture(ctx, h, slot, payload_len, flight_flags::SYN, src, dst);
    }
}

/// The source and destination addresses as 32-bit words in memory order (IPv4 in the first),
/// by direct packet access, else with `bpf_skb_load_bytes`.
#[inline(always)]
fn addresses(ctx: &SkBuffContext, ip_version: u8) -> Option<([u32; 4], [u32; 4])> {
    // SAFETY: the context pointer is the program's own skb; every read is checked against
    // `end`.
    let (data, end) = unsafe {
        (
            (*ctx.skb.skb).data as usize,
            (*ctx.skb.skb).data_end as usize,
        )
    };
    let word = |at: usize| -> u32 {
        // SAFETY: within bounds checked by the caller.
        unsafe { core::ptr::read_unaligned((data + at) as *const u32) }
    };
    let mut src = [0u32; 4];
    let mut dst = [0u32; 4];
    if ip_version == 4 {
        if data + 20 > end {
            let (s, d) = packet::addresses(ctx, 4)?;
            src[0] = u32::from_ne_bytes([s[0], s[1], s[2], s[3]]);
            dst[0] = u32::from_ne_bytes([d[0], d[1], d[2], d[3]]);
            return Some((src, dst));
        }
        src[0] = word(12);
        dst[0] = word(16);
    } else {
        if data + 40 > end {
            let (s, d) = packet::addresses(ctx, 6)?;
            for i in 0..4 {
                src[i] = u32::from_ne_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
                dst[i] = u32::from_ne_bytes([d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3]]);
            }
            return Some((src, dst));
        }
        for i in 0..4 {
            src[i] = word(8 + 4 * i);
            dst[i] = word(24 + 4 * i);
        }
    }
    Some((src, dst))
}

/// Sends one packet of the first flight and advances the flow's slot.
#[inline(always)]
fn capture(
    ctx: &SkBuffContext,
    h: &Headers,
    st: &mut Slot,
    payload_len: u32,
    mut flags: u8,
    src: &[u32; 4],
    dst: &[u32; 4],
) {
    let Some(rec) = maps::FLIGHT_SCRATCH.get_ptr_mut(0) else {
        maps::count(stats::SCRATCH_MISSING);
        return;
    };
    // SAFETY: the per-CPU scratch value is ours for the duration of this program.
    let rec: &mut FlightRecord = unsafe { &mut *rec };
    let tcp = h.protocol == IPPROTO_TCP;

    // How much of the payload: what is left of a TCP first flight, one record at most.
    let mut cap = payload_len as usize;
    if tcp {
        let budget = st.wanted.saturating_sub(st.seen) as usize;
        if cap > budget {
            cap = budget;
        }
    }
    if cap > FLIGHT_CAPTURE_MAX {
        cap = FLIGHT_CAPTURE_MAX;
        maps::count(stats::FLIGHT_TRUNCATED);
    }
    if cap > 0 {
        // 1 <= cap <= FLIGHT_CAPTURE_MAX here; say so in a form the verifier can follow.
        let n = bounded::<FLIGHT_CAPTURE_MAX>(cap);
        // SAFETY: `0 < n <= FLIGHT_CAPTURE_MAX` = size of `payload`.
        let rc = unsafe {
            bpf_skb_load_bytes(
                ctx.skb.skb as *const _,
                h.payload_off,
                rec.payload.as_mut_ptr().cast(),
                n as u32,
            )
        };
        if rc != 0 {
            cap = 0;
        }
    }

    rec.index = st.index;
    st.index = st.index.wrapping_add(1);
    let data = payload_len > 0;
    if data {
        st.left = st.left.saturating_sub(1);
    }
    let mut done = false;
    if tcp {
        if data {
            if st.seen == 0 {
                // The first segment says how long the first flight is; what follows it in the
                // same segment (0-RTT data, a request body) is not kept.
                st.wanted = first_flight_len(&rec.payload, cap as u32);
                if cap > st.wanted as usize {
                    cap = st.wanted as usize;
                }
            }
            st.seen = st.seen.saturating_add(payload_len);
            done = st.left == 0 || st.seen >= st.wanted;
        }
    } else {
        done = st.left == 0;
    }
    if done {
        flags |= flight_flags::LAST;
        st.want = 0;
    }

    let mut seq = [0u8; 4];
    if tcp {
        let _ = packet::load(ctx, h.l4_off + 4, &mut seq);
    }
    maps::count(stats::FLIGHT_SEEN);
    rec.header.kind = RecordKind::Flight as u8;
    rec.header.version = RECORD_VERSION;
    rec.header._pad = 0;
    // SAFETY: helper without arguments.
    rec.header.boot_ns = unsafe { bpf_ktime_get_boot_ns() };
    rec.cookie = st.cookie;
    rec.ip_version = h.ip_version;
    rec.protocol = h.protocol;
    rec.flags = flags;
    rec.src_port = h.src_port;
    rec.dst_port = h.dst_port;
    for i in 0..4 {
        rec.src_addr[4 * i..4 * i + 4].copy_from_slice(&src[i].to_ne_bytes());
        rec.dst_addr[4 * i..4 * i + 4].copy_from_slice(&dst[i].to_ne_bytes());
    }
    rec.seq = u32::from_be_bytes(seq);
    rec.payload_len = payload_len;
    rec.captured_len = cap as u32;
    rec._pad = 0;
    let size = if cap == 0 {
        FlightRecord::PAYLOAD_OFFSET
    } else {
        // 1 <= cap <= FLIGHT_CAPTURE_MAX, for the verifier.
        FlightRecord::PAYLOAD_OFFSET + bounded::<FLIGHT_CAPTURE_MAX>(cap)
    };
    rec.header.size = size as u32;
    maps::submit_flow(
        (rec as *const FlightRecord).cast(),
        size,
        stats::FLIGHT_LOST,
    );
}

/// How many bytes of a TCP connection's stream are its first flight, from the first `cap`
/// bytes of its first segment: a TLS ClientHello's record (the whole budget when the
/// ClientHello says it is longer than its record: a client may spread it over records); the
/// first segment's captured bytes for anything else. At most `FLIGHT_TCP_BYTES` (counted in
/// `flight_truncated` when the flight is longer).
#[inline(always)]
fn first_flight_len(p: &[u8; FLIGHT_CAPTURE_MAX], cap: u32) -> u32 {
    if cap < 5 || p[0] != TLS_HANDSHAKE || p[1] != 3 {
        return cap;
    }
    let record = 5 + (((p[3] as u32) << 8) | p[4] as u32);
    if cap >= 9 && p[5] == TLS_CLIENT_HELLO {
        let hello = 4 + (((p[6] as u32) << 16) | ((p[7] as u32) << 8) | p[8] as u32);
        if hello + 5 > record {
            return FLIGHT_TCP_BYTES;
        }
    }
    if record > FLIGHT_TCP_BYTES {
        maps::count(stats::FLIGHT_TRUNCATED);
        FLIGHT_TCP_BYTES
    } else {
        record
    }
}
