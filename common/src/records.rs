//! Ring-buffer records. Each starts with a [`RecordHeader`]; the kernel side may send fewer
//! bytes than `size_of` a record when its trailing data area is not full (`header.size`
//! says how many), so user space must decode with bounds checks.

use crate::limits::{COMM_LEN, DNS_CAPTURE_MAX, EXEC_DATA_SIZE, EXEC_DATA_SLACK};

/// Layout version of every record; bumped on any change.
pub const RECORD_VERSION: u8 = 4;

/// What a record is.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Exec = 1,
    Fork = 2,
    Exit = 3,
    Dns = 4,
}

impl RecordKind {
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Exec),
            2 => Some(Self::Fork),
            3 => Some(Self::Exit),
            4 => Some(Self::Dns),
            _ => None,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordHeader {
    /// A [`RecordKind`].
    pub kind: u8,
    /// [`RECORD_VERSION`] of the writer.
    pub version: u8,
    pub _pad: u16,
    /// Bytes of this record that are meaningful, header included.
    pub size: u32,
    /// `CLOCK_BOOTTIME` nanoseconds when the kernel saw the event.
    pub boot_ns: u64,
}

/// Identity of a task as the kernel side saw it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskInfo {
    /// Process id (thread group id).
    pub tgid: u32,
    /// Thread id.
    pub pid: u32,
    /// Process id of the real parent.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    /// Audit login uid (`u32::MAX` when unset or unknown).
    pub loginuid: u32,
    pub _pad: u32,
    /// `CLOCK_BOOTTIME` nanoseconds when the thread group leader started: with `tgid`, a
    /// process identity that survives pid reuse.
    pub start_ns: u64,
    /// cgroup v2 id of the task (names the container or unit).
    pub cgroup_id: u64,
    pub comm: [u8; COMM_LEN],
}

/// Exec flags.
pub mod exec_flags {
    /// The argument area was longer than `ARGS_MAX`.
    pub const ARGS_TRUNCATED: u32 = 1 << 0;
    /// The argument area could not be read.
    pub const ARGS_FAULT: u32 = 1 << 1;
    /// The path walk stopped before the root (too deep or too long).
    pub const PATH_TRUNCATED: u32 = 1 << 2;
    /// The filename given to exec was longer than `FILENAME_MAX`.
    pub const FILENAME_TRUNCATED: u32 = 1 << 3;
    /// The task had no mm or no exe_file (kernel threads, cannot normally happen on exec).
    pub const NO_EXE: u32 = 1 << 4;
}

/// A successful exec (`sched_process_exec`).
///
/// `data` holds, back to back: `args_len` bytes of the argument area (NUL-separated),
/// `filename_len` bytes of the filename given to exec (NUL-terminated), and `path_len` bytes
/// of the executable's path components, leaf first, each NUL-terminated. The kernel side
/// sends only the used part of `data`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecRecord {
    pub header: RecordHeader,
    pub task: TaskInfo,
    pub parent_comm: [u8; COMM_LEN],
    pub parent_start_ns: u64,
    pub exe_ino: u64,
    /// Seconds of the executable's mtime. With `exe_dev`, `exe_ino`, `exe_ctime`,
    /// `exe_ctime_nsec` and `exe_size`, the key of user space's cache of what a file is: any
    /// write to the file changes its ctime (which no user can set back, unlike the mtime).
    pub exe_mtime: u64,
    /// Seconds of the executable's ctime (the last change of its content or attributes).
    pub exe_ctime: u64,
    /// The executable's size in bytes.
    pub exe_size: u64,
    pub exe_dev: u32,
    /// Nanoseconds of the executable's ctime (flag bits above 999,999,999 cleared).
    pub exe_ctime_nsec: u32,
    /// A combination of [`exec_flags`].
    pub flags: u32,
    /// `arg_end - arg_start`: the real length of the argument area.
    pub args_total: u32,
    pub args_len: u32,
    pub filename_len: u32,
    pub path_len: u32,
    pub data: [u8; EXEC_DATA_SIZE + EXEC_DATA_SLACK],
}

impl ExecRecord {
    /// Offset of `data` within the record.
    pub const DATA_OFFSET: usize = core::mem::offset_of!(ExecRecord, data);
}

/// A new process (not a thread): `sched_process_fork` where the child leads its own group.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkRecord {
    pub header: RecordHeader,
    pub parent_tgid: u32,
    pub child_tgid: u32,
    pub parent_start_ns: u64,
    pub child_start_ns: u64,
}

/// The end of a whole process (its last thread left, `sched_process_exit`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitRecord {
    pub header: RecordHeader,
    pub tgid: u32,
    pub exit_code: u32,
    pub start_ns: u64,
}

/// Direction of a packet relative to this host.
pub mod direction {
    pub const EGRESS: u8 = 1;
    pub const INGRESS: u8 = 2;
}

/// Where a DNS record's [`TaskInfo`] comes from.
pub mod owner_source {
    /// No process known (ingress packet for a socket never seen sending).
    pub const UNKNOWN: u8 = 0;
    /// The task that was current when the packet was sent.
    pub const CURRENT: u8 = 1;
    /// The last task seen sending on the same socket (by socket cookie).
    pub const SOCKET: u8 = 2;
}

/// A DNS packet seen by the cgroup_skb programs: the transport payload (for TCP including
/// the 2-byte length prefix) and who sent or receives it. The kernel side sends only the
/// used part of `payload`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsRecord {
    pub header: RecordHeader,
    pub task: TaskInfo,
    /// Socket cookie (`bpf_get_socket_cookie`), ties a response to its query's socket.
    pub cookie: u64,
    /// One of [`direction`].
    pub direction: u8,
    /// 4 or 6.
    pub ip_version: u8,
    /// IPPROTO_UDP (17) or IPPROTO_TCP (6).
    pub protocol: u8,
    /// One of [`owner_source`].
    pub owner: u8,
    /// Host byte order.
    pub src_port: u16,
    pub dst_port: u16,
    /// IPv4 in the first 4 bytes, or IPv6.
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    /// Transport payload length in the packet.
    pub payload_len: u32,
    /// Bytes of it copied into `payload` (at most `DNS_CAPTURE_MAX`).
    pub captured_len: u32,
    /// TCP: the segment's sequence number (of the SYN itself when [`tcp_flags::SYN`] is set:
    /// Fast Open data then starts at `tcp_seq + 1`); user space orders a stream's bytes by
    /// it. 0 for UDP.
    pub tcp_seq: u32,
    /// UDP: the segment size of a GSO datagram (`UDP_SEGMENT`: one send, several datagrams
    /// on the wire, each `gso_size` bytes but the last), 0 for a plain datagram. User space
    /// splits the payload at it.
    pub gso_size: u16,
    /// TCP: the segment's flags ([`tcp_flags`]); 0 for UDP.
    pub tcp_flags: u8,
    pub _pad: u8,
    pub payload: [u8; DNS_CAPTURE_MAX],
}

/// TCP flags as the header carries them (byte 13), for [`DnsRecord::tcp_flags`].
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

impl DnsRecord {
    pub const PAYLOAD_OFFSET: usize = core::mem::offset_of!(DnsRecord, payload);
}

/// Global configuration handed to the programs as a read-only global.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SensorConfig {
    /// The sensor's own process id: its activity is not reported.
    pub self_tgid: u32,
    /// Number of valid entries in `dns_ports`.
    pub dns_port_count: u32,
    /// Ports treated as DNS (either direction), host byte order.
    pub dns_ports: [u16; crate::limits::DNS_PORTS_MAX],
}

#[cfg(feature = "user")]
// SAFETY: plain old data, `#[repr(C)]`, no padding holes with undefined content that the
// kernel would read as meaningful.
unsafe impl aya::Pod for SensorConfig {}
