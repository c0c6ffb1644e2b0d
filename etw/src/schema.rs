//! The ETW events this sensor consumes: providers, event ids or opcodes, and the properties read
//! from each, with where their layout is documented. The consumer copies exactly these
//! properties out of each event (see `consumer.rs`); the tests build fixtures with the same
//! names and types.
//!
//! Sources:
//! - Microsoft-Windows-Kernel-Process: the provider manifest (`wevtutil gp
//!   Microsoft-Windows-Kernel-Process /ge /gm`; as transcribed in OTRF/OSSEM's
//!   `data_dictionaries/windows/etw-providers/Microsoft-Windows-Kernel-Process/events/event-1_v3.md`):
//!   event 1 ProcessStart (`ProcessID` UInt32, `CreateTime` FILETIME, `ParentProcessID` UInt32,
//!   `SessionID` UInt32, ..., `ImageName` UnicodeString: the NT path,
//!   `\Device\HarddiskVolumeN\...`), event 2 ProcessStop (`ProcessID`, ...), keyword
//!   `WINEVENT_KEYWORD_PROCESS` (0x10).
//! - The kernel logger's Process class (GUID 3d6fa8d0-fe05-11d0-9dda-00c04fd7ba7c), Microsoft
//!   Learn "Process_TypeGroup1 class" and its V2..V4 versions: event types 1 Start, 2 End,
//!   3 DCStart, 4 DCEnd; `ProcessId` and `ParentId` uint32, `UserSID` object with extension
//!   "Sid" (TDH in-type WBEMSID: a `TOKEN_USER` followed by the SID), `ImageFileName` string
//!   (ANSI, the image's file name), `CommandLine` string (UTF-16, the full command line).
//!   Enabled with `EVENT_TRACE_FLAG_PROCESS` (0x1). Decoded from its layout by
//!   `process_v4.rs`, not property by property: [`kernel_trace::FIELDS`] names what it gives.
//! - Microsoft-Windows-DNS-Client (GUID 1c95126e-7eea-49a9-a3fe-a378b03ddb4d): the provider
//!   manifest (`Get-WinEvent -ListProvider Microsoft-Windows-DNS-Client`; OSSEM's
//!   `.../Microsoft-Windows-DNS-Client/events/event-3006.md` and `event-3008.md`): 3006 "DNS
//!   query is called for the name %1, type %2, ..." (`QueryName` UnicodeString, `QueryType`
//!   UInt32, `QueryOptions` UInt64, `ServerList` UnicodeString, `IsNetworkQuery`,
//!   `NetworkQueryIndex`, `InterfaceIndex`, `IsAsyncQuery` UInt32); 3008 "DNS query is
//!   completed for the name %1, type %2, query options %3 with status %4 Results %5"
//!   (`QueryName`, `QueryType`, `QueryOptions`, `QueryStatus` UInt32, `QueryResults`
//!   UnicodeString). Both are logged by dnsapi.dll inside the asking process, so the header's
//!   process id names it. Both carry only the reserved keyword bit 63 (as the provider's other
//!   events do, so no keyword mask singles them out: the session filters by event id), level 4.
//! - Microsoft-Windows-Kernel-Network (GUID 7dd42a49-5329-4832-8dfd-43d979153a88): the provider
//!   manifest (`wevtutil gp Microsoft-Windows-Kernel-Network /ge /gm`; as transcribed in
//!   repnz/etw-providers-docs' `Manifests-*/Microsoft-Windows-Kernel-Network.xml` and OTRF's
//!   OSSEM-DD `windows/etw-providers/Microsoft-Windows-Kernel-Network/events/event-12.yml`,
//!   `-28`, `-42`, `-58`): task `KERNEL_NETWORK_TASK_TCPIP` 12 "TCPv4: Connection attempted
//!   between %4:%6 and %3:%5" (keyword `KERNEL_NETWORK_KEYWORD_IPV4` 0x10) and 28 its TCPv6 twin
//!   (`KERNEL_NETWORK_KEYWORD_IPV6` 0x20); task `KERNEL_NETWORK_TASK_UDPIP` 42 "UDPv4: %2 bytes
//!   transmitted from %4:%6 to %3:%5" and 58 its UDPv6 twin; all version 0, level 4. Their
//!   templates start `PID` UInt32 (the process the socket belongs to: the events are logged
//!   in whatever context the stack runs, so the header's process id is not it), `size` UInt32,
//!   `daddr`, `saddr` (UInt32 with out-type `win:IPv4`, the address's bytes in network order;
//!   for IPv6 Binary of length 16), `dport`, `sport` (UInt16 with out-type `win:Port`: network
//!   byte order), then fields this sensor does not read (TCP options, `seqnum`, `connid`). The
//!   provider's keywords are per IP version, not per protocol: both are enabled and the
//!   event-id filter keeps the four events (no data, receive, retransmit or disconnect events).

use crate::fields::Source;

/// How a property is read out of the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    U32,
    U64,
    /// UTF-16 or ANSI text.
    Str,
    /// Raw bytes (the WBEM SID blob).
    Bytes,
    /// An IPv4 or IPv6 address (out-type `win:IPv4` / `win:IPv6`).
    Ip,
    /// A UInt16 port in network byte order (out-type `win:Port`).
    Port,
}

/// A property to copy out of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: Kind,
}

const fn spec(name: &'static str, kind: Kind) -> FieldSpec {
    FieldSpec { name, kind }
}

/// Microsoft-Windows-Kernel-Process.
pub mod kernel_process {
    use super::{FieldSpec, Kind, spec};

    pub const GUID: &str = "22fb2cd6-0e7b-422b-a0c7-2fad1fd0e716";
    /// `WINEVENT_KEYWORD_PROCESS`: process start and stop only (no threads, images, ...).
    pub const KEYWORD_PROCESS: u64 = 0x10;
    pub const PROCESS_START: u16 = 1;
    pub const PROCESS_STOP: u16 = 2;

    pub const START_FIELDS: &[FieldSpec] = &[
        spec("ProcessID", Kind::U32),
        spec("ParentProcessID", Kind::U32),
        spec("ImageName", Kind::Str),
    ];
    pub const STOP_FIELDS: &[FieldSpec] = &[spec("ProcessID", Kind::U32)];
}

/// The kernel logger's `Process` event class.
pub mod kernel_trace {
    use super::{FieldSpec, Kind, spec};

    pub const PROCESS_GUID: &str = "3d6fa8d0-fe05-11d0-9dda-00c04fd7ba7c";
    pub const START: u8 = 1;
    pub const END: u8 = 2;
    pub const DC_START: u8 = 3;
    pub const DC_END: u8 = 4;

    pub const FIELDS: &[FieldSpec] = &[
        spec("ProcessId", Kind::U32),
        spec("ParentId", Kind::U32),
        spec("UserSID", Kind::Bytes),
        spec("ImageFileName", Kind::Str),
        spec("CommandLine", Kind::Str),
    ];
    pub const END_FIELDS: &[FieldSpec] = &[spec("ProcessId", Kind::U32)];
}

/// Microsoft-Windows-DNS-Client.
pub mod dns_client {
    use super::{FieldSpec, Kind, spec};

    pub const GUID: &str = "1c95126e-7eea-49a9-a3fe-a378b03ddb4d";
    pub const QUERY: u16 = 3006;
    pub const COMPLETED: u16 = 3008;

    pub const QUERY_FIELDS: &[FieldSpec] =
        &[spec("QueryName", Kind::Str), spec("QueryType", Kind::U32)];
    pub const COMPLETED_FIELDS: &[FieldSpec] = &[
        spec("QueryName", Kind::Str),
        spec("QueryType", Kind::U32),
        spec("QueryStatus", Kind::U32),
        spec("QueryResults", Kind::Str),
    ];
}

/// Microsoft-Windows-Kernel-Network.
pub mod kernel_network {
    use super::{FieldSpec, Kind, spec};

    pub const GUID: &str = "7dd42a49-5329-4832-8dfd-43d979153a88";
    /// `KERNEL_NETWORK_KEYWORD_IPV4`.
    pub const KEYWORD_IPV4: u64 = 0x10;
    /// `KERNEL_NETWORK_KEYWORD_IPV6`.
    pub const KEYWORD_IPV6: u64 = 0x20;
    /// TCPv4 connection attempted.
    pub const TCP_CONNECT_V4: u16 = 12;
    /// TCPv6 connection attempted.
    pub const TCP_CONNECT_V6: u16 = 28;
    /// UDPv4 data sent.
    pub const UDP_SEND_V4: u16 = 42;
    /// UDPv6 data sent.
    pub const UDP_SEND_V6: u16 = 58;
    /// The four, for the session's event-id filter.
    pub const EVENTS: [u16; 4] = [TCP_CONNECT_V4, TCP_CONNECT_V6, UDP_SEND_V4, UDP_SEND_V6];

    pub const FIELDS: &[FieldSpec] = &[
        spec("PID", Kind::U32),
        spec("daddr", Kind::Ip),
        spec("saddr", Kind::Ip),
        spec("dport", Kind::Port),
        spec("sport", Kind::Port),
    ];

    /// Whether event `id` is TCP (else UDP), for the four above.
    pub fn is_tcp(id: u16) -> bool {
        matches!(id, TCP_CONNECT_V4 | TCP_CONNECT_V6)
    }
}

/// The properties to copy out of an event, or `None` for events the sensor does not use (they
/// are dropped in the callback, before the channel).
pub fn fields_of(source: Source, event_id: u16, opcode: u8) -> Option<&'static [FieldSpec]> {
    match source {
        Source::KernelProcess => match event_id {
            kernel_process::PROCESS_START => Some(kernel_process::START_FIELDS),
            kernel_process::PROCESS_STOP => Some(kernel_process::STOP_FIELDS),
            _ => None,
        },
        Source::KernelTrace => match opcode {
            kernel_trace::START | kernel_trace::DC_START => Some(kernel_trace::FIELDS),
            kernel_trace::END => Some(kernel_trace::END_FIELDS),
            _ => None,
        },
        Source::DnsClient => match event_id {
            dns_client::QUERY => Some(dns_client::QUERY_FIELDS),
            dns_client::COMPLETED => Some(dns_client::COMPLETED_FIELDS),
            _ => None,
        },
        Source::KernelNetwork => kernel_network::EVENTS
            .contains(&event_id)
            .then_some(kernel_network::FIELDS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_events_the_sensor_maps_are_kept() {
        assert!(fields_of(Source::KernelProcess, 1, 1).is_some());
        assert!(fields_of(Source::KernelProcess, 2, 2).is_some());
        assert!(
            fields_of(Source::KernelProcess, 5, 0).is_none(),
            "image load"
        );
        assert!(fields_of(Source::KernelTrace, 0, 1).is_some());
        assert!(fields_of(Source::KernelTrace, 0, 3).is_some());
        assert!(fields_of(Source::KernelTrace, 0, 2).is_some());
        assert!(fields_of(Source::KernelTrace, 0, 4).is_none(), "DCEnd");
        assert!(fields_of(Source::KernelTrace, 0, 39).is_none(), "Defunct");
        assert!(fields_of(Source::DnsClient, 3006, 0).is_some());
        assert!(fields_of(Source::DnsClient, 3008, 0).is_some());
        assert!(fields_of(Source::DnsClient, 3020, 0).is_none());
        for id in [12, 28, 42, 58] {
            assert!(fields_of(Source::KernelNetwork, id, 0).is_some(), "{id}");
        }
        for id in [10, 11, 13, 15, 26, 43, 59] {
            assert!(fields_of(Source::KernelNetwork, id, 0).is_none(), "{id}");
        }
        let names: Vec<_> = kernel_trace::FIELDS.iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "ProcessId",
                "ParentId",
                "UserSID",
                "ImageFileName",
                "CommandLine"
            ]
        );
    }
}
