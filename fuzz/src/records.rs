//! Ring-buffer records for the `record_decode` target: builders for valid records (the seed
//! corpus, `examples/seeds.rs`), the split of one fuzz input into several records, and the
//! rewrite that keeps an exec record's paths from naming a real file.

use std::mem::{offset_of, size_of};

use tunnelwatch::linux::decode::Exec;
use tunnelwatch_common::{
    ConnRecord, DnsRecord, ExecRecord, ExitRecord, FlightRecord, ForkRecord, RECORD_VERSION,
    RecordHeader, RecordKind, TaskInfo, limits::EXEC_DATA_SIZE, records::conn_origin,
};

/// Most records taken from one input.
pub const MAX_RECORDS: usize = 64;

/// Ring-buffer entries are 8-byte aligned.
const ALIGN: usize = 8;

/// A directory that does not exist, put in front of every path an exec record names before
/// the record goes to the enricher (which opens the executable to identify it): a fuzzed
/// path must not open a FIFO, a terminal or `/dev/stdin` and hang the fuzzer.
pub const NO_SUCH_DIR: &str = "tunnelwatch-fuzz-no-such-dir";

fn bytes_of<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: T is one of the `#[repr(C)]` records, plain integers and byte arrays; reading
    // its bytes (padding included: the records have none that is not a named field) is fine.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

fn header(kind: RecordKind, size: usize, boot_ns: u64) -> RecordHeader {
    RecordHeader {
        kind: kind as u8,
        version: RECORD_VERSION,
        _pad: 0,
        size: size as u32,
        boot_ns,
    }
}

/// A task as the kernel side describes it.
pub fn task(tgid: u32, ppid: u32, uid: u32, comm: &str) -> TaskInfo {
    let mut c = [0u8; 16];
    let n = comm.len().min(15);
    c[..n].copy_from_slice(&comm.as_bytes()[..n]);
    TaskInfo {
        tgid,
        pid: tgid,
        ppid,
        uid,
        gid: uid,
        euid: uid,
        loginuid: u32::MAX,
        _pad: 0,
        start_ns: 1_000_000 + u64::from(tgid),
        cgroup_id: 1,
        comm: c,
    }
}

/// An exec record as the kernel side sends it: `args` NUL-separated, `filename`
/// NUL-terminated, `path` the components leaf first, each NUL-terminated.
pub fn exec(
    task: TaskInfo,
    parent_comm: &str,
    flags: u32,
    args: &[u8],
    filename: &[u8],
    path: &[u8],
) -> Vec<u8> {
    // SAFETY: all-zero is a valid ExecRecord (integers and byte arrays).
    let mut rec: Box<ExecRecord> = Box::new(unsafe { std::mem::zeroed() });
    rec.task = task;
    let n = parent_comm.len().min(15);
    rec.parent_comm[..n].copy_from_slice(&parent_comm.as_bytes()[..n]);
    rec.parent_start_ns = 500;
    rec.exe_ino = 4242 + u64::from(task.tgid);
    rec.exe_mtime = 1_700_000_000;
    rec.exe_dev = 0x803;
    rec.flags = flags;
    rec.args_total = args.len() as u32;
    let mut at = 0;
    for part in [args, filename, path] {
        rec.data[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    rec.args_len = args.len() as u32;
    rec.filename_len = filename.len() as u32;
    rec.path_len = path.len() as u32;
    let size = ExecRecord::DATA_OFFSET + at;
    rec.header = header(RecordKind::Exec, size, 2_000_000);
    bytes_of(&*rec)[..size].to_vec()
}

/// A fork record.
pub fn fork(parent: u32, child: u32) -> Vec<u8> {
    let f = ForkRecord {
        header: header(RecordKind::Fork, size_of::<ForkRecord>(), 1_500_000),
        parent_tgid: parent,
        child_tgid: child,
        parent_start_ns: 1_000_000 + u64::from(parent),
        child_start_ns: 1_000_000 + u64::from(child),
    };
    bytes_of(&f).to_vec()
}

/// An exit record.
pub fn exit(tgid: u32, code: u32) -> Vec<u8> {
    let x = ExitRecord {
        header: header(RecordKind::Exit, size_of::<ExitRecord>(), 3_000_000),
        tgid,
        exit_code: code,
        start_ns: 1_000_000 + u64::from(tgid),
    };
    bytes_of(&x).to_vec()
}

/// Addresses and ports of one DNS packet.
#[derive(Clone, Copy)]
pub struct Flow {
    pub direction: u8,
    /// 4 or 6.
    pub ip_version: u8,
    /// 17 (UDP) or 6 (TCP).
    pub protocol: u8,
    pub owner: u8,
    pub src: ([u8; 16], u16),
    pub dst: ([u8; 16], u16),
}

/// A DNS record carrying `payload` (for TCP with its length prefix), of which the packet had
/// `payload_len` bytes.
pub fn dns(task: TaskInfo, flow: Flow, payload: &[u8], payload_len: u32) -> Vec<u8> {
    // SAFETY: all-zero is a valid DnsRecord (integers and byte arrays).
    let mut rec: Box<DnsRecord> = Box::new(unsafe { std::mem::zeroed() });
    rec.task = task;
    rec.cookie = 0xc00c_1e00 + u64::from(flow.src.1);
    rec.direction = flow.direction;
    rec.ip_version = flow.ip_version;
    rec.protocol = flow.protocol;
    rec.owner = flow.owner;
    rec.src_addr = flow.src.0;
    rec.src_port = flow.src.1;
    rec.dst_addr = flow.dst.0;
    rec.dst_port = flow.dst.1;
    let n = payload.len().min(rec.payload.len());
    rec.payload[..n].copy_from_slice(&payload[..n]);
    rec.captured_len = n as u32;
    rec.payload_len = payload_len;
    let size = DnsRecord::PAYLOAD_OFFSET + n;
    rec.header = header(RecordKind::Dns, size, 2_500_000);
    bytes_of(&*rec)[..size].to_vec()
}

/// A new flow of socket `cookie` (TCP when `tcp`, else UDP) to `dst`, with `flags`
/// (`conn_flags`).
pub fn conn(task: TaskInfo, cookie: u64, tcp: bool, dst: ([u8; 16], u16), flags: u8) -> Vec<u8> {
    let rec = ConnRecord {
        header: header(RecordKind::Conn, size_of::<ConnRecord>(), 3_000_000),
        task,
        cookie,
        origin: conn_origin::CONNECT,
        ip_version: 4,
        protocol: if tcp { 6 } else { 17 },
        flags,
        src_port: 0,
        dst_port: dst.1,
        src_addr: [0; 16],
        dst_addr: dst.0,
    };
    bytes_of(&rec).to_vec()
}

/// A packet of the first flight of flow `cookie` from `src` to `dst`: TCP segment at `seq`, or
/// a UDP datagram, with `flags` (`flight_flags`).
pub fn flight(
    cookie: u64,
    tcp: bool,
    (src, dst): (([u8; 16], u16), ([u8; 16], u16)),
    seq: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    // SAFETY: all-zero is a valid FlightRecord (integers and byte arrays).
    let mut rec: Box<FlightRecord> = Box::new(unsafe { std::mem::zeroed() });
    rec.cookie = cookie;
    rec.ip_version = 4;
    rec.protocol = if tcp { 6 } else { 17 };
    rec.flags = flags;
    rec.src_addr = src.0;
    rec.src_port = src.1;
    rec.dst_addr = dst.0;
    rec.dst_port = dst.1;
    rec.seq = seq;
    let n = payload.len().min(rec.payload.len());
    rec.payload[..n].copy_from_slice(&payload[..n]);
    rec.captured_len = n as u32;
    rec.payload_len = payload.len() as u32;
    let size = FlightRecord::PAYLOAD_OFFSET + n;
    rec.header = header(RecordKind::Flight, size, 3_100_000);
    bytes_of(&*rec)[..size].to_vec()
}

/// Records back to back as the `record_decode` target splits them (each padded to 8 bytes).
pub fn concat(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(r);
        out.resize(out.len().next_multiple_of(ALIGN), 0);
    }
    out
}

/// Splits an input into ring-buffer entries: each takes the size its header announces when
/// that is at least a header and fits, else the rest of the input; the next one starts at the
/// next 8-byte boundary. At most [`MAX_RECORDS`].
pub fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() && out.len() < MAX_RECORDS {
        let announced = rest
            .get(offset_of!(RecordHeader, size)..offset_of!(RecordHeader, size) + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")) as usize);
        let len = match announced {
            Some(n) if n >= size_of::<RecordHeader>() && n <= rest.len() => n,
            _ => rest.len(),
        };
        out.push(&rest[..len]);
        rest = &rest[len.next_multiple_of(ALIGN).min(rest.len())..];
    }
    out
}

/// The exec record `bytes` (which decoded as `e`) rewritten so that every path in it lies
/// under `/`[`NO_SUCH_DIR`]: the filename gets that prefix, the path components that root
/// component. Arguments are cut from the end if the data area would overflow. Everything
/// else (the cgroup names after the path included) stays as it was.
pub fn jail_exec(bytes: &[u8], e: &Exec<'_>) -> Vec<u8> {
    let data_off = ExecRecord::DATA_OFFSET;
    let field = |name_off: usize| {
        let b = &bytes[name_off..name_off + 4];
        u32::from_ne_bytes(b.try_into().expect("4 bytes")) as usize
    };
    let args_len = field(offset_of!(ExecRecord, args_len));
    let filename_len = field(offset_of!(ExecRecord, filename_len));
    let data = &bytes[data_off..];
    let filename_raw = &data[args_len..args_len + filename_len];

    let mut filename = format!("/{NO_SUCH_DIR}/").into_bytes();
    filename.extend_from_slice(filename_raw);
    let leafs = e
        .path_components
        .strip_suffix(&[0])
        .unwrap_or(e.path_components);
    let path = if leafs.is_empty() {
        e.path_components.to_vec()
    } else {
        let mut p = leafs.to_vec();
        p.push(0);
        p.extend_from_slice(NO_SUCH_DIR.as_bytes());
        p.push(0);
        p
    };
    let room = EXEC_DATA_SIZE.saturating_sub(filename.len() + path.len() + e.cgroup_names.len());
    let args = &e.args[..e.args.len().min(room)];

    let mut out = bytes[..data_off].to_vec();
    for part in [args, &filename[..], &path[..], e.cgroup_names] {
        out.extend_from_slice(part);
    }
    let size = out.len();
    for (off, v) in [
        (offset_of!(ExecRecord, args_len), args.len()),
        (offset_of!(ExecRecord, filename_len), filename.len()),
        (offset_of!(ExecRecord, path_len), path.len()),
        (offset_of!(RecordHeader, size), size),
    ] {
        out[off..off + 4].copy_from_slice(&(v as u32).to_ne_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use tunnelwatch::linux::decode::{self, Record};

    use super::*;

    #[test]
    fn split_and_jail() {
        let e = exec(
            task(7, 1, 0, "ngrok"),
            "bash",
            0,
            b"ngrok\0http\08080\0",
            b"./ngrok\0",
            b"ngrok\0tmp\0",
        );
        let input = concat(&[fork(1, 7), e.clone(), exit(7, 0)]);
        let parts = split(&input);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1], &e[..]);
        let Ok(Record::Exec(d)) = decode::decode(parts[1]) else {
            panic!("not an exec")
        };
        let jailed = jail_exec(parts[1], &d);
        let Ok(Record::Exec(j)) = decode::decode(&jailed) else {
            panic!("jailed record does not decode")
        };
        assert_eq!(decode::argv(j.args), ["ngrok", "http", "8080"]);
        assert_eq!(j.filename, b"/tunnelwatch-fuzz-no-such-dir/./ngrok");
        assert_eq!(
            decode::exe_path(j.path_components),
            "/tunnelwatch-fuzz-no-such-dir/tmp/ngrok"
        );
    }
}
