//! `cgroup_skb` egress and ingress on the cgroup v2 root: every packet of every process passes
//! here, whatever syscall sent it (sendto, sendmsg, sendmmsg, write on a connected socket),
//! over IPv4 and IPv6, UDP and TCP. Packets that do not touch a DNS port leave after reading
//! a few header bytes (egress ones go to `flight.rs` first, which keeps the first flight of
//! new connections); DNS packets are copied (transport payload, bounded) with the process
//! that sent them. The programs never drop or change a packet: they always return 1 (pass).
//!
//! Within the same host, a query is seen leaving (egress) and, on loopback, arriving at the
//! server (ingress); its response likewise. Only queries going out and responses coming in
//! are kept for UDP; TCP segments are all kept (user space sorts them out, and puts each
//! stream back together by the sequence numbers sent along): those with data, those that carry
//! data in their SYN (TCP Fast Open), and the empty FIN and RST that end a stream. A UDP GSO
//! datagram (`UDP_SEGMENT`) is seen here before it is cut into datagrams: its segment size
//! goes with it, and user space cuts it the same way.

use aya_ebpf::{
    helpers::{
        bpf_ktime_get_boot_ns,
        generated::{bpf_get_socket_cookie, bpf_skb_cgroup_id, bpf_skb_load_bytes},
    },
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use tunnelwatch_common::{
    DnsRecord, RECORD_VERSION, RecordKind, TaskInfo,
    limits::DNS_CAPTURE_MAX,
    records::{direction, owner_source, tcp_flags},
    stats,
};

use aya_log_ebpf::{debug, error};

use crate::{
    bounded::bounded,
    flight, globals, maps,
    packet::{self, IPPROTO_TCP, IPPROTO_UDP, Peeked},
    task,
};

/// Egress: DNS packets, and the first flight of the connections `conn.rs` marked
/// (`flight.rs`). Every other packet leaves after the header bytes [`packet::peek`] reads.
#[cgroup_skb(egress)]
// Inlined into the entry point the macro wraps it in: a BPF-to-BPF call per run costs
// 10-20 ns here (a return through the CPU's speculation mitigations).
#[inline(always)]
pub fn dns_egress(ctx: SkBuffContext) -> i32 {
    match packet::peek(&ctx) {
        Peeked::Other => {}
        Peeked::Plain(h) if !is_dns(h.src_port, h.dst_port) => flight::egress(&ctx, &h),
        _ => handle(&ctx, direction::EGRESS),
    }
    1
}

#[cgroup_skb(ingress)]
// Inlined into the entry point the macro wraps it in: a BPF-to-BPF call per run costs
// 10-20 ns here (a return through the CPU's speculation mitigations).
#[inline(always)]
pub fn dns_ingress(ctx: SkBuffContext) -> i32 {
    match packet::peek(&ctx) {
        Peeked::Other => {}
        Peeked::Plain(h) if !is_dns(h.src_port, h.dst_port) => {}
        _ => handle(&ctx, direction::INGRESS),
    }
    1
}

#[inline(always)]
fn is_dns(src_port: u16, dst_port: u16) -> bool {
    globals::is_dns_port(src_port) || globals::is_dns_port(dst_port)
}

#[inline(always)]
fn handle(ctx: &SkBuffContext, dir: u8) {
    let Some(flow) = packet::parse(ctx) else {
        return;
    };
    let h = flow.headers;
    if !is_dns(h.src_port, h.dst_port) {
        if dir == direction::EGRESS {
            flight::egress(ctx, &h);
        }
        return;
    }
    // SAFETY: the context pointer is the program's own skb.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.skb.skb.cast()) };
    let pkt_len = ctx.len();
    let payload_len = pkt_len.saturating_sub(h.payload_off);

    if dir == direction::EGRESS && h.protocol == IPPROTO_TCP && h.syn {
        // connect() runs in the caller's context: remember who owns the socket, since later
        // segments may be sent from softirq context. A SYN with data (TCP Fast Open) goes on.
        remember_owner(ctx, cookie);
        if payload_len == 0 {
            return;
        }
    }
    // An empty segment matters only when it ends a stream (user space frees its state).
    if payload_len == 0
        && (h.protocol != IPPROTO_TCP || h.tcp_flags & (tcp_flags::FIN | tcp_flags::RST) == 0)
    {
        return;
    }
    if h.protocol == IPPROTO_UDP {
        // The first message decides for a GSO datagram's others (one send, one socket).
        let mut flags = [0u8; 1];
        if !packet::load(ctx, h.payload_off + 2, &mut flags) {
            maps::count(stats::DNS_UNPARSED);
            return;
        }
        let response = flags[0] & 0x80 != 0;
        if response != (dir == direction::INGRESS) {
            return;
        }
    }

    let Some(rec) = maps::DNS_SCRATCH.get_ptr_mut(0) else {
        maps::count(stats::SCRATCH_MISSING);
        error!(ctx, "dns: per-CPU scratch buffer missing");
        return;
    };
    // SAFETY: the per-CPU scratch value is ours for the duration of this program.
    let rec: &mut DnsRecord = unsafe { &mut *rec };

    // Who sent it (egress) or who will read it (ingress).
    if dir == direction::EGRESS {
        let current = task::current();
        if task::tgid(current) == globals::self_tgid() {
            return;
        }
        if h.protocol == IPPROTO_TCP {
            if let Some(owner) = unsafe { maps::SOCKET_OWNER.get(cookie) } {
                rec.task = *owner;
                rec.owner = owner_source::SOCKET;
            } else {
                fill_current(ctx, current, &mut rec.task);
                rec.owner = owner_source::CURRENT;
            }
        } else {
            fill_current(ctx, current, &mut rec.task);
            rec.owner = owner_source::CURRENT;
            let _ = maps::SOCKET_OWNER.insert(cookie, rec.task, 0);
        }
    } else {
        // SAFETY: values of this map are plain TaskInfo written by these programs.
        if let Some(owner) = unsafe { maps::SOCKET_OWNER.get(cookie) } {
            if owner.tgid == globals::self_tgid() {
                return;
            }
            rec.task = *owner;
            rec.owner = owner_source::SOCKET;
        } else {
            rec.task = TaskInfo::default();
            rec.owner = owner_source::UNKNOWN;
        }
    }
    maps::count(stats::DNS_SEEN);

    rec.header.kind = RecordKind::Dns as u8;
    rec.header.version = RECORD_VERSION;
    // SAFETY: helper without arguments.
    rec.header.boot_ns = unsafe { bpf_ktime_get_boot_ns() };
    rec.cookie = cookie;
    rec.direction = dir;
    rec.ip_version = h.ip_version;
    rec.protocol = h.protocol;
    rec.src_port = h.src_port;
    rec.dst_port = h.dst_port;
    rec.src_addr = flow.src_addr;
    rec.dst_addr = flow.dst_addr;
    rec.payload_len = payload_len;
    rec.tcp_seq = flow.tcp_seq;
    rec.tcp_flags = h.tcp_flags;
    rec.gso_size = 0;
    if h.protocol == IPPROTO_UDP {
        // SAFETY: the context pointer is the program's own skb; `gso_size` is readable by
        // every skb program since Linux 5.7.
        let gso = unsafe { (*ctx.skb.skb).gso_size };
        rec.gso_size = if gso > u16::MAX as u32 { 0 } else { gso as u16 };
    }
    if payload_len == 0 {
        // A FIN or RST without data: the header says all.
        rec.captured_len = 0;
        let size = DnsRecord::PAYLOAD_OFFSET;
        rec.header.size = size as u32;
        maps::submit((rec as *const DnsRecord).cast(), size, stats::DNS_LOST);
        return;
    }

    let mut cap = payload_len as usize;
    if cap > DNS_CAPTURE_MAX {
        cap = DNS_CAPTURE_MAX;
        maps::count(stats::DNS_TRUNCATED);
    }
    // 1 <= cap <= DNS_CAPTURE_MAX here; say so in a form the verifier can follow.
    let cap = bounded::<DNS_CAPTURE_MAX>(cap);
    // SAFETY: `0 < cap <= DNS_CAPTURE_MAX` = size of `payload`.
    let rc = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb as *const _,
            h.payload_off,
            rec.payload.as_mut_ptr().cast(),
            cap as u32,
        )
    };
    if rc != 0 {
        maps::count(stats::DNS_UNPARSED);
        debug!(
            ctx,
            "dns: cannot copy {} payload bytes at offset {}", cap, h.payload_off
        );
        return;
    }
    rec.captured_len = cap as u32;
    let size = DnsRecord::PAYLOAD_OFFSET + cap;
    rec.header.size = size as u32;
    maps::submit((rec as *const DnsRecord).cast(), size, stats::DNS_LOST);
}

#[inline(always)]
fn fill_current(ctx: &SkBuffContext, current: *const u8, info: &mut TaskInfo) {
    // The socket's cgroup: the same as the sender's unless the socket was handed over.
    // SAFETY: the context pointer is the program's own skb.
    let cgroup_id = unsafe { bpf_skb_cgroup_id(ctx.skb.skb.cast()) };
    task::fill(current, cgroup_id, info);
}

#[inline(always)]
fn remember_owner(ctx: &SkBuffContext, cookie: u64) {
    let current = task::current();
    if task::tgid(current) == globals::self_tgid() {
        return;
    }
    let mut info = TaskInfo::default();
    fill_current(ctx, current, &mut info);
    let _ = maps::SOCKET_OWNER.insert(cookie, info, 0);
}
