//! Which flows' first flights the egress program captures, and which unconnected UDP
//! destinations are new, in fixed arrays: no allocation per flow (socket-local storage cost
//! 0.8-0.9 µs per connect to create here) and no helper call on a packet's common path, where
//! a helper call costs 20-25 ns on this VM (as much as a third of an empty program's run).
//!
//! - [`SLOTS`]: buckets of [`WAYS`] capture slots, indexed by a hash of the flow as the
//!   egress program can read it from the packet alone: the 4-tuple for TCP (armed at the SYN,
//!   when the source port is known), the destination for UDP (armed at `connect()` or at a
//!   datagram to a new destination, before the source port may be bound). A packet leaves
//!   after one inlined array lookup when no live slot of its bucket carries its hash's tag;
//!   the socket cookie (a helper call) is compared only then.
//! - [`DEDUP`]: unconnected UDP (source port, destination) pairs seen lately, so that a socket
//!   sending to one peer reports one flow; a pair is reported again after [`DEDUP_EPOCHS`].
//! - [`EPOCH`]: a coarse clock (seconds) user space advances: a slot lives [`SLOT_EPOCHS`],
//!   enough for a connection's first flight (one round trip after `connect()`), so a flow that
//!   never sends, or a socket that closed first, costs nothing after that; and the epoch of the
//!   latest arming, so that when no slot can be live a packet leaves after that one lookup.
//!
//! Collisions are harmless: a packet of another flow that hashes to a live slot costs a cookie
//! read and is not captured; a new flow that finds both ways of its bucket busy takes the
//! older one (counted in `flight_evicted`).

use aya_ebpf::{macros::map, maps::Array};

/// Buckets in [`SLOTS`] (a power of two).
pub(crate) const BUCKETS: u32 = 4096;
/// Slots per bucket.
pub(crate) const WAYS: usize = 2;
/// Epochs a slot stays live after it is armed.
pub(crate) const SLOT_EPOCHS: u32 = 3;
/// Entries in [`DEDUP`] (a power of two).
pub(crate) const DEDUP_ENTRIES: u32 = 4096;
/// Epochs after which an unconnected UDP destination is reported again.
pub(crate) const DEDUP_EPOCHS: u32 = 60;

/// What the egress program still captures of a flow ([`Slot::want`]).
pub(crate) mod want {
    /// TCP data segments or UDP datagrams.
    pub(crate) const DATA: u8 = 1 << 1;
}

/// One flow being captured.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Slot {
    /// High half of the flow's hash (the low half picked the bucket); 0 when free.
    pub tag: u32,
    /// [`EPOCH`] + 1 when armed.
    pub armed: u32,
    /// The socket's cookie.
    pub cookie: u64,
    /// A combination of [`want`]; 0 once the first flight is captured.
    pub want: u8,
    /// Index of the next record of this flow.
    pub index: u8,
    /// TCP data segments or UDP datagrams still to capture.
    pub left: u8,
    pub _pad: u8,
    /// TCP: bytes of the stream sent so far (captured or not).
    pub seen: u32,
    /// TCP: bytes of the stream that are its first flight (set from the first segment).
    pub wanted: u32,
    pub _pad2: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Bucket {
    pub slots: [Slot; WAYS],
}

#[map]
pub(crate) static SLOTS: Array<Bucket> = Array::with_max_entries(BUCKETS, 0);

/// One unconnected UDP (source port, destination) seen.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Seen {
    /// The pair's hash (0: free).
    pub key: u64,
    /// [`EPOCH`] when reported.
    pub epoch: u32,
    pub _pad: u32,
}

#[map]
pub(crate) static DEDUP: Array<Seen> = Array::with_max_entries(DEDUP_ENTRIES, 0);

/// The coarse clock: at [`NOW`], the time in seconds, written by user space
/// (`loader::Probes::tick`); at [`ARMED`], the epoch of the latest arming (+1; 0: never),
/// written here.
#[map]
pub(crate) static EPOCH: Array<u32> = Array::with_max_entries(2, 0);
pub(crate) const NOW: u32 = 0;
pub(crate) const ARMED: u32 = 1;

#[inline(always)]
pub(crate) fn epoch() -> u32 {
    EPOCH.get(NOW).copied().unwrap_or(0)
}

/// Whether any slot may be live: one was armed within [`SLOT_EPOCHS`]. The first gate of a
/// packet's common path (two inlined lookups): a host that started no flow lately pays no more.
#[inline(always)]
pub(crate) fn any_live() -> bool {
    let armed = EPOCH.get(ARMED).copied().unwrap_or(0);
    armed != 0 && epoch().wrapping_sub(armed.wrapping_sub(1)) < SLOT_EPOCHS
}

/// Odd constants for the multiplies below (from SplitMix64 and the golden ratio).
const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xbf58_476d_1ce4_e5b9;
const K3: u64 = 0x94d0_49bb_1331_11eb;

#[inline(always)]
fn pair(a: u32, b: u32) -> u64 {
    ((a as u64) << 32) | b as u64
}

/// The last mix: the high half of a 64-bit product depends on every bit below it. Never 0.
#[inline(always)]
fn finish(h: u64) -> u64 {
    let h = h.wrapping_mul(K2);
    (h ^ (h >> 31)) | 1
}

/// A hash of a destination: address (IPv4 in the first word; IPv4-mapped IPv6 is IPv4, so
/// `v6` is false for it), port and protocol, the same whether they come from a socket address
/// (`conn.rs`) or a packet (`flight.rs`). The words are paired into 64-bit lanes, so an IPv4
/// destination costs one multiply: this runs on every UDP packet while a flow may be armed.
/// Not a cryptographic hash: a collision costs a cookie read or a capture, nothing more.
#[inline(always)]
pub(crate) fn dest_hash(addr: &[u32; 4], v6: bool, port: u16, protocol: u8) -> u64 {
    let mut h = pair(addr[0], ((protocol as u32) << 16) | port as u32);
    if v6 {
        h ^= pair(addr[1], addr[2]).wrapping_mul(K1) ^ (addr[3] as u64).wrapping_mul(K3);
    }
    finish(h)
}

/// A hash of a TCP connection's 4-tuple, as its packets show it; `ports` is the source port
/// in the high half and the destination port in the low half.
#[inline(always)]
pub(crate) fn tuple_hash(src: &[u32; 4], dst: &[u32; 4], v6: bool, ports: u32) -> u64 {
    let mut h = pair(src[0], dst[0]) ^ (ports as u64).wrapping_mul(K1);
    if v6 {
        h ^= pair(src[1], src[2]).wrapping_mul(K3)
            ^ pair(src[3], dst[1]).wrapping_mul(K1)
            ^ pair(dst[2], dst[3]).wrapping_mul(K3).rotate_left(17);
    }
    finish(h)
}

/// A hash of an unconnected UDP socket's (source port, destination hash `dest`).
#[inline(always)]
pub(crate) fn pair_hash(dest: u64, src_port: u16) -> u64 {
    finish(dest ^ (src_port as u64).wrapping_mul(K1))
}

#[inline(always)]
fn bucket_of(h: u64) -> u32 {
    (h as u32) & (BUCKETS - 1)
}

#[inline(always)]
fn tag_of(h: u64) -> u32 {
    ((h >> 32) as u32) | 1
}

#[inline(always)]
fn live(s: &Slot, now: u32) -> bool {
    s.want != 0 && s.armed != 0 && now.wrapping_sub(s.armed.wrapping_sub(1)) < SLOT_EPOCHS
}

/// The live slot of flow hash `h` whose socket is `cookie()`, if any. The cookie (a helper
/// call) is read only when a live slot carries the tag.
#[inline(always)]
pub(crate) fn find(h: u64, cookie: impl FnOnce() -> u64) -> Option<&'static mut Slot> {
    let b = SLOTS.get_ptr_mut(bucket_of(h))?;
    // SAFETY: an array value, valid for the program's run; races with other CPUs only make
    // a capture incomplete, which user space copes with.
    let b = unsafe { &mut *b };
    let tag = tag_of(h);
    let tag0 = b.slots[0].tag == tag;
    let tag1 = b.slots[1].tag == tag;
    if !tag0 && !tag1 {
        return None;
    }
    let now = epoch();
    let hit0 = tag0 && live(&b.slots[0], now);
    let hit1 = tag1 && live(&b.slots[1], now);
    if !hit0 && !hit1 {
        return None;
    }
    let c = cookie();
    if hit0 && b.slots[0].cookie == c {
        return Some(&mut b.slots[0]);
    }
    if hit1 && b.slots[1].cookie == c {
        return Some(&mut b.slots[1]);
    }
    None
}

/// Arms a slot for flow hash `h` of socket `cookie`: its own if it has one, else a free or
/// stale one, else the older of the bucket's. Returns it, and whether a live capture was
/// given up for it.
#[inline(always)]
pub(crate) fn arm(h: u64, cookie: u64) -> Option<(&'static mut Slot, bool)> {
    let b = SLOTS.get_ptr_mut(bucket_of(h))?;
    // SAFETY: as in `find`.
    let b = unsafe { &mut *b };
    let tag = tag_of(h);
    let now = epoch();
    let pick = if b.slots[0].tag == tag && b.slots[0].cookie == cookie {
        0
    } else if b.slots[1].tag == tag && b.slots[1].cookie == cookie {
        1
    } else if !live(&b.slots[0], now) {
        0
    } else if !live(&b.slots[1], now) {
        1
    } else if b.slots[0].armed <= b.slots[1].armed {
        0
    } else {
        1
    };
    if let Some(a) = EPOCH.get_ptr_mut(ARMED) {
        // SAFETY: an array value; racing writers all write about the same epoch.
        unsafe { *a = now.wrapping_add(1) };
    }
    let s = &mut b.slots[pick];
    let evicted = live(s, now) && !(s.tag == tag && s.cookie == cookie);
    *s = Slot {
        tag,
        armed: now.wrapping_add(1),
        cookie,
        want: 0,
        index: 0,
        left: 0,
        _pad: 0,
        seen: 0,
        wanted: 0,
        _pad2: 0,
    };
    Some((s, evicted))
}

/// Whether unconnected UDP pair hash `h` was reported within [`DEDUP_EPOCHS`]; if not, it is
/// noted as reported now (the caller reports it).
#[inline(always)]
pub(crate) fn seen_lately(h: u64) -> bool {
    let Some(e) = DEDUP.get_ptr_mut((h as u32) & (DEDUP_ENTRIES - 1)) else {
        return false;
    };
    // SAFETY: an array value; a race reports a pair twice at worst.
    let e = unsafe { &mut *e };
    let now = epoch();
    if e.key == h && now.wrapping_sub(e.epoch) < DEDUP_EPOCHS {
        return true;
    }
    e.key = h;
    e.epoch = now;
    false
}
