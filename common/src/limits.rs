//! Bounds of what the kernel side copies. They are part of the ABI: user space documents them
//! and flags anything cut at these bounds as truncated.

/// Bytes of the argument area (`argv`, NUL-separated as in `/proc/PID/cmdline`) copied per exec.
pub const ARGS_MAX: usize = 8192;

/// Bytes of `linux_binprm::filename` (the path as given to exec) copied per exec.
pub const FILENAME_MAX: usize = 512;

/// Bytes reserved for the executable's path, built from its dentries (leaf first).
pub const PATH_MAX: usize = 4096;

/// Longest single path component copied (NAME_MAX + NUL).
pub const NAME_MAX: usize = 256;

/// Path components walked from the executable towards the root before giving up.
pub const PATH_DEPTH_MAX: usize = 40;

/// Bytes reserved for the names of the task's cgroup (default hierarchy) and its ancestors,
/// leaf first: enough for the deepest container layouts (a Kubernetes container under its pod
/// and QoS slices, in a kind node's container), so that a container gone before user space
/// looks still has its id.
pub const CGROUP_PATH_MAX: usize = 1024;

/// Cgroups walked from the task's towards the root before giving up.
pub const CGROUP_DEPTH_MAX: usize = 12;

/// Size of the variable area of an exec record: arguments, then filename, then path
/// components, then cgroup names. It is a power of two so that the kernel side can bound offsets with a mask.
pub const EXEC_DATA_SIZE: usize = 16384;

/// Slack after [`EXEC_DATA_SIZE`]: the largest single write that may start just below it.
pub const EXEC_DATA_SLACK: usize = FILENAME_MAX;

/// Bytes of a DNS packet's transport payload copied per packet (a power of two).
pub const DNS_CAPTURE_MAX: usize = 2048;

/// Bytes of one packet of a connection's first flight copied per record (a power of two): a
/// TLS ClientHello with post-quantum key shares (about 1.8 KB) or padded with tickets and ECH,
/// or a QUIC Initial datagram (1200 to 1500 bytes), fits whole.
pub const FLIGHT_CAPTURE_MAX: usize = 8192;

/// Bytes of a TCP connection's first flight captured in all, over at most
/// [`FLIGHT_TCP_SEGMENTS`] data segments: a ClientHello that spans two or three segments (an
/// MTU of 1500), or that a client spread over several TLS records, is whole up to this.
pub const FLIGHT_TCP_BYTES: u32 = 8192;

/// Data segments of a TCP connection's first flight captured at most.
pub const FLIGHT_TCP_SEGMENTS: u8 = 4;

/// Datagrams of a UDP flow captured (its first ones): Chrome sends a large ClientHello in two
/// QUIC Initial packets; glibc sends the A and AAAA queries of one lookup back to back.
pub const FLIGHT_UDP_DATAGRAMS: u8 = 2;

/// Destinations an unconnected UDP socket remembers to tell a new flow from an old one (its
/// most recent ones): a socket that sends to more destinations in turn reports a flow again
/// when it comes back to one it forgot.
pub const UDP_RECENT_DESTINATIONS: usize = 8;

/// Ports watched for DNS when none are configured.
pub const DEFAULT_DNS_PORTS: [u16; 1] = [53];

/// Most DNS ports the kernel side can watch at once.
pub const DNS_PORTS_MAX: usize = 8;

/// Wake-up coalescing of the main ring: a record submitted within this many nanoseconds of
/// the last one that woke user space does not wake it again. User space, once woken, drains,
/// waits this long and drains once more, so no record waits longer than about this (see
/// ebpf/src/maps.rs and userspace/src/linux/sensor.rs).
pub const WAKE_COALESCE_NS: u64 = 1_000_000;

/// Wake-up coalescing of flow and first-flight records (longer than [`WAKE_COALESCE_NS`]:
/// user space holds a flow up to `FLOW_HOLD_NS` for its first flight anyway). User space, once
/// woken, drains the ring every this long until a drain finds it empty, so that no such
/// record waits longer than about this.
pub const FLOW_WAKE_COALESCE_NS: u64 = 20_000_000;

/// Task command name length (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

const _: () = assert!(EXEC_DATA_SIZE.is_power_of_two());
const _: () = assert!(DNS_CAPTURE_MAX.is_power_of_two());
const _: () = assert!(FLIGHT_CAPTURE_MAX.is_power_of_two());
const _: () = assert!(ARGS_MAX + FILENAME_MAX + PATH_MAX + CGROUP_PATH_MAX <= EXEC_DATA_SIZE);
