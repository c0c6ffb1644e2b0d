//! A packet's IP and transport headers as the cgroup_skb programs see them (the buffer starts
//! at the IP header). [`peek`] reads the plain case from the linear data by direct packet
//! access, without a helper call: the path every packet takes. [`parse`] reads any case the
//! programs handle (IPv6 extension headers, headers outside the linear data) with
//! `bpf_skb_load_bytes`, for the few packets `peek` cannot settle.

use aya_ebpf::{helpers::generated::bpf_skb_load_bytes, programs::SkBuffContext};

pub(crate) const IPPROTO_TCP: u8 = 6;
pub(crate) const IPPROTO_UDP: u8 = 17;
/// IPv6 extension headers walked before giving up.
const IPV6_EXT_MAX: usize = 4;
/// TCP flags: SYN and ACK.
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// What the transport headers say: enough to classify a packet, not its addresses.
#[derive(Clone, Copy)]
pub(crate) struct Headers {
    /// 4 or 6.
    pub ip_version: u8,
    /// IPPROTO_TCP or IPPROTO_UDP.
    pub protocol: u8,
    /// TCP: SYN set and ACK clear (a connection's first packet); false for UDP.
    pub syn: bool,
    /// TCP: the flags byte (`tunnelwatch_common::records::tcp_flags`); 0 for UDP.
    pub tcp_flags: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// Offset of the transport header.
    pub l4_off: u32,
    /// Offset of the transport payload.
    pub payload_off: u32,
}

/// What [`peek`] found.
pub(crate) enum Peeked {
    /// Plain IPv4 or IPv6 with TCP or UDP, headers in the linear data.
    Plain(Headers),
    /// Not TCP or UDP (ICMP, ...): nothing any program here wants.
    Other,
    /// Anything else (IPv6 extension headers, an IPv4 fragment, headers beyond the linear
    /// data): [`parse`] decides.
    Unsure,
}

/// Reads the headers of the plain case from the linear data by direct packet access.
#[inline(always)]
pub(crate) fn peek(ctx: &SkBuffContext) -> Peeked {
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
        return Peeked::Unsure;
    }
    // SAFETY: `i` below is within the bound checked just before each use.
    let at = |i: usize| unsafe { *((data + i) as *const u8) };
    let version = at(0) >> 4;
    let (protocol, l4) = match version {
        4 => {
            let ihl = ((at(0) & 0x0f) as usize) * 4;
            // A first (or only) fragment, with or without options.
            if ihl < 20 || (at(6) & 0x1f) != 0 || at(7) != 0 {
                return Peeked::Unsure;
            }
            (at(9), ihl)
        }
        6 => {
            if data + 40 > end {
                return Peeked::Unsure;
            }
            (at(6), 40)
        }
        _ => return Peeked::Unsure,
    };
    if protocol != IPPROTO_UDP && protocol != IPPROTO_TCP {
        // Not a transport that matters here, unless IPv6 extension headers come first.
        return if version == 6 && matches!(protocol, 0 | 43 | 60) {
            Peeked::Unsure
        } else {
            Peeked::Other
        };
    }
    let l4 = data + l4;
    // The ports, and for TCP the data offset and flags (bytes 12 and 13).
    let need = if protocol == IPPROTO_TCP { 14 } else { 4 };
    if l4 + need > end {
        return Peeked::Unsure;
    }
    // SAFETY: within [l4, l4 + need), checked above.
    let p = |i: usize| unsafe { *((l4 + i) as *const u8) };
    let mut h = Headers {
        ip_version: version,
        protocol,
        syn: false,
        tcp_flags: 0,
        src_port: ((p(0) as u16) << 8) | p(1) as u16,
        dst_port: ((p(2) as u16) << 8) | p(3) as u16,
        l4_off: (l4 - data) as u32,
        payload_off: (l4 - data) as u32 + 8,
    };
    if protocol == IPPROTO_TCP {
        // SAFETY: 12 and 13 < need.
        let (doff, flags) =
            unsafe { (*((l4 + 12) as *const u8) as u32, *((l4 + 13) as *const u8)) };
        h.payload_off = h.l4_off + (doff >> 4) * 4;
        h.tcp_flags = flags;
        h.syn = flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    }
    Peeked::Plain(h)
}

/// Addresses, ports and where the transport payload starts.
pub(crate) struct Flow {
    pub headers: Headers,
    /// TCP: the segment's sequence number; 0 for UDP.
    pub tcp_seq: u32,
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
}

#[inline(always)]
pub(crate) fn load<const N: usize>(ctx: &SkBuffContext, offset: u32, buf: &mut [u8; N]) -> bool {
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

/// Parses the IP and transport headers, with addresses. `None` for anything that is not a
/// first fragment of UDP or TCP.
#[inline(always)]
pub(crate) fn parse(ctx: &SkBuffContext) -> Option<Flow> {
    let mut h = [0u8; 24];
    if !load(ctx, 0, &mut h) {
        return None;
    }
    let mut flow = Flow {
        headers: Headers {
            ip_version: h[0] >> 4,
            protocol: 0,
            syn: false,
            tcp_flags: 0,
            src_port: 0,
            dst_port: 0,
            l4_off: 0,
            payload_off: 0,
        },
        tcp_seq: 0,
        src_addr: [0; 16],
        dst_addr: [0; 16],
    };
    let l4_off: u32;
    match flow.headers.ip_version {
        4 => {
            let ihl = ((h[0] & 0x0f) as u32) * 4;
            if ihl < 20 {
                return None;
            }
            // Non-first fragments carry no transport header.
            if be16(&h, 6) & 0x1fff != 0 {
                return None;
            }
            flow.headers.protocol = h[9];
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
            flow.headers.protocol = next;
            l4_off = off;
        }
        _ => return None,
    }
    let mut ports = [0u8; 4];
    if !load(ctx, l4_off, &mut ports) {
        return None;
    }
    flow.headers.l4_off = l4_off;
    flow.headers.src_port = be16(&ports, 0);
    flow.headers.dst_port = be16(&ports, 2);
    match flow.headers.protocol {
        IPPROTO_UDP => flow.headers.payload_off = l4_off + 8,
        IPPROTO_TCP => {
            // Sequence number (4..8), acknowledgment (8..12), data offset (12), flags (13).
            let mut t = [0u8; 10];
            if !load(ctx, l4_off + 4, &mut t) {
                return None;
            }
            flow.tcp_seq = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
            flow.headers.payload_off = l4_off + ((t[8] >> 4) as u32) * 4;
            flow.headers.tcp_flags = t[9];
            flow.headers.syn = t[9] & (TCP_SYN | TCP_ACK) == TCP_SYN;
        }
        _ => return None,
    }
    Some(flow)
}

/// The source and destination addresses of a packet whose headers [`peek`] or [`parse`] read
/// (IPv4 in the first 4 bytes). `None` when they cannot be read.
#[inline(always)]
pub(crate) fn addresses(ctx: &SkBuffContext, ip_version: u8) -> Option<([u8; 16], [u8; 16])> {
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    if ip_version == 4 {
        let mut a = [0u8; 8];
        if !load(ctx, 12, &mut a) {
            return None;
        }
        src[..4].copy_from_slice(&a[..4]);
        dst[..4].copy_from_slice(&a[4..]);
    } else {
        let mut a = [0u8; 32];
        if !load(ctx, 8, &mut a) {
            return None;
        }
        src.copy_from_slice(&a[..16]);
        dst.copy_from_slice(&a[16..]);
    }
    Some((src, dst))
}
