//! Per-socket flow state in socket-local storage (`BPF_MAP_TYPE_SK_STORAGE`, kernel 5.2+;
//! reachable from cgroup sock_addr programs since 5.3): `conn.rs` creates it when a socket
//! connects or sends to a new destination and says what the first flight is; `flight.rs`
//! reads it for each packet the socket sends and captures that flight. The kernel frees it
//! with the socket, so it is bounded by the sockets that exist; a TCP socket's is deleted as
//! soon as its first flight is captured.

use aya_ebpf::{
    bindings::{BPF_SK_STORAGE_GET_F_CREATE, bpf_sock},
    btf_maps::SkStorage,
    helpers::generated::{bpf_sk_storage_delete, bpf_sk_storage_get},
    macros::btf_map,
};
use tunnelwatch_common::limits::UDP_RECENT_DESTINATIONS;

/// What `flight.rs` still captures of a socket's flow ([`FlowState::want`]).
pub(crate) mod want {
    /// The TCP SYN (the connection's source address and port).
    pub(crate) const SYN: u8 = 1 << 0;
    /// Payload: TCP data segments or UDP datagrams.
    pub(crate) const DATA: u8 = 1 << 1;
}

/// One socket's state.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct FlowState {
    /// A combination of [`want`]; 0 once the first flight is captured.
    pub want: u8,
    /// Index of the next record of this flow (0 for the first).
    pub index: u8,
    /// TCP data segments or UDP datagrams still to capture.
    pub left: u8,
    pub _pad: u8,
    /// TCP: bytes of the stream sent so far (captured or not).
    pub seen: u32,
    /// TCP: bytes of the stream that are its first flight (set from the first segment).
    pub wanted: u32,
    /// Unconnected UDP: next slot of `recent` to replace.
    pub recent_next: u32,
    /// Unconnected UDP: hashes of the destinations it sent to lately (0: empty slot).
    pub recent: [u64; UDP_RECENT_DESTINATIONS],
}

/// Socket -> [`FlowState`].
#[btf_map]
pub(crate) static FLOWS: SkStorage<FlowState> = SkStorage::new();

#[inline(always)]
fn map() -> *mut core::ffi::c_void {
    (&raw const FLOWS).cast_mut().cast()
}

/// The state of full socket `sk`, if it has one.
#[inline(always)]
pub(crate) fn get(sk: *mut bpf_sock) -> Option<&'static mut FlowState> {
    // SAFETY: `sk` is a full socket the verifier knows as such; the storage value lives as
    // long as the socket, which outlives this program run.
    unsafe {
        bpf_sk_storage_get(map(), sk.cast(), core::ptr::null_mut(), 0)
            .cast::<FlowState>()
            .as_mut()
    }
}

/// The state of full socket `sk`, created zeroed if it has none; `None` when it cannot be
/// created (no memory).
#[inline(always)]
pub(crate) fn get_or_create(sk: *mut bpf_sock) -> Option<&'static mut FlowState> {
    // SAFETY: as in `get`; a new value starts zeroed.
    unsafe {
        bpf_sk_storage_get(
            map(),
            sk.cast(),
            core::ptr::null_mut(),
            BPF_SK_STORAGE_GET_F_CREATE as u64,
        )
        .cast::<FlowState>()
        .as_mut()
    }
}

/// Forgets the state of full socket `sk`.
#[inline(always)]
pub(crate) fn delete(sk: *mut bpf_sock) {
    // SAFETY: `sk` is a full socket; deleting absent storage only fails.
    unsafe {
        bpf_sk_storage_delete(map(), sk.cast());
    }
}
