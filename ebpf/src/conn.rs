//! New outbound flows, from the cgroup socket-address hooks on the cgroup v2 root (kernel
//! 4.17+; the socket is reachable from them since 5.3). They run in the calling task's
//! context, before the kernel acts on the call:
//!
//! - `connect4`/`connect6`: every `connect()` on a TCP or UDP socket, and a TCP Fast Open
//!   `sendmsg()` (which connects through the same path);
//! - `sendmsg4`/`sendmsg6`: every `sendmsg()` on an unconnected UDP socket with a destination;
//!   a flow is reported when the (source port, destination) pair was not reported lately
//!   (`slots.rs`), so a socket that sends to one peer reports one flow, and a datagram to a
//!   known peer costs a few loads and one inlined array lookup.
//!
//! Each new flow is one [`ConnRecord`] with the process, the destination asked for and, when
//! the socket is bound, its source. A UDP flow's destination is armed (`slots.rs`) so that the
//! egress program captures its first datagrams (`flight.rs`); a TCP flow is armed by its SYN
//! there, when its source port is known. Flows to a DNS port are not armed: the DNS records
//! cover them. The programs never refuse a call: they return 1.

use aya_ebpf::{
    bindings::bpf_sock,
    helpers::{bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns, generated::bpf_get_socket_cookie},
    macros::cgroup_sock_addr,
    programs::SockAddrContext,
};
use tunnelwatch_common::{
    ConnRecord, RECORD_VERSION, RecordHeader, RecordKind,
    limits::FLIGHT_UDP_DATAGRAMS,
    records::{conn_flags, conn_origin},
    stats,
};

use crate::{
    globals, maps,
    packet::{IPPROTO_TCP, IPPROTO_UDP},
    slots::{self, want},
    task,
};

#[cgroup_sock_addr(connect4)]
// Inlined into the entry point the macro wraps it in: a BPF-to-BPF call per run costs
// 10-20 ns here (a return through the CPU's speculation mitigations).
#[inline(always)]
pub fn conn_connect4(ctx: SockAddrContext) -> i32 {
    on_flow(&ctx, 4, conn_origin::CONNECT);
    1
}

#[cgroup_sock_addr(connect6)]
// Inlined into the entry point the macro wraps it in: a BPF-to-BPF call per run costs
// 10-20 ns here (a return through the CPU's speculation mitigations).
#[inline(always)]
pub fn conn_connect6(ctx: SockAddrContext) -> i32 {
    on_flow(&ctx, 6, conn_origin::CONNECT);
    1
}

#[cgroup_sock_addr(sendmsg4)]
// Inlined into the entry point the macro wraps it in: a BPF-to-BPF call per run costs
// 10-20 ns here (a return through the CPU's speculation mitigations).
#[inline(always)]
pub fn conn_sendmsg4(ctx: SockAddrContext) -> i32 {
    on_flow(&ctx, 4, conn_origin::SENDMSG);
    1
}

#[cgroup_sock_addr(sendmsg6)]
// Inlined into the entry point the macro wraps it in: a BPF-to-BPF call per run costs
// 10-20 ns here (a return through the CPU's speculation mitigations).
#[inline(always)]
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

/// The second-to-last word of an IPv4-mapped IPv6 address (`::ffff:0:0/96`), in memory order.
const V4_MAPPED: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

#[inline(always)]
fn on_flow(ctx: &SockAddrContext, ip_version: u8, origin: u8) {
    // SAFETY: the context pointer is the program's own.
    let sa = unsafe { &*ctx.sock_addr };
    let protocol = ctx_u32!(sa.protocol);
    if protocol != IPPROTO_TCP as u32 && protocol != IPPROTO_UDP as u32 {
        return;
    }
    let protocol = protocol as u8;
    // The destination as the program gave it, in memory order.
    let mut dst = [0u32; 4];
    if ip_version == 4 {
        dst[0] = ctx_u32!(sa.user_ip4);
    } else {
        dst[0] = ctx_u32!(sa.user_ip6[0]);
        dst[1] = ctx_u32!(sa.user_ip6[1]);
        dst[2] = ctx_u32!(sa.user_ip6[2]);
        dst[3] = ctx_u32!(sa.user_ip6[3]);
    }
    // The port is stored in network order in the field's first two bytes.
    let dst_port = u16::from_be(ctx_u32!(sa.user_port) as u16);
    // SAFETY: `sk` of a sock_addr context is a full socket, never null.
    let sk: *mut bpf_sock = unsafe { sa.__bindgen_anon_1.sk };
    let src_port = ctx_u32!((*sk).src_port) as u16;
    // The destination as the egress program will read it from packets.
    let mapped = ip_version == 6 && dst[0] == 0 && dst[1] == 0 && dst[2] == V4_MAPPED;
    let dest = if mapped {
        slots::dest_hash(&[dst[3], 0, 0, 0], false, dst_port, protocol)
    } else {
        slots::dest_hash(&dst, ip_version == 6, dst_port, protocol)
    };

    if origin == conn_origin::SENDMSG {
        // A datagram: a new flow only for a (source port, destination) pair not seen lately.
        if slots::seen_lately(slots::pair_hash(dest, src_port)) {
            return;
        }
    }
    let current = task::current();
    let tgid = task::tgid(current);
    if tgid == globals::self_tgid() {
        return;
    }

    // SAFETY: the context pointer is the program's own.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) };
    let mut flags = 0;
    if globals::is_dns_port(dst_port) {
        // The DNS records cover it.
    } else if protocol == IPPROTO_TCP {
        // Armed by its SYN (flight.rs).
        flags |= conn_flags::CAPTURING;
    } else if let Some((slot, evicted)) = slots::arm(dest, cookie) {
        slot.want = want::DATA;
        slot.left = FLIGHT_UDP_DATAGRAMS;
        flags |= conn_flags::CAPTURING;
        if evicted {
            maps::count(stats::FLIGHT_EVICTED);
        }
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
        cookie,
        origin,
        ip_version,
        protocol,
        flags,
        dst_port,
        ..ConnRecord::default()
    };
    for (i, w) in dst.iter().enumerate() {
        rec.dst_addr[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
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
    task::fill_lite(current, tgid, cgroup_id, &mut rec.task);
    maps::count(stats::CONN_SEEN);
    maps::submit_flow(
        (&raw const rec).cast(),
        core::mem::size_of::<ConnRecord>(),
        stats::CONN_LOST,
    );
}
