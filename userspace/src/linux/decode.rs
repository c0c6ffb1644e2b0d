//! Ring-buffer bytes to typed records, with every length checked: a short, unknown or
//! inconsistent record is an error, never a panic or an out-of-bounds read.
//!
//! Uses: the kernel-user ABI (`tunnelwatch-common`) only.

use std::mem::{offset_of, size_of};

use thiserror::Error;
use tunnelwatch_common::{
    DnsRecord, ExecRecord, ExitRecord, ForkRecord, RECORD_VERSION, RecordHeader, RecordKind,
    TaskInfo,
    limits::{DNS_CAPTURE_MAX, EXEC_DATA_SIZE},
};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is too short")]
    Short(usize),
    #[error("unknown record kind {0}")]
    Kind(u8),
    #[error("record version {0}, this build reads version {RECORD_VERSION}")]
    Version(u8),
    #[error("record lengths are inconsistent")]
    Lengths,
}

/// A decoded exec record; the byte slices borrow from the ring buffer entry.
#[derive(Debug)]
pub struct Exec<'a> {
    pub boot_ns: u64,
    pub task: TaskInfo,
    pub parent_comm: [u8; 16],
    pub parent_start_ns: u64,
    pub exe_ino: u64,
    pub exe_mtime: u64,
    pub exe_ctime: u64,
    pub exe_ctime_nsec: u32,
    pub exe_size: u64,
    pub exe_dev: u32,
    pub flags: u32,
    pub args_total: u32,
    /// NUL-separated arguments.
    pub args: &'a [u8],
    /// Filename given to exec (without its NUL).
    pub filename: &'a [u8],
    /// Path components, leaf first, each NUL-terminated.
    pub path_components: &'a [u8],
}

/// A decoded DNS packet record.
#[derive(Debug)]
pub struct Dns<'a> {
    pub boot_ns: u64,
    pub task: TaskInfo,
    pub cookie: u64,
    pub direction: u8,
    pub ip_version: u8,
    pub protocol: u8,
    pub owner: u8,
    pub src_port: u16,
    pub dst_port: u16,
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub payload_len: u32,
    /// TCP: sequence number and flags (`records::tcp_flags`); 0 for UDP.
    pub tcp_seq: u32,
    pub tcp_flags: u8,
    /// UDP: segment size of a GSO datagram, 0 for a plain one.
    pub gso_size: u16,
    pub payload: &'a [u8],
}

#[derive(Debug)]
pub enum Record<'a> {
    Exec(Exec<'a>),
    Fork(ForkRecord),
    Exit(ExitRecord),
    Dns(Dns<'a>),
}

/// Reads a plain-old-data `T` at `off`.
fn read<T: Copy>(bytes: &[u8], off: usize) -> Result<T, DecodeError> {
    let end = off
        .checked_add(size_of::<T>())
        .ok_or(DecodeError::Lengths)?;
    if end > bytes.len() {
        return Err(DecodeError::Short(bytes.len()));
    }
    // SAFETY: bounds checked above; T is a #[repr(C)] record of integers and byte arrays,
    // valid for any bit pattern; read_unaligned copes with the ring's 8-byte alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().add(off).cast::<T>()) })
}

pub fn decode(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
    let header: RecordHeader = read(bytes, 0)?;
    let kind = RecordKind::from_u8(header.kind).ok_or(DecodeError::Kind(header.kind))?;
    if header.version != RECORD_VERSION {
        return Err(DecodeError::Version(header.version));
    }
    // The kernel side may send less than the fixed size of the record (its data area is
    // variable), never more than what the ring buffer entry holds.
    let size = header.size as usize;
    if size > bytes.len() {
        return Err(DecodeError::Short(bytes.len()));
    }
    let bytes = &bytes[..size];
    match kind {
        RecordKind::Exec => decode_exec(bytes, header.boot_ns).map(Record::Exec),
        RecordKind::Fork => read::<ForkRecord>(bytes, 0).map(Record::Fork),
        RecordKind::Exit => read::<ExitRecord>(bytes, 0).map(Record::Exit),
        RecordKind::Dns => decode_dns(bytes, header.boot_ns).map(Record::Dns),
    }
}

fn decode_exec(bytes: &[u8], boot_ns: u64) -> Result<Exec<'_>, DecodeError> {
    let data_off = ExecRecord::DATA_OFFSET;
    if bytes.len() < data_off {
        return Err(DecodeError::Short(bytes.len()));
    }
    let args_len = read::<u32>(bytes, offset_of!(ExecRecord, args_len))? as usize;
    let filename_len = read::<u32>(bytes, offset_of!(ExecRecord, filename_len))? as usize;
    let path_len = read::<u32>(bytes, offset_of!(ExecRecord, path_len))? as usize;
    let total = args_len + filename_len + path_len;
    if total > EXEC_DATA_SIZE || data_off + total > bytes.len() {
        return Err(DecodeError::Lengths);
    }
    let data = &bytes[data_off..data_off + total];
    let (args, rest) = data.split_at(args_len);
    let (filename, path_components) = rest.split_at(filename_len);
    let filename = filename.strip_suffix(&[0]).unwrap_or(filename);
    Ok(Exec {
        boot_ns,
        task: read(bytes, offset_of!(ExecRecord, task))?,
        parent_comm: read(bytes, offset_of!(ExecRecord, parent_comm))?,
        parent_start_ns: read(bytes, offset_of!(ExecRecord, parent_start_ns))?,
        exe_ino: read(bytes, offset_of!(ExecRecord, exe_ino))?,
        exe_mtime: read(bytes, offset_of!(ExecRecord, exe_mtime))?,
        exe_ctime: read(bytes, offset_of!(ExecRecord, exe_ctime))?,
        exe_ctime_nsec: read(bytes, offset_of!(ExecRecord, exe_ctime_nsec))?,
        exe_size: read(bytes, offset_of!(ExecRecord, exe_size))?,
        exe_dev: read(bytes, offset_of!(ExecRecord, exe_dev))?,
        flags: read(bytes, offset_of!(ExecRecord, flags))?,
        args_total: read(bytes, offset_of!(ExecRecord, args_total))?,
        args,
        filename,
        path_components,
    })
}

fn decode_dns(bytes: &[u8], boot_ns: u64) -> Result<Dns<'_>, DecodeError> {
    let off = DnsRecord::PAYLOAD_OFFSET;
    if bytes.len() < off {
        return Err(DecodeError::Short(bytes.len()));
    }
    let captured = read::<u32>(bytes, offset_of!(DnsRecord, captured_len))? as usize;
    if captured > DNS_CAPTURE_MAX || off + captured > bytes.len() {
        return Err(DecodeError::Lengths);
    }
    Ok(Dns {
        boot_ns,
        task: read(bytes, offset_of!(DnsRecord, task))?,
        cookie: read(bytes, offset_of!(DnsRecord, cookie))?,
        direction: read(bytes, offset_of!(DnsRecord, direction))?,
        ip_version: read(bytes, offset_of!(DnsRecord, ip_version))?,
        protocol: read(bytes, offset_of!(DnsRecord, protocol))?,
        owner: read(bytes, offset_of!(DnsRecord, owner))?,
        src_port: read(bytes, offset_of!(DnsRecord, src_port))?,
        dst_port: read(bytes, offset_of!(DnsRecord, dst_port))?,
        src_addr: read(bytes, offset_of!(DnsRecord, src_addr))?,
        dst_addr: read(bytes, offset_of!(DnsRecord, dst_addr))?,
        payload_len: read(bytes, offset_of!(DnsRecord, payload_len))?,
        tcp_seq: read(bytes, offset_of!(DnsRecord, tcp_seq))?,
        tcp_flags: read(bytes, offset_of!(DnsRecord, tcp_flags))?,
        gso_size: read(bytes, offset_of!(DnsRecord, gso_size))?,
        payload: &bytes[off..off + captured],
    })
}

/// Arguments from the NUL-separated argument area (lossy UTF-8). A final argument cut by the
/// capture bound is kept as far as it goes.
pub fn argv(args: &[u8]) -> Vec<String> {
    let args = args.strip_suffix(&[0]).unwrap_or(args);
    if args.is_empty() {
        return Vec::new();
    }
    args.split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The executable's path from its components (leaf first, NUL-terminated).
pub fn exe_path(components: &[u8]) -> String {
    let components = components.strip_suffix(&[0]).unwrap_or(components);
    if components.is_empty() {
        return String::new();
    }
    let mut parts: Vec<&[u8]> = components.split(|&b| b == 0).collect();
    parts.reverse();
    let mut path = String::with_capacity(components.len() + 1);
    for p in parts {
        path.push('/');
        path.push_str(&String::from_utf8_lossy(p));
    }
    path
}

/// A task's `comm` as text.
pub fn comm(c: &[u8; 16]) -> String {
    let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
    String::from_utf8_lossy(&c[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use tunnelwatch_common::records::{direction, exec_flags};

    use super::*;

    fn bytes_of<T>(v: &T) -> &[u8] {
        // SAFETY: test helper over #[repr(C)] records.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
    }

    fn exec_record(args: &[u8], filename: &[u8], path: &[u8]) -> Vec<u8> {
        // SAFETY: all-zero is a valid ExecRecord.
        let mut rec: Box<ExecRecord> = Box::new(unsafe { std::mem::zeroed() });
        rec.header.kind = RecordKind::Exec as u8;
        rec.header.version = RECORD_VERSION;
        rec.header.boot_ns = 42;
        rec.task.tgid = 1234;
        rec.task.ppid = 1;
        rec.flags = exec_flags::ARGS_TRUNCATED;
        let mut at = 0;
        for part in [args, filename, path] {
            rec.data[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        rec.args_len = args.len() as u32;
        rec.filename_len = filename.len() as u32;
        rec.path_len = path.len() as u32;
        let size = ExecRecord::DATA_OFFSET + at;
        rec.header.size = size as u32;
        bytes_of(&*rec)[..size].to_vec()
    }

    #[test]
    fn exec_roundtrip() {
        let b = exec_record(
            b"ngrok\0http\x008080\0",
            b"/tmp/x/ngrok\0",
            b"ngrok\0x\0tmp\0",
        );
        let Record::Exec(e) = decode(&b).unwrap() else {
            panic!("not an exec")
        };
        assert_eq!(e.task.tgid, 1234);
        assert_eq!(e.boot_ns, 42);
        assert_eq!(argv(e.args), ["ngrok", "http", "8080"]);
        assert_eq!(e.filename, b"/tmp/x/ngrok");
        assert_eq!(exe_path(e.path_components), "/tmp/x/ngrok");
        assert_eq!(e.flags, exec_flags::ARGS_TRUNCATED);
    }

    #[test]
    fn exec_bad_lengths_and_every_truncation() {
        let mut b = exec_record(b"a\0", b"/a\0", b"a\0");
        // Claim more data than present.
        let off = offset_of!(ExecRecord, path_len);
        b[off..off + 4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(decode(&b).unwrap_err(), DecodeError::Lengths);
        // Every prefix of a valid record fails cleanly.
        let good = exec_record(b"ngrok\0http\0", b"/n\0", b"n\0");
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "prefix {n} decoded");
        }
        assert!(decode(&good).is_ok());
    }

    #[test]
    fn unknown_kind_and_version() {
        let mut b = exec_record(b"", b"", b"");
        b[0] = 99;
        assert_eq!(decode(&b).unwrap_err(), DecodeError::Kind(99));
        b[0] = RecordKind::Exec as u8;
        b[1] = RECORD_VERSION + 1;
        assert_eq!(
            decode(&b).unwrap_err(),
            DecodeError::Version(RECORD_VERSION + 1)
        );
    }

    #[test]
    fn dns_roundtrip_and_bounds() {
        // SAFETY: all-zero is a valid DnsRecord.
        let mut rec: Box<DnsRecord> = Box::new(unsafe { std::mem::zeroed() });
        rec.header.kind = RecordKind::Dns as u8;
        rec.header.version = RECORD_VERSION;
        rec.direction = direction::EGRESS;
        rec.dst_port = 53;
        rec.payload[..3].copy_from_slice(b"abc");
        rec.captured_len = 3;
        rec.payload_len = 3;
        let size = DnsRecord::PAYLOAD_OFFSET + 3;
        rec.header.size = size as u32;
        let b = bytes_of(&*rec)[..size].to_vec();
        let Record::Dns(d) = decode(&b).unwrap() else {
            panic!("not dns")
        };
        assert_eq!(d.payload, b"abc");
        assert_eq!(d.dst_port, 53);
        rec.captured_len = (DNS_CAPTURE_MAX + 1) as u32;
        let b = bytes_of(&*rec)[..size].to_vec();
        assert_eq!(decode(&b).unwrap_err(), DecodeError::Lengths);
    }

    #[test]
    fn fork_exit_and_header_size_beyond_entry() {
        let f = ForkRecord {
            header: RecordHeader {
                kind: RecordKind::Fork as u8,
                version: RECORD_VERSION,
                _pad: 0,
                size: size_of::<ForkRecord>() as u32,
                boot_ns: 1,
            },
            parent_tgid: 1,
            child_tgid: 2,
            parent_start_ns: 3,
            child_start_ns: 4,
        };
        let Record::Fork(g) = decode(bytes_of(&f)).unwrap() else {
            panic!("not fork")
        };
        assert_eq!(g.child_tgid, 2);
        let mut big = f;
        big.header.size = 10_000;
        assert!(decode(bytes_of(&big)).is_err());
    }

    #[test]
    fn helpers() {
        assert_eq!(argv(b""), Vec::<String>::new());
        assert_eq!(argv(b"a\0\0b\0"), ["a", "", "b"]);
        assert_eq!(argv(b"cut-sho"), ["cut-sho"]);
        assert_eq!(exe_path(b""), "");
        assert_eq!(exe_path(b"memfd:x\0"), "/memfd:x");
        assert_eq!(comm(b"bash\0\0\0\0\0\0\0\0\0\0\0\0"), "bash");
        assert_eq!(comm(b"0123456789abcdef"), "0123456789abcdef");
    }
}
