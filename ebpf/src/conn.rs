//! New outbound flows, from the cgroup socket-address hooks on the cgroup v2 root (kernel
//! 4.17+; the socket and its storage are reachable from them since 5.3). They run in the
//! calling task's context, before the kernel acts on the call:
//!
//! - `connect4`/`connect6`: every `connect()` on a TCP or UDP socket, and a TCP Fast Open
//!   `sendmsg()` (which connects through the same path);
//! - `sendmsg4`/`sendmsg6`: every `sendmsg()` on an unconnected UDP socket with a destination;
//!   a flow is reported when the destination is not among the socket's recent ones
//!   (`flows.rs`), so a socket that sends to one peer reports one flow.
//!
//! Each new flow is one [`ConnRecord`] with the process, the destination asked for and, when
//! the socket is bound, its source. The socket is then marked (`flows.rs`) so that the egress
//! program captures the flow's first flight (`flight.rs`), unless the destination is a DNS
//! port (the DNS records cover those flows). Programs never refuse a call: they return 1.

use aya_ebpf::{
    bindings::bpf_sock,
    helpers::{bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns, generated::bpf_get_socket_cookie},
    macros::cgroup_sock_addr,
    programs::SockAddrContext,
};
use tunnelwatch_common::{
    ConnRecord, RECORD_VERSION, RecordHeader, RecordKind,
    limits::{
        FLIGHT_TCP_BYTES, FLIGHT_TCP_SEGMENTS, FLIGHT_UDP_DATAGRAMS, UDP_RECENT_DESTINATIONS,
    },
    records::{conn_flags, conn_origin},
    stats,
};

use crate::{
    flows::{self, FlowState, want},
    globals, maps,
    packet::{IPPROTO_TCP, IPPROTO_UDP},
    task,
};

#[cgroup_sock_addr(connect4)]
pub fn conn_connect4(ctx: SockAddrContext) -> i32 {
    on_flow(&ctx, 4, conn_origin::CONNECT);
    1
}

#[cgroup_sock_addr(connect6)]
pub fn conn_connect6(ctx: SockAddrContext) -> i32 {
    on_flow(&ctx, 6, conn_origin::CONNECT);
    1
}

#[cgroup_sock_addr(sendmsg4)]
pub fn conn_sendmsg4(ctx: SockAddrContext) -> i32 {
    on_flow(&ctx, 4, conn_origin::SENDMSG);
    1
}

#[cgroup_sock_addr(sendmsg6)]
pub fn conn_sendmsg6(ctx: SockAddrContext) -> i32 {
    on_flow(&ctx, 6, conn_origin::SENDMSG);
    1
}

/// A 4-byte read of a context field (the width every kernel accepts).
macro_rules! ctx_u32 {
    ($e:expr) => {
        // SAFETY: an aligned field of the program's own context.
        unsafe { core::ptr::read_volatile(&raw const $e) }
    };
}

#[inline(always)]
fn on_flow(ctx: &SockAddrContext, ip_version: u8, origin: u8) {
    // SAFETY: the context pointer is the program's own.
    let sa = unsafe { &*ctx.sock_addr };
    let protocol = ctx_u32!(sa.protocol);
    if protocol != IPPROTO_TCP as u32 && protocol != IPPROTO_UDP as u32 {
        return;
    }
    let protocol = protocol as u8;
    let current = task::current();
    if task::tgid(current) == globals::self_tgid() {
        return;
    }
    let mut dst_words = [0u32; 4];
    if ip_version == 4 {
        dst_words[0] = ctx_u32!(sa.user_ip4);
    } else {
        dst_words[0] = ctx_u32!(sa.user_ip6[0]);
        dst_words[1] = ctx_u32!(sa.user_ip6[1]);
        dst_words[2] = ctx_u32!(sa.user_ip6[2]);
        dst_words[3] = ctx_u32!(sa.user_ip6[3]);
    }
    // The port is stored in network order in the field's first two bytes.
    let dst_port = u16::from_be(ctx_u32!(sa.user_port) as u16);
    // SAFETY: `sk` of a sock_addr context is a full socket, never null.
    let sk: *mut bpf_sock = unsafe { sa.__bindgen_anon_1.sk };
    let dns = globals::is_dns_port(dst_port);

    let state = if origin == conn_origin::SENDMSG {
        // A datagram: a new flow only for a destination the socket did not send to lately.
        let state = flows::get_or_create(sk);
        if let Some(st) = state.as_deref()
            && seen_lately(st, dest_hash(&dst_words, dst_port))
        {
            return;
        }
        state
    } else if dns {
        flows::get(sk)
    } else {
        flows::get_or_create(sk)
    };

    let mut flags = 0;
    match state {
        Some(st) => {
            if origin == conn_origin::SENDMSG {
                remember(st, dest_hash(&dst_words, dst_port));
            }
            st.index = 0;
            st.seen = 0;
            st.wanted = 0;
            if dns {
                st.want = 0;
                st.left = 0;
            } else if protocol == IPPROTO_TCP {
                st.want = want::SYN | want::DATA;
                st.left = FLIGHT_TCP_SEGMENTS;
                st.wanted = FLIGHT_TCP_BYTES;
                flags |= conn_flags::CAPTURING;
            } else {
                st.want = want::DATA;
                st.left = FLIGHT_UDP_DATAGRAMS;
                flags |= conn_flags::CAPTURING;
            }
        }
        None if !dns => maps::count(stats::FLOW_UNTRACKED),
        None => {}
    }

    let mut rec = ConnRecord {
        header: RecordHeader {
            kind: RecordKind::Conn as u8,
            version: RECORD_VERSION,
            _pad: 0,
            size: core::mem::size_of::<ConnRecord>() as u32,
            // SAFETY: helper without arguments.
            boot_ns: unsafe { bpf_ktime_get_boot_ns() },
        },
        // SAFETY: the context pointer is the program's own.
        cookie: unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) },
        origin,
        ip_version,
        protocol,
        flags,
        dst_port,
        ..ConnRecord::default()
    };
    for (i, w) in dst_words.iter().enumerate() {
        rec.dst_addr[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    // SAFETY: `sk` is a full socket; its source fields read as the kernel converts them.
    let src_port = ctx_u32!((*sk).src_port) as u16;
    if src_port != 0 {
        rec.flags |= conn_flags::SRC_BOUND;
        rec.src_port = src_port;
        if ip_version == 4 {
            let a = ctx_u32!((*sk).src_ip4);
            rec.src_addr[..4].copy_from_slice(&a.to_ne_bytes());
        } else {
            let mut i = 0;
            while i < 4 {
                let a = ctx_u32!((*sk).src_ip6[i]);
                rec.src_addr[i * 4..i * 4 + 4].copy_from_slice(&a.to_ne_bytes());
                i += 1;
            }
        }
    }
    // SAFETY: helper without arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    task::fill(current, cgroup_id, &mut rec.task);
    maps::count(stats::CONN_SEEN);
    maps::submit(
        (&raw const rec).cast(),
        core::mem::size_of::<ConnRecord>(),
        stats::CONN_LOST,
    );
}

/// A hash of a destination, never 0 (an empty slot of [`FlowState::recent`]).
#[inline(always)]
fn dest_hash(words: &[u32; 4], port: u16) -> u64 {
    // FNV-1a over the address words and the port.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words {
        h = (h ^ *w as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ port as u64).wrapping_mul(0x0000_0100_0000_01b3);
    h | 1
}

#[inline(always)]
fn seen_lately(st: &FlowState, h: u64) -> bool {
    let mut i = 0;
    while i < UDP_RECENT_DESTINATIONS {
        if st.recent[i] == h {
            return true;
        }
        i += 1;
    }
    false
}

#[inline(always)]
fn remember(st: &mut FlowState, h: u64) {
    let slot = st.recent_next as usize % UDP_RECENT_DESTINATIONS;
    st.recent[slot] = h;
    st.recent_next = (slot as u32 + 1) % UDP_RECENT_DESTINATIONS as u32;
}
