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

/// Ports watched for DNS when none are configured.
pub const DEFAULT_DNS_PORTS: [u16; 1] = [53];

/// Most DNS ports the kernel side can watch at once.
pub const DNS_PORTS_MAX: usize = 8;

/// Wake-up coalescing of the main ring: a record submitted within this many nanoseconds of
/// the last one that woke user space does not wake it again. User space, once woken, drains,
/// waits this long and drains once more, so no record waits longer than about this (see
/// ebpf/src/maps.rs and userspace/src/linux/sensor.rs).
pub const WAKE_COALESCE_NS: u64 = 1_000_000;

/// Task command name length (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

const _: () = assert!(EXEC_DATA_SIZE.is_power_of_two());
const _: () = assert!(DNS_CAPTURE_MAX.is_power_of_two());
const _: () = assert!(ARGS_MAX + FILENAME_MAX + PATH_MAX + CGROUP_PATH_MAX <= EXEC_DATA_SIZE);
