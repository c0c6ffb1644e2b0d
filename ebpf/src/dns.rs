//! `cgroup_skb` egress and ingress on the cgroup v2 root: every packet of every process passes
//! here, whatever syscall sent it (sendto, sendmsg, sendmmsg, write on a connected socket),
//! over IPv4 and IPv6, UDP and TCP. Packets that do not touch a DNS port leave after reading
//! a few header bytes; DNS packets are copied (transport payload, bounded) with the process
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

use crate::{bounded::bounded, globals, maps, task};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// IPv6 extension headers walked before giving up.
const IPV6_EXT_MAX: usize = 4;

#[cgroup_skb(egress)]
pub fn dns_egress(ctx: SkBuffContext) -> i32 {
    handle(&ctx, direction::EGRESS);
    1
}

#[cgroup_skb(ingress)]
pub fn dns_ingress(ctx: SkBuffContext) -> i32 {
    handle(&ctx, direction::INGRESS);
    1
}

/// Addresses, ports and where the transport payload starts.
struct Flow {
    ip_version: u8,
    protocol: u8,
    src_addr: [u8; 16],
    dst_addr: [u8; 16],
    src_port: u16,
    dst_port: u16,
    payload_off: u32,
    /// TCP: SYN set and ACK clear (a connection's first packet).
    syn: bool,
    /// TCP: the sequence number and the flags byte.
    tcp_seq: u32,
    tcp_flags: u8,
}

#[inline(always)]
fn load<const N: usize>(ctx: &SkBuffContext, offset: u32, buf: &mut [u8; N]) -> bool {
    // SAFETY: N is a non-zero constant that fits `buf`.
    unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb as *const _,
            offset,
            buf.as_mut_ptr().cast(),
            N as u32,
        ) == 0
    }
}

#[inline(always)]
fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// Parses the IP and transport headers. `None` for anything that is not a first fragment of
/// UDP or TCP.
#[inline(always)]
fn parse(ctx: &SkBuffContext) -> Option<Flow> {
    let mut h = [0u8; 24];
    if !load(ctx, 0, &mut h) {
        return None;
    }
    let mut flow = Flow {
        ip_version: h[0] >> 4,
        protocol: 0,
        src_addr: [0; 16],
        dst_addr: [0; 16],
        src_port: 0,
        dst_port: 0,
        payload_off: 0,
        syn: false,
        tcp_seq: 0,
        tcp_flags: 0,
    };
    let l4_off: u32;
    match flow.ip_version {
        4 => {
            let ihl = ((h[0] & 0x0f) as u32) * 4;
            if ihl < 20 {
                return None;
            }
            // Non-first fragments carry no transport header.
            if be16(&h, 6) & 0x1fff != 0 {
                return None;
            }
            flow.protocol = h[9];
            flow.src_addr[..4].copy_from_slice(&h[12..16]);
            flow.dst_addr[..4].copy_from_slice(&h[16..20]);
            l4_off = ihl;
        }
        6 => {
            let mut h6 = [0u8; 40];
            if !load(ctx, 0, &mut h6) {
                return None;
            }
            flow.src_addr.copy_from_slice(&h6[8..24]);
            flow.dst_addr.copy_from_slice(&h6[24..40]);
            let mut next = h6[6];
            let mut off: u32 = 40;
            let mut i = 0;
            while i < IPV6_EXT_MAX {
                i += 1;
                match next {
                    // Hop-by-hop, routing, destination options.
                    0 | 43 | 60 => {
                        let mut ext = [0u8; 2];
                        if !load(ctx, off, &mut ext) {
                            return None;
                        }
                        next = ext[0];
                        off += (ext[1] as u32 + 1) * 8;
                    }
                    _ => break,
                }
            }
            flow.protocol = next;
            l4_off = off;
        }
        _ => return None,
    }
    let mut ports = [0u8; 4];
    if !load(ctx, l4_off, &mut ports) {
        return None;
    }
    flow.src_port = be16(&ports, 0);
    flow.dst_port = be16(&ports, 2);
    match flow.protocol {
        IPPROTO_UDP => flow.payload_off = l4_off + 8,
        IPPROTO_TCP => {
            // Sequence number (4..8), acknowledgment (8..12), data offset (12), flags (13).
            let mut t = [0u8; 10];
            if !load(ctx, l4_off + 4, &mut t) {
                return None;
            }
            flow.tcp_seq = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
            flow.payload_off = l4_off + ((t[8] >> 4) as u32) * 4;
            flow.tcp_flags = t[9];
            flow.syn = t[9] & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN;
        }
        _ => return None,
    }
    Some(flow)
}

/// Whether the packet surely touches no DNS port, read from its linear data by direct packet
/// access (no helper call): the path every packet that is not DNS takes. `false` when it may
/// touch one, or when the headers are not the plain case (IPv4 options are fine; IPv6
/// extension headers, fragments, headers outside the linear data are not): [`parse`] decides.
#[inline(always)]
fn surely_not_dns(ctx: &SkBuffContext) -> bool {
    // SAFETY: the context pointer is the program's own skb; the verifier checks every packet
    // read below against `end`.
    let (data, end) = unsafe {
        (
            (*ctx.skb.skb).data as usize,
            (*ctx.skb.skb).data_end as usize,
        )
    };
    // The smallest case: IPv4 without options, then the two ports.
    if data + 24 > end {
        return false;
    }
    // SAFETY: `i` below is within the bound checked just before each use.
    let at = |i: usize| unsafe { *((data + i) as *const u8) };
    let version = at(0) >> 4;
    let (protocol, l4) = match version {
        4 => {
            let ihl = ((at(0) & 0x0f) as usize) * 4;
            // A first (or only) fragment, with or without options.
            if ihl < 20 || (at(6) & 0x1f) != 0 || at(7) != 0 {
                return false;
            }
            (at(9), ihl)
        }
        6 => {
            if data + 40 > end {
                return false;
            }
            (at(6), 40)
        }
        _ => return false,
    };
    if protocol != IPPROTO_UDP && protocol != IPPROTO_TCP {
        // Not a transport that carries DNS, unless IPv6 extension headers come first.
        return !(version == 6 && matches!(protocol, 0 | 43 | 60));
    }
    let ports = data + l4;
    if ports + 4 > end {
        return false;
    }
    // SAFETY: within [ports, ports + 4), checked above.
    let p = |i: usize| unsafe { *((ports + i) as *const u8) } as u16;
    let src = (p(0) << 8) | p(1);
    let dst = (p(2) << 8) | p(3);
    !globals::is_dns_port(src) && !globals::is_dns_port(dst)
}

#[inline(always)]
fn handle(ctx: &SkBuffContext, dir: u8) {
    if surely_not_dns(ctx) {
        return;
    }
    let Some(flow) = parse(ctx) else {
        return;
    };
    if !globals::is_dns_port(flow.src_port) && !globals::is_dns_port(flow.dst_port) {
        return;
    }
    // SAFETY: the context pointer is the program's own skb.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.skb.skb.cast()) };
    let pkt_len = ctx.len();
    let payload_len = pkt_len.saturating_sub(flow.payload_off);

    if dir == direction::EGRESS && flow.protocol == IPPROTO_TCP && flow.syn {
        // connect() runs in the caller's context: remember who owns the socket, since later
        // segments may be sent from softirq context. A SYN with data (TCP Fast Open) goes on.
        remember_owner(ctx, cookie);
        if payload_len == 0 {
            return;
        }
    }
    // An empty segment matters only when it ends a stream (user space frees its state).
    if payload_len == 0
        && (flow.protocol != IPPROTO_TCP || flow.tcp_flags & (tcp_flags::FIN | tcp_flags::RST) == 0)
    {
        return;
    }
    if flow.protocol == IPPROTO_UDP {
        // The first message decides for a GSO datagram's others (one send, one socket).
        let mut flags = [0u8; 1];
        if !load(ctx, flow.payload_off + 2, &mut flags) {
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
        if flow.protocol == IPPROTO_TCP {
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
    rec.ip_version = flow.ip_version;
    rec.protocol = flow.protocol;
    rec.src_port = flow.src_port;
    rec.dst_port = flow.dst_port;
    rec.src_addr = flow.src_addr;
    rec.dst_addr = flow.dst_addr;
    rec.payload_len = payload_len;
    rec.tcp_seq = flow.tcp_seq;
    rec.tcp_flags = flow.tcp_flags;
    rec.gso_size = 0;
    if flow.protocol == IPPROTO_UDP {
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
            flow.payload_off,
            rec.payload.as_mut_ptr().cast(),
            cap as u32,
        )
    };
    if rc != 0 {
        maps::count(stats::DNS_UNPARSED);
        debug!(
            ctx,
            "dns: cannot copy {} payload bytes at offset {}", cap, flow.payload_off
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
