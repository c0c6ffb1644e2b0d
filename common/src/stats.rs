//! Counters the kernel side keeps in the per-CPU `STATS` array. User space sums them over
//! CPUs and reports them on stderr; a record that could not be written to the ring buffer is
//! always counted here, never lost silently.

pub const EXEC_SEEN: u32 = 0;
pub const EXEC_LOST: u32 = 1;
pub const FORK_SEEN: u32 = 2;
pub const FORK_LOST: u32 = 3;
pub const EXIT_SEEN: u32 = 4;
pub const EXIT_LOST: u32 = 5;
pub const DNS_SEEN: u32 = 6;
pub const DNS_LOST: u32 = 7;
/// The argument area could not be read at all (the exec is still reported, without argv).
pub const ARGS_FAULT: u32 = 8;
/// Arguments longer than `ARGS_MAX`: reported truncated.
pub const ARGS_TRUNCATED: u32 = 9;
/// Executable paths deeper or longer than the kernel side walks: reported truncated.
pub const PATH_TRUNCATED: u32 = 10;
/// DNS payloads longer than `DNS_CAPTURE_MAX`: reported truncated.
pub const DNS_TRUNCATED: u32 = 11;
/// Packets on a DNS port that could not be parsed (fragments, unknown headers).
pub const DNS_UNPARSED: u32 = 12;
/// A per-CPU scratch buffer was missing (cannot happen unless the map is broken).
pub const SCRATCH_MISSING: u32 = 13;

/// New outbound flows seen (connect, or a UDP datagram to a new destination).
pub const CONN_SEEN: u32 = 14;
/// ... and not reported: the ring buffer was full.
pub const CONN_LOST: u32 = 15;
/// Packets of first flights captured (TCP SYN and first data segments, first UDP datagrams).
pub const FLIGHT_SEEN: u32 = 16;
/// ... and not reported: the ring buffer was full.
pub const FLIGHT_LOST: u32 = 17;
/// First-flight packets longer than `FLIGHT_CAPTURE_MAX`, or TCP first flights longer than
/// `FLIGHT_TCP_BYTES`: reported truncated.
pub const FLIGHT_TRUNCATED: u32 = 18;
/// First-flight captures given up before they were complete: newer flows took their slots
/// (the flows themselves are still reported).
pub const FLIGHT_EVICTED: u32 = 19;

/// Number of counters.
pub const COUNT: u32 = 24;

/// Human names, indexed by counter.
pub const NAMES: [&str; COUNT as usize] = [
    "exec_seen",
    "exec_lost",
    "fork_seen",
    "fork_lost",
    "exit_seen",
    "exit_lost",
    "dns_seen",
    "dns_lost",
    "args_fault",
    "args_truncated",
    "path_truncated",
    "dns_truncated",
    "dns_unparsed",
    "scratch_missing",
    "conn_seen",
    "conn_lost",
    "flight_seen",
    "flight_lost",
    "flight_truncated",
    "flight_evicted",
    "unused20",
    "unused21",
    "unused22",
    "unused23",
];
