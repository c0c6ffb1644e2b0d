//! The first flight of new flows, from the cgroup_skb egress program (`dns.rs` hands it every
//! packet that is not DNS): a TCP connection's SYN (its source address and port) and first
//! data segments (a TLS ClientHello), the first datagrams of a UDP flow (a QUIC Initial, a DNS
//! query to any port). Only sockets that `conn.rs` marked in `flows.rs` are captured, each
//! once, bounded (see `tunnelwatch_common::limits`).
//!
//! The common path (a packet of a socket whose first flight is done or not wanted) must cost
//! almost nothing: a TCP segment without payload (an ACK) leaves on the headers `packet::peek`
//! read; any other packet costs one socket-storage lookup, found empty. A TCP socket's state
//! is deleted once its first flight is captured, so its later segments find none.

use aya_ebpf::{
    bindings::bpf_sock,
    helpers::{
        bpf_ktime_get_boot_ns,
        generated::{bpf_get_socket_cookie, bpf_sk_fullsock, bpf_skb_load_bytes},
    },
    programs::SkBuffContext,
};
use tunnelwatch_common::{
    FlightRecord, RECORD_VERSION, RecordKind,
    limits::{FLIGHT_CAPTURE_MAX, FLIGHT_TCP_BYTES},
    records::flight_flags,
    stats,
};

use crate::{
    bounded::bounded,
    flows::{self, FlowState, want},
    maps,
    packet::{self, Headers, IPPROTO_TCP},
};

/// TLS: record type of a handshake, handshake type of a ClientHello.
const TLS_HANDSHAKE: u8 = 0x16;
const TLS_CLIENT_HELLO: u8 = 0x01;

/// Handles one egress packet that is not DNS.
#[inline(always)]
pub(crate) fn egress(ctx: &SkBuffContext, h: &Headers) {
    let payload_len = ctx.len().saturating_sub(h.payload_off);
    if h.protocol == IPPROTO_TCP && payload_len == 0 && !h.syn {
        return;
    }
    // SAFETY: the context pointer is the program's own skb. cgroup_skb programs only run for
    // full sockets, but the verifier wants the check.
    let sk = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return;
    }
    // SAFETY: `sk` is the skb's socket, as the verifier typed it.
    let sk = unsafe { bpf_sk_fullsock(sk) };
    if sk.is_null() {
        return;
    }
    let Some(st) = flows::get(sk) else {
        return;
    };
    let flags = if h.protocol == IPPROTO_TCP {
        if h.syn {
            if st.want & want::SYN == 0 {
                return;
            }
            st.want &= !want::SYN;
            flight_flags::SYN
        } else {
            if st.want & want::DATA == 0 {
                return;
            }
            0
        }
    } else {
        if st.want & want::DATA == 0 || st.left == 0 {
            return;
        }
        0
    };
    capture(ctx, h, sk, st, payload_len, flags);
}

/// Sends one packet of the first flight and advances the socket's state.
#[inline(always)]
fn capture(
    ctx: &SkBuffContext,
    h: &Headers,
    sk: *mut bpf_sock,
    st: &mut FlowState,
    payload_len: u32,
    mut flags: u8,
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

    // Advance the state before it may go (`flows::delete`).
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
        if tcp {
            flows::delete(sk);
        }
    }

    let mut seq = [0u8; 4];
    if tcp {
        let _ = packet::load(ctx, h.l4_off + 4, &mut seq);
    }
    let Some((src, dst)) = packet::addresses(ctx, h.ip_version) else {
        return;
    };
    maps::count(stats::FLIGHT_SEEN);
    rec.header.kind = RecordKind::Flight as u8;
    rec.header.version = RECORD_VERSION;
    rec.header._pad = 0;
    // SAFETY: helper without arguments.
    rec.header.boot_ns = unsafe { bpf_ktime_get_boot_ns() };
    // SAFETY: the context pointer is the program's own skb.
    rec.cookie = unsafe { bpf_get_socket_cookie(ctx.skb.skb.cast()) };
    rec.ip_version = h.ip_version;
    rec.protocol = h.protocol;
    rec.flags = flags;
    rec.src_port = h.src_port;
    rec.dst_port = h.dst_port;
    rec.src_addr = src;
    rec.dst_addr = dst;
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
    maps::submit(
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
